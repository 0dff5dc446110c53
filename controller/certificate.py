"""The dashboard's TLS certificate and key as files: read them, fingerprint them, load them for a server.

One reading for both users of the files: the dashboard builds its server context
with :func:`server_context` (web/serve.py, through web/tls.py), and the doctor
checks the same files with the same function before a therapist ever sees a
browser warning. Every error names the file and what is wrong with it.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

#: Oldest protocol the dashboard speaks: TLS 1.0 and 1.1 are deprecated (RFC 8996).
MINIMUM_TLS = ssl.TLSVersion.TLSv1_2


class CertificateError(ValueError):
    """A certificate or key that cannot serve: the message names the file and the problem."""


@dataclass(frozen=True)
class CertificateInfo:
    """What a therapist or installer checks on a certificate: its names, validity and fingerprint."""

    path: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    #: SHA-256 of the DER form, colon-separated upper-case hex: what browsers show.
    fingerprint: str
    self_signed: bool

    @property
    def names(self) -> tuple[str, ...]:
        """DNS names, then addresses, as the SubjectAltName lists them."""
        return self.dns_names + self.ip_addresses


def colon_hex(digest: bytes) -> str:
    """``AB:CD:...``: the form browsers and ``openssl x509 -fingerprint`` show."""
    return ":".join(f"{b:02X}" for b in digest)


def _read_bytes(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc


def load_certificate(cert_path: str | Path) -> x509.Certificate:
    """The first certificate of a PEM file (the server's own; a chain may follow it)."""
    data = _read_bytes(cert_path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"certificate {cert_path} is not a PEM certificate: {exc}") from exc


def read_certificate(cert_path: str | Path) -> CertificateInfo:
    """Names, validity and SHA-256 fingerprint of the certificate in ``cert_path``."""
    cert = load_certificate(cert_path)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return CertificateInfo(path=str(cert_path), dns_names=dns, ip_addresses=ips,
                           not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc,
                           fingerprint=colon_hex(cert.fingerprint(hashes.SHA256())),
                           self_signed=cert.issuer == cert.subject)


def fingerprint_sha256(cert_path: str | Path) -> str:
    """The certificate's SHA-256 fingerprint as browsers show it (``AB:CD:...``, 32 bytes)."""
    return read_certificate(cert_path).fingerprint


def check_private_key(key_path: str | Path) -> None:
    """Raise CertificateError unless ``key_path`` holds an unencrypted PEM private key."""
    data = _read_bytes(key_path, "private key")
    try:
        serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # a passphrase-protected key: the service has nobody to type it
        raise CertificateError(f"private key {key_path} is encrypted: the dashboard needs it without a "
                               "passphrase (readable only by root and the dashboard's user)") from exc
    except ValueError as exc:
        raise CertificateError(f"private key {key_path} is not a PEM private key: {exc}") from exc


def server_context(cert_path: str | Path, key_path: str | Path) -> ssl.SSLContext:
    """The dashboard's TLS server context: TLS 1.2 or newer, this certificate and key.

    Raises CertificateError naming the file when one is missing, unreadable, not PEM,
    or when the key is not the certificate's.
    """
    load_certificate(cert_path)
    check_private_key(key_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_TLS
    try:
        context.load_cert_chain(str(cert_path), str(key_path))
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc).upper():
            raise CertificateError(f"private key {key_path} does not belong to certificate {cert_path} "
                                   "(they are from different pairs)") from exc
        raise CertificateError(f"certificate {cert_path} with key {key_path} does not load: {exc}") from exc
    except OSError as exc:  # replaced or removed since the checks above
        raise CertificateError(f"certificate {cert_path} or key {key_path} cannot be read: {exc}") from exc
    return context

