"""HTTPS: serve(cfg) with a certificate, in its own process, against a real TLS client (stdlib ssl).

The client trusts exactly the test's certificate (cafile) and checks the host name,
as a tablet does once its therapist has accepted the fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import socket
import ssl
import threading
import time
import warnings
from pathlib import Path

import pytest

from controller.config import load_config
from tests.web.helpers import PASSWORD, THERAPIST
from tests.web.served import EXAMPLE_CONFIG, next_status, serve_process
from web import HSTS, create_app
from web.link import EXTENSION_KEY
from web.serve import PLAIN_HTTP_REFUSAL, SOCKET_TIMEOUT_S
from web.tls import fingerprint_sha256, generate_self_signed, server_context

NAMES = (["localhost"], ["127.0.0.1"])


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key."""
    cert, key = tmp_path / "tls" / "dashboard.crt", tmp_path / "tls" / "dashboard.key"
    generate_self_signed(cert, key, *NAMES)
    return cert, key


@pytest.fixture
def served(fake, state_dir, pair):
    """The dashboard over HTTPS on 127.0.0.1 (accounts of tests/web/conftest.py); yields the server."""
    with serve_process(fake.socket_path, state_dir, tls=pair) as server:
        assert server.scheme == "https"
        yield server


def trusting(cert: Path) -> ssl.SSLContext:
    """A client that trusts exactly this certificate and checks the host name against it."""
    return ssl.create_default_context(cafile=str(cert))


def https(server, cert: Path, context: ssl.SSLContext | None = None, timeout_s: float = 5.0):
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context or trusting(cert), timeout=timeout_s)


def legacy_context(*, server: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    """A context limited to TLS 1.0-1.1, with the ciphers OpenSSL 3 keeps for them (security level 0).

    Setting those versions is deprecated in Python: the warning is expected here and only here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if server:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*map(str, server))
        else:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def this_openssl_speaks_tls_1_1(pair: tuple[Path, Path]) -> bool:
    """Whether a loopback pair, both sides limited to TLS 1.0-1.1, completes a handshake on this machine."""
    client_sock, server_sock = socket.socketpair()
    # Both made here: warnings.catch_warnings (in legacy_context) is not thread-safe.
    server_context_1_1, client_context_1_1 = legacy_context(server=pair), legacy_context()

    def server_side():
        try:
            with server_context_1_1.wrap_socket(server_sock, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client side tells

    thread = threading.Thread(target=server_side)
    thread.start()
    try:
        client_sock.settimeout(5)
        with client_context_1_1.wrap_socket(client_sock) as s:
            return s.version() in ("TLSv1", "TLSv1.1")
    except (ssl.SSLError, OSError):
        return False
    finally:
        client_sock.close()
        thread.join(10)
        server_sock.close()


def test_https_negotiates_tls_1_2_or_newer_and_presents_the_asked_names(served, pair):
    cert, _ = pair
    conn = https(served, cert)
    try:
        conn.request("GET", "/api/status")
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["state"] == "STOPPED"
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
        peer = conn.sock.getpeercert()
        assert peer["subjectAltName"] == (("DNS", "localhost"), ("IP Address", "127.0.0.1"))
        der = conn.sock.getpeercert(binary_form=True)
        assert ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest()) == fingerprint_sha256(cert)
    finally:
        conn.close()


def test_a_tls_1_2_only_client_is_served(served, pair):
    context = trusting(pair[0])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    conn = https(served, pair[0], context)
    try:
        conn.request("GET", "/api/status")
        assert conn.getresponse().status == 200
        assert conn.sock.version() == "TLSv1.2"
    finally:
        conn.close()


def test_the_session_cookie_is_secure_httponly_samesite_strict_and_hsts_is_sent(served, pair):
    conn = https(served, pair[0])
    try:
        conn.request("GET", "/api/session")  # it issues a CSRF token, which lives in the session cookie
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        cookie = response.getheader("Set-Cookie")
        assert cookie and cookie.startswith("treadmill_dashboard="), cookie
        attributes = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        assert "secure" in attributes and "httponly" in attributes, cookie
        assert attributes.get("samesite") == "SameSite=Strict", cookie
        assert response.getheader("Strict-Transport-Security") == HSTS == "max-age=31536000"
    finally:
        conn.close()


def test_a_therapist_logs_in_over_https_with_the_same_origin_referer(served, pair):
    """Over HTTPS Flask-WTF wants a same-origin Referer on a POST: the page's Referrer-Policy sends one."""
    origin = f"https://127.0.0.1:{served.port}/"
    conn = https(served, pair[0])
    try:
        conn.request("GET", "/")
        page = conn.getresponse()
        page.read()
        assert page.getheader("Referrer-Policy") == "same-origin"
        conn.request("GET", "/api/session")
        session = conn.getresponse()
        token = json.loads(session.read())["csrf_token"]
        cookie = session.getheader("Set-Cookie").split(";")[0]
        body = json.dumps({"name": THERAPIST, "password": PASSWORD})
        headers = {"Content-Type": "application/json", "X-CSRFToken": token, "Cookie": cookie}
        conn.request("POST", "/login", body=body, headers=headers)  # what no-referrer would send
        refused = conn.getresponse()
        assert refused.status == 403 and "referrer header is missing" in refused.read().decode()
        conn.request("POST", "/login", body=body, headers={**headers, "Referer": origin})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        assert "Secure" in response.getheader("Set-Cookie")
    finally:
        conn.close()


def test_a_client_limited_to_tls_1_1_is_refused(served, pair):
    conn = https(served, pair[0], legacy_context())
    try:
        if this_openssl_speaks_tls_1_1(pair):
            # The client can offer TLS 1.1 here (the loopback pair completed): the refusal is the server's.
            with pytest.raises(ssl.SSLError):
                conn.request("GET", "/api/status")
        else:
            print("this machine's OpenSSL cannot complete a TLS 1.1 handshake even with itself: checking "
                  "instead that the server's context is built with TLS 1.2 as its minimum, and that the "
                  "legacy client still gets no answer")
            assert server_context(*pair).minimum_version == ssl.TLSVersion.TLSv1_2
            with pytest.raises((ssl.SSLError, OSError)):
                conn.request("GET", "/api/status")
    finally:
        conn.close()
    # The refused client left the server as it was.
    modern = https(served, pair[0])
    try:
        modern.request("GET", "/api/status")
        assert modern.getresponse().status == 200
    finally:
        modern.close()


def test_plain_http_to_the_tls_port_gets_a_400_and_no_dashboard(served):
    conn = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        body = response.read()
        assert response.status == 400
        assert body == PLAIN_HTTP_REFUSAL
        assert b"<html" not in body.lower() and response.getheader("Set-Cookie") is None
    finally:
        conn.close()


def test_a_client_stalling_its_handshake_holds_up_no_one_else(served, pair, fake):
    """cheroot's builtin adapter would finish the handshake in its one accept thread (cherrypy/cheroot#748)."""
    stalled = socket.create_connection(("127.0.0.1", served.port), timeout=5)  # and never says hello
    try:
        stalled.sendall(b"\x16\x03\x01")  # the start of a TLS record: the server now waits for the rest
        started = time.monotonic()
        conn = https(served, pair[0], timeout_s=SOCKET_TIMEOUT_S / 2)
        try:
            conn.request("POST", "/api/estop", body=b"", headers={"Content-Length": "0"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            assert json.loads(response.read())["ok"] is True
        finally:
            conn.close()
        assert time.monotonic() - started < SOCKET_TIMEOUT_S / 2
        assert [c["command"] for c in fake.commands] == ["estop"]
    finally:
        stalled.close()


def test_statuses_stream_over_https_as_they_happen(served, pair, fake):
    conn = https(served, pair[0])
    try:
        conn.request("GET", "/api/stream")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Type").startswith("text/event-stream")
        assert next_status(response, 200) is not None, "no status came through"
        fake.update(gap_mm=444.0)
        assert next_status(response, where=lambda status: status["gap_mm"] == 444.0) is not None, \
            "the changed status never came through"
    finally:
        conn.close()


# ---- the app's side, without a server ---------------------------------------------------------


def session_response(app):
    response = app.test_client().get("/api/session")
    assert response.status_code == 200
    return response


def test_plain_http_mode_keeps_a_non_secure_cookie_and_sends_no_hsts(fake, make_app):
    response = session_response(make_app(fake.socket_path))
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "Strict-Transport-Security" not in response.headers


def test_tls_mode_sets_a_secure_cookie_and_hsts(fake, make_app):
    response = session_response(make_app(fake.socket_path, {"TLS": True}))
    assert "; Secure" in response.headers["Set-Cookie"]
    assert response.headers["Strict-Transport-Security"] == HSTS


def test_the_tls_flag_follows_the_configs_certificate(fake, tmp_path):
    cfg = load_config(EXAMPLE_CONFIG)
    for cert, key, tls in (("/etc/treadmill-safety/tls/dashboard.crt", "/etc/treadmill-safety/tls/dashboard.key",
                            True), ("", "", False)):
        web = dataclasses.replace(cfg.web, ipc_socket=fake.socket_path, state_dir=str(tmp_path / "web"),
                                  tls_cert=cert, tls_key=key)
        app = create_app(dataclasses.replace(cfg, web=web))
        try:
            assert app.config["TLS"] is tls and app.config["SESSION_COOKIE_SECURE"] is tls
        finally:
            app.extensions[EXTENSION_KEY].close()
