"""HTTPS for the dashboard: a self-signed certificate for this Pi, and the server's TLS context.

A clinic that has its own certificate names it in ``[web] tls_cert`` and ``tls_key``.
Otherwise ``make install`` runs ``treadmill-safety tls-cert``, which calls
:func:`generate_self_signed` for this machine's names and LAN addresses
(:func:`default_names`); a therapist checks its fingerprint once on each tablet.
Reading and loading the files (:func:`server_context`, :func:`fingerprint_sha256`)
is ``controller/certificate.py``'s, which the doctor shares: one reading of the
files for the server and for the installer's check.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import shutil
import socket
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.certificate import (  # noqa: F401 - the dashboard's TLS API, in one import
    MINIMUM_TLS,
    CertificateError,
    CertificateInfo,
    fingerprint_sha256,
    load_certificate,
    read_certificate,
    server_context,
)
from controller.files import atomic_write_text

#: Long enough that nobody re-checks a fingerprint every year; a new name or address needs a new one anyway.
VALID_DAYS = 5 * 365
#: A Pi has no real-time clock: one that boots a little behind must not find the certificate "not yet valid".
BACKDATE = dt.timedelta(days=1)
#: The subject's organization marks a certificate tls-cert made: only such a one may be replaced (--force).
ISSUER_ORG = "treadmill-safety (self-signed by tls-cert)"
KEY_MODE = 0o600
CERT_MODE = 0o644
#: Destinations for the UDP-connect trick: connect() on a UDP socket picks a route and a source
#: address without sending anything. Private ranges first: a clinic LAN may have no default route.
_ROUTE_PROBES = ("10.255.255.254", "172.31.255.254", "192.168.255.254", "192.0.2.1", "fd00::1", "2001:db8::1")


def _usable(address: str) -> bool:
    """An address a tablet on the LAN could use: not loopback, link-local, multicast or unspecified."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    return not (ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_unspecified)


def _ip_command_addresses() -> list[str]:
    """Global, non-temporary addresses from ``ip -j addr`` (iproute2), or [] where it is missing."""
    ip = shutil.which("ip")
    if ip is None:
        return []
    try:
        out = subprocess.run([ip, "-j", "addr", "show"], capture_output=True, text=True, timeout=5, check=True).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    return [a["local"] for link in links if isinstance(link, dict) for a in link.get("addr_info", [])
            if isinstance(a, dict) and "local" in a and a.get("scope") == "global"
            and not a.get("temporary") and not a.get("deprecated")]


def _socket_addresses(host: str) -> list[str]:
    """The host name's own addresses, and the source address of each route out (nothing is sent)."""
    found = []
    try:
        found += [info[4][0] for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]
    except OSError:
        pass
    for probe in _ROUTE_PROBES:
        family = socket.AF_INET6 if ":" in probe else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))
                found.append(s.getsockname()[0])
        except OSError:
            continue  # no route that way
    return found


def lan_addresses(host: str | None = None) -> list[str]:
    """This machine's non-loopback addresses, IPv4 first, without touching the network."""
    host = host or socket.gethostname()
    unique: dict[str, None] = {}
    for address in _ip_command_addresses() + _socket_addresses(host):
        if _usable(address):
            unique[str(ipaddress.ip_address(address.split("%", 1)[0]))] = None
    return sorted(unique, key=lambda a: (ipaddress.ip_address(a).version, ipaddress.ip_address(a)))


def default_names(host: str | None = None) -> tuple[list[str], list[str]]:
    """``(dns_names, addresses)`` for this machine: its host name, NAME.local (mDNS), localhost, its LAN addresses."""
    host = host or socket.gethostname()
    short = host.split(".", 1)[0]
    dns = [n for n in (host, short, f"{short}.local", "localhost") if n and n.isascii()]
    return list(dict.fromkeys(dns)), lan_addresses(host)


def _made_by_tls_cert(cert_path: Path) -> bool:
    """Whether the certificate there is one tls-cert made (or no readable certificate at all)."""
    try:
        cert = load_certificate(cert_path)
    except CertificateError:
        return True  # unreadable or not a certificate: nothing of the clinic's to keep
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return any(o.value == ISSUER_ORG for o in orgs)


def refuse_overwrite(cert_path: Path, key_path: Path, force: bool) -> None:
    """Raise FileExistsError unless writing the pair is allowed: nothing there yet, or --force on our own pair."""
    existing = [p for p in (cert_path, key_path) if p.exists()]
    if not existing:
        return
    if not force:
        raise FileExistsError(f"{' and '.join(map(str, existing))} exist already: nothing written "
                              "(--force replaces a certificate tls-cert made; never the clinic's own)")
    if cert_path.exists() and not _made_by_tls_cert(cert_path):
        raise FileExistsError(f"{cert_path} was not made by tls-cert (it may be the clinic's own certificate): "
                              "tls-cert never replaces it, even with --force")


def build_self_signed(dns_names: list[str], addresses: list[str], *, valid_days: int = VALID_DAYS,
                      now: dt.datetime | None = None) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new ECDSA P-256 key and a self-signed server certificate naming ``dns_names`` and ``addresses``."""
    if not dns_names and not addresses:
        raise ValueError("a certificate needs at least one host name or address")
    ips = [ipaddress.ip_address(a) for a in addresses]  # ValueError names a bad one
    key = ec.generate_private_key(ec.SECP256R1())
    now = now or dt.datetime.now(dt.timezone.utc)
    common_name = (dns_names or addresses)[0][:64]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, ISSUER_ORG)])
    san = [x509.DNSName(n) for n in dns_names] + [x509.IPAddress(ip) for ip in ips]
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def generate_self_signed(cert_path: str | Path, key_path: str | Path, dns_names: list[str], addresses: list[str],
                         *, force: bool = False, valid_days: int = VALID_DAYS) -> CertificateInfo:
    """Write a new self-signed pair: key 0600, certificate 0644, each atomically; return what was written.

    Refuses (FileExistsError) when either file exists, unless ``force``; even then never replaces
    a certificate tls-cert did not make. A replaced key keeps its owner and group (the dashboard's
    group may read it), and at most mode 0640.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    refuse_overwrite(cert_path, key_path, force)
    key, cert = build_self_signed(dns_names, addresses, valid_days=valid_days)
    old_key = key_path.stat() if key_path.exists() else None
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode("ascii")
    # The key first: a certificate is never in place without the key it was made for.
    atomic_write_text(key_path, key_pem, mode=KEY_MODE)
    if old_key is not None:
        try:
            os.chown(key_path, old_key.st_uid, old_key.st_gid)
        except PermissionError:
            pass  # not root: the key stays this user's, 0600
        else:
            os.chmod(key_path, old_key.st_mode & 0o640)
    atomic_write_text(cert_path, cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), mode=CERT_MODE)
    return read_certificate(cert_path)
