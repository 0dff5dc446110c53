"""``demo --tls`` over HTTPS: its printed lines and certificate, and in Chromium a named therapist changes a
limit and the admin sees it on the Audit page.

The browser trusts exactly the demo's throw-away certificate: its public key's SHA-256 goes to Chromium's
``--ignore-certificate-errors-spki-list`` after the certificate's fingerprint was checked against the one
the demo printed (as a therapist checks it once on a tablet). Any other certificate is still refused.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from sim.dashboard import CHROMIUM, CHROMIUM_ARGS, free_port
from tests.e2e.demo import assert_login_lines, end_demo, first_lines, start_demo
from tests.e2e.test_dashboard import log_in
from web.tls import fingerprint_sha256, read_certificate

CERTIFICATE_LINE = re.compile(r"certificate: (/\S+) \(self-signed for this demo: 127\.0\.0\.1, localhost\)\n")
FINGERPRINT_LINE = re.compile(r"SHA-256 fingerprint: ((?:[0-9A-F]{2}:){31}[0-9A-F]{2}) ")
ADMIN_LINE = re.compile(r"admin: (\S+) (\S+) ")
VIEWPORT = {"width": 1024, "height": 768}


def spki_sha256(cert_path: Path) -> str:
    """base64 of the SHA-256 of the certificate's public key (SubjectPublicKeyInfo, DER): Chromium's pin."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def tls_demo():
    """``demo --tls``: (url, user, password, admin, admin password, certificate path, its first six lines)."""
    port = free_port()
    proc = start_demo(port, "--tls")
    try:
        lines = first_lines(proc, 6)
        url = f"https://127.0.0.1:{port}/"
        user, password = assert_login_lines(lines, url)
        cert = Path(CERTIFICATE_LINE.fullmatch(lines[3]).group(1))
        assert FINGERPRINT_LINE.match(lines[4]).group(1) == fingerprint_sha256(cert)
        admin = ADMIN_LINE.match(lines[5])
        assert admin, lines
        yield url, user, password, admin.group(1), admin.group(2), cert, lines
    finally:
        end_demo(proc)


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def pinned_browser(tls_demo, playwright):
    """Chromium that trusts the demo's certificate, and no other unknown one."""
    pin = spki_sha256(tls_demo[5])
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={pin}"])
    try:
        yield browser
    finally:
        browser.close()


def test_a_named_therapist_changes_a_limit_over_https_and_the_admin_sees_it_in_the_audit(tls_demo, pinned_browser):
    url, user, password, admin, admin_password, _, _ = tls_demo
    page = log_in(pinned_browser, url, user, password, VIEWPORT)
    assert page.url.startswith("https://")
    assert page.evaluate("() => window.isSecureContext") is True
    # The session cookie is Secure and HttpOnly (so the page's script cannot read it).
    cookie = next(c for c in page.context.cookies() if c["name"] == "treadmill_dashboard")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert "treadmill_dashboard" not in page.evaluate("() => document.cookie")

    page.fill("#limits-form [name=base_stop_mm]", "255")
    page.click("#limits-submit")
    expect(page.locator("#limits-errors")).to_be_empty()
    page.wait_for_function("() => fetch('/api/limits').then(r => r.json())"
                           ".then(j => (j.limits || j).base_stop_mm === 255)", timeout=5_000)

    # The therapist has no Audit link and no audit page.
    expect(page.locator("#nav-audit")).to_be_hidden()
    assert page.goto(url + "audit").status == 403

    admin_page = log_in(pinned_browser, url, admin, admin_password, VIEWPORT)
    expect(admin_page.locator("#nav-audit")).to_be_visible()
    admin_page.click("#nav-audit")
    expect(admin_page.locator("#audit-chain")).to_contain_text("chain intact", timeout=5_000)
    row = admin_page.locator("#audit-table tbody tr", has_text="PUT /api/limits").first
    expect(row).to_contain_text(user, timeout=5_000)
    expect(row).to_contain_text("255")
    # Filtered to the therapist's account, the change is there and the admin's own login is not.
    admin_page.fill("#audit-user", user)
    admin_page.click("#audit-apply")
    expect(admin_page.locator("#audit-table tbody tr", has_text="PUT /api/limits")).to_have_count(1, timeout=5_000)
    expect(admin_page.locator("#audit-table tbody tr", has_text=admin)).to_have_count(0)


def test_a_browser_without_the_pin_refuses_the_certificate(tls_demo, playwright):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            browser.new_page().goto(tls_demo[0])
    finally:
        browser.close()


def test_demo_tls_prints_the_login_lines_and_answers_over_https_with_the_printed_certificate(tls_demo):
    url, user, password, _, _, _, lines = tls_demo
    port = int(url.rsplit(":", 1)[1].strip("/"))
    # The fixture checked the three login lines, and the printed fingerprint against the certificate.
    cert = Path(CERTIFICATE_LINE.fullmatch(lines[3]).group(1))
    assert read_certificate(cert).names == ("localhost", "127.0.0.1")

    # A client that trusts exactly that certificate and checks the address against it.
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10,
                                       context=ssl.create_default_context(cafile=str(cert)))
    try:
        conn.request("GET", "/api/status")
        status = conn.getresponse()
        assert status.status == 200 and json.loads(status.read())["state"] in ("READY", "STOPPED")
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        # The printed account logs in (the page sends its same-origin Referer with the CSRF token).
        conn.request("GET", "/api/session")
        session = conn.getresponse()
        token = json.loads(session.read())["csrf_token"]
        cookie = session.getheader("Set-Cookie")
        assert "Secure" in cookie
        conn.request("POST", "/login", body=json.dumps({"name": user, "password": password}),
                     headers={"Content-Type": "application/json", "X-CSRFToken": token,
                              "Cookie": cookie.split(";")[0], "Referer": f"https://127.0.0.1:{port}/"})
        login = conn.getresponse()
        assert login.status == 200, login.read()
        login.read()
    finally:
        conn.close()
