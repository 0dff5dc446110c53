"""The dashboard's certificate files (web/tls.py) and ``treadmill-safety tls-cert``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cli.main import main
from tests.web.served import EXAMPLE_CONFIG
from web.tls import (
    CertificateError,
    default_names,
    fingerprint_sha256,
    generate_self_signed,
    read_certificate,
    server_context,
)

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def paths(tmp_path) -> tuple[Path, Path]:
    return tmp_path / "tls" / "dashboard.crt", tmp_path / "tls" / "dashboard.key"


def test_a_generated_certificate_names_what_was_asked_and_serves_only_as_a_server(paths):
    cert_path, key_path = paths
    info = generate_self_signed(cert_path, key_path, ["pi-room-2", "pi-room-2.local", "localhost"],
                                ["192.168.1.20", "fd00::20"])
    assert info.dns_names == ("pi-room-2", "pi-room-2.local", "localhost")
    assert info.ip_addresses == ("192.168.1.20", "fd00::20")
    assert info.self_signed
    now = dt.datetime.now(dt.timezone.utc)
    assert info.not_before <= now <= info.not_before + dt.timedelta(days=2)
    assert dt.timedelta(days=5 * 365 - 2) <= info.not_after - now <= dt.timedelta(days=5 * 365 + 1)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert mode(key_path) == 0o600 and mode(cert_path) == 0o644
    assert not [p for p in cert_path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    server_context(cert_path, key_path)  # the pair loads as the dashboard loads it


def test_the_fingerprint_is_the_one_openssl_and_browsers_show(paths):
    cert_path, key_path = paths
    info = generate_self_signed(cert_path, key_path, ["localhost"], ["127.0.0.1"])
    out = subprocess.run([OPENSSL, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(cert_path)],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    assert out.lower().startswith("sha256 fingerprint=")
    assert fingerprint_sha256(cert_path) == info.fingerprint == out.split("=", 1)[1]
    assert len(info.fingerprint.split(":")) == 32 and info.fingerprint == info.fingerprint.upper()


def test_an_existing_pair_is_not_overwritten_without_force(paths):
    cert_path, key_path = paths
    first = generate_self_signed(cert_path, key_path, ["localhost"], [])
    before = (cert_path.read_bytes(), key_path.read_bytes())
    with pytest.raises(FileExistsError, match="exist already: nothing written"):
        generate_self_signed(cert_path, key_path, ["localhost"], [])
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before
    second = generate_self_signed(cert_path, key_path, ["localhost"], [], force=True)
    assert second.fingerprint != first.fingerprint
    server_context(cert_path, key_path)


def foreign_pair(cert_path: Path, key_path: Path) -> None:
    """A certificate tls-cert did not make: the clinic's own, say."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "treadmill.clinic.example")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=90))
            .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))


def test_force_never_replaces_a_certificate_tls_cert_did_not_make(paths):
    cert_path, key_path = paths
    foreign_pair(cert_path, key_path)
    before = (cert_path.read_bytes(), key_path.read_bytes())
    with pytest.raises(FileExistsError, match="was not made by tls-cert"):
        generate_self_signed(cert_path, key_path, ["localhost"], [], force=True)
    assert (cert_path.read_bytes(), key_path.read_bytes()) == before


def test_a_key_that_is_not_the_certificates_is_named(tmp_path, paths):
    cert_path, _ = paths
    generate_self_signed(cert_path, paths[1], ["localhost"], [])
    other_key = tmp_path / "other.key"
    generate_self_signed(tmp_path / "other.crt", other_key, ["localhost"], [])
    with pytest.raises(CertificateError) as exc:
        server_context(cert_path, other_key)
    assert str(exc.value) == (f"private key {other_key} does not belong to certificate {cert_path} "
                              "(they are from different pairs)")


@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_missing_file_is_named(paths, which):
    cert_path, key_path = paths
    generate_self_signed(cert_path, key_path, ["localhost"], [])
    missing = cert_path if which == "cert" else key_path
    missing.unlink()
    with pytest.raises(CertificateError) as exc:
        server_context(cert_path, key_path)
    assert str(missing) in str(exc.value) and "No such file or directory" in str(exc.value)


def test_a_file_that_is_not_pem_is_named(paths):
    cert_path, key_path = paths
    generate_self_signed(cert_path, key_path, ["localhost"], [])
    key_path.write_text("not a key\n")
    with pytest.raises(CertificateError, match=f"private key {key_path} is not a PEM private key"):
        server_context(cert_path, key_path)
    with pytest.raises(CertificateError, match=f"certificate {key_path} is not a PEM certificate"):
        read_certificate(key_path)


def test_the_default_names_are_this_machines_name_mdns_name_localhost_and_lan_addresses():
    dns_names, addresses = default_names()
    host = socket.gethostname()
    short = host.split(".", 1)[0]
    assert dns_names[0] == host and f"{short}.local" in dns_names and "localhost" in dns_names
    for address in addresses:
        ip = ipaddress.ip_address(address)
        assert not (ip.is_loopback or ip.is_link_local or ip.is_unspecified), address
    print(f"default names here: {dns_names}, {addresses}")


def config_with_tls(tmp_path: Path, cert: str, key: str) -> Path:
    text = EXAMPLE_CONFIG.read_text()
    text = text.replace('"/etc/treadmill-safety/tls/dashboard.crt"', f'"{cert}"')
    text = text.replace('"/etc/treadmill-safety/tls/dashboard.key"', f'"{key}"')
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_tls_cert_writes_the_configured_files_prints_the_fingerprint_and_refuses_to_overwrite(
        tmp_path, paths, capsys):
    cert_path, key_path = paths
    config = config_with_tls(tmp_path, str(cert_path), str(key_path))
    args = ["tls-cert", "--config", str(config), "--host", "localhost", "--host", "pi.local",
            "--address", "127.0.0.1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    info = read_certificate(cert_path)
    assert info.names == ("localhost", "pi.local", "127.0.0.1")
    assert f"SHA-256 fingerprint: {info.fingerprint}\n" in out
    assert "names: localhost, pi.local, 127.0.0.1\n" in out
    assert mode(key_path) == 0o600

    assert main(args) == 1
    assert "exist already: nothing written" in capsys.readouterr().err
    assert read_certificate(cert_path).fingerprint == info.fingerprint

    assert main([*args, "--force"]) == 0
    assert read_certificate(cert_path).fingerprint != info.fingerprint
    server_context(cert_path, key_path)


def test_tls_cert_needs_the_config_to_name_the_files(tmp_path, capsys):
    config = config_with_tls(tmp_path, "", "")
    assert main(["tls-cert", "--config", str(config)]) == 2
    assert "[web] tls_cert and tls_key are empty" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [config]


def test_tls_cert_refuses_a_bad_address_and_writes_nothing(tmp_path, paths, capsys):
    config = config_with_tls(tmp_path, str(paths[0]), str(paths[1]))
    assert main(["tls-cert", "--config", str(config), "--address", "192.168.1.300"]) == 2
    assert "192.168.1.300" in capsys.readouterr().err
    assert not paths[0].exists() and not paths[1].exists()
