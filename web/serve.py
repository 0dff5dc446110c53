"""Run the dashboard under cheroot, never Flask's development server; HTTPS when [web] tls_cert is set.

cheroot (CherryPy's WSGI server, pure Python) terminates TLS itself, so no
reverse proxy runs beside the dashboard. The command line is
``treadmill-safety web --config FILE`` (cli/main.py).

cheroot spends a worker thread on every connection it reads from; three changes
keep slow or silent clients from taking the workers an E-stop needs: a new
connection waits in cheroot's selector until it has bytes (as a kept-open one
does), the TLS handshake runs in the worker rather than the accept loop, and a
connection whose handshake and request (head and body) are not in within
HEAD_DEADLINE_S is cut.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import ssl
import threading
import time
from typing import Any

from cheroot import server as cheroot_server, wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from controller.config import Config
from web import create_app
from web.link import EXTENSION_KEY
from web.tls import server_context

log = logging.getLogger(__name__)

#: Worker threads. Every open SSE stream holds one for as long as it is open,
#: so at most web.DEFAULT_MAX_SSE_STREAMS of them; the rest always remain for
#: E-stops and commands (tests/web/test_serve.py checks the margin).
THREADS = 64

#: A client that acknowledges nothing for this long is disconnected by the kernel
#: (TCP_USER_TIMEOUT, which also bounds a receive window held shut): a stream to a
#: client that never reads, or that left the network, would otherwise keep its
#: stream slot and worker thread for as long as the connection stays open.
STALLED_CLIENT_TIMEOUT_S = 10.0
#: The timeout of every read and write a worker does (cheroot's default): a request, a
#: TLS handshake or an answer that stalls this long ends its connection and frees the worker.
SOCKET_TIMEOUT_S = 10.0
#: A request's line, headers and body, and before the first one the TLS handshake, must all arrive
#: within this of the connection's turn in a worker: a client that dribbles them (a slowloris)
#: would otherwise keep its worker for as long as it keeps dribbling, each read within the timeout.
HEAD_DEADLINE_S = SOCKET_TIMEOUT_S
#: How often the deadlines are checked.
HEAD_CHECK_S = 0.25
#: A connection waiting for its first request, or kept open for the next one, waits in
#: cheroot's selector (no worker) this long; as waitress's channel_timeout. A tablet's
#: kept-open connection carries an E-stop without a new TLS handshake.
IDLE_CONNECTION_S = 120.0
#: The listen backlog (cheroot's default is 5): a burst of tablets reconnecting
#: after a Wi-Fi drop is queued, not refused.
LISTEN_BACKLOG = 1024
#: Connections waiting in the selector beyond which an answer closes its connection
#: (cheroot's default is 10): a few tablets with a browser's usual six each, and new ones.
KEEP_ALIVE_CONNECTIONS = 256
#: A request's line and headers, and its body (the app's own MAX_CONTENT_LENGTH): larger ones are refused.
MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024
#: cheroot's own answer to a plain HTTP request on the TLS port.
PLAIN_HTTP_REFUSAL = b"The client sent a plain HTTP request, but this server only speaks HTTPS on this port."
#: How long, and how much of its request, a refused plain-HTTP client gets before the socket closes.
REFUSAL_LINGER_S = 1.0
REFUSAL_DRAIN_BYTES = 64 * 1024


def socket_options() -> list[tuple[int, int, int]]:
    """Options for every accepted connection: TCP_NODELAY, plus the stall timeout on Linux."""
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(STALLED_CLIENT_TIMEOUT_S * 1000)))
    return options


class WorkerHandshakeAdapter(BuiltinSSLAdapter):
    """cheroot's builtin TLS adapter on our SSLContext, with the handshake moved into the worker thread.

    cheroot wraps an accepted socket in its one accept thread, and the builtin adapter
    completes the handshake there: a client that connects and never finishes it (a
    tablet leaving the Wi-Fi, a port scan) stops every new connection, an anonymous
    E-stop included, for the whole socket timeout (cherrypy/cheroot#748). Here the
    wrap only sets TLS up; :class:`DashboardConnection` completes the handshake in
    its worker, where a stall costs one worker, as a stalled plain request does.
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        """Serve with ``context`` (web.tls.server_context: certificate, key, TLS 1.2 minimum)."""
        self.certificate = self.private_key = self.certificate_chain = None
        self.ciphers = self.private_key_password = None
        self.context = context
        self._server_env = {}

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, Any]]:
        """TLS on the socket, the handshake left to the worker; what WSGI needs to know it is HTTPS."""
        wrapped = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return wrapped, {"wsgi.url_scheme": "https", "HTTPS": "on"}


def cut(sock: socket.socket) -> None:
    """End a connection from another thread: its worker's blocked read returns at once (end of stream).

    The shutdown goes through a duplicate descriptor, so an SSLSocket's own state is left alone.
    """
    try:
        with socket.socket(fileno=os.dup(sock.fileno())) as dup:
            dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed already


class HeadDeadlines:
    """One thread for the whole server: it cuts a connection whose request head is overdue (HEAD_DEADLINE_S)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due: dict[cheroot_server.HTTPConnection, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="head-deadlines", daemon=True)

    def start(self) -> None:
        """Start checking."""
        self._thread.start()

    def stop(self) -> None:
        """Stop checking (idempotent)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def arm(self, conn: cheroot_server.HTTPConnection) -> None:
        """The connection's worker starts reading a request head (or the TLS handshake)."""
        with self._lock:
            self._due[conn] = time.monotonic() + HEAD_DEADLINE_S

    def disarm(self, conn: cheroot_server.HTTPConnection) -> None:
        """The head is in (or the connection is done): the answer may take as long as it takes."""
        with self._lock:
            self._due.pop(conn, None)

    def _run(self) -> None:
        while not self._stop.wait(HEAD_CHECK_S):
            now = time.monotonic()
            with self._lock:  # a worker cannot disarm between the check and the cut
                for conn in [c for c, due in self._due.items() if due <= now]:
                    del self._due[conn]
                    log.info("cut %s: no complete request within %g s", conn.remote_addr, HEAD_DEADLINE_S)
                    cut(conn.socket)


class DashboardRequest(cheroot_server.HTTPRequest):
    """cheroot's request, with the whole body read under the head deadline before the app runs.

    cheroot hands the app a body still on the socket, read as the app asks for it, each read
    within the socket timeout: a client that sends its body a byte now and then would keep
    the worker as long as it likes (and the audit trail reads every change's body). Here the
    body (at most MAX_BODY_BYTES, its length given) is read whole first, as waitress did, and
    the deadline is disarmed only then.
    """

    def respond(self) -> None:
        """Read the body under the deadline, then call the app with it in memory, as cheroot's respond does."""
        try:
            if self.chunked_read:
                # Browsers send a Content-Length; a chunked body's length is not known in advance.
                self.simple_response("411 Length Required", "send the body with a Content-Length")
                return
            length = int(self.inheaders.get(b"Content-Length", 0))
            if length > self.server.max_request_body_size:
                self.simple_response("413 Request Entity Too Large",
                                     f"the body is over {self.server.max_request_body_size} bytes")
                return
            body = self.conn.rfile.read(length) if length else b""
        finally:
            self.server.head_deadlines.disarm(self.conn)
        if len(body) < length:  # the client left, or was cut at the deadline
            self.close_connection = True
            return
        self.rfile = cheroot_server.KnownLengthRFile(io.BytesIO(body), length)
        self.server.gateway(self).respond()
        self.ready and self.ensure_headers_sent()
        if self.chunked_write:
            self.conn.wfile.write(b"0\r\n\r\n")


class DashboardConnection(cheroot_server.HTTPConnection):
    """One client connection: the socket options on accept, and the TLS handshake before the first request."""

    RequestHandlerClass = DashboardRequest

    def __init__(self, server: cheroot_server.HTTPServer, sock: socket.socket, makefile: Any = None) -> None:
        super().__init__(server, sock, makefile or cheroot_server.MakeFile)
        self._handshake_pending = isinstance(sock, ssl.SSLSocket)
        #: Until its first bytes arrive, a new connection waits in the selector, not in a worker.
        self.awaiting_first_bytes = True
        # cheroot gave it the server's timeout, which is the idle one here (IDLE_CONNECTION_S).
        sock.settimeout(SOCKET_TIMEOUT_S)
        for level, option, value in socket_options():
            try:
                sock.setsockopt(level, option, value)
            except OSError:  # the client is gone already: its first read will say so
                break

    def communicate(self) -> bool:
        """Complete the TLS handshake on first use (refusing plain HTTP), then serve a request as cheroot does.

        The handshake and the request's head are read under the head deadline.
        """
        deadlines = self.server.head_deadlines
        deadlines.arm(self)
        try:
            if self._handshake_pending:
                self._handshake_pending = False
                if not self._handshake():
                    return False
            return super().communicate()
        finally:
            deadlines.disarm(self)

    def _handshake(self) -> bool:
        sock = self.socket
        try:
            sock.do_handshake()
            return True
        except ssl.SSLError as exc:
            if "http request" in str(exc).lower():
                self._refuse_plain_http()
            else:
                log.debug("TLS handshake with %s failed: %s", self.remote_addr, exc)
        except OSError as exc:  # a timeout, or the client left
            log.debug("TLS handshake with %s ended: %s", self.remote_addr, exc)
        return False

    def _refuse_plain_http(self) -> None:
        """Answer a plain request on the TLS port as cheroot does (400, and no dashboard), then close."""
        log.info("refused a plain HTTP request from %s on the HTTPS port", self.remote_addr)
        response = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(PLAIN_HTTP_REFUSAL), PLAIN_HTTP_REFUSAL))
        deadline = time.monotonic() + REFUSAL_LINGER_S
        try:
            # The TLS layer failed, so the answer goes out on a plain duplicate of the same descriptor.
            with socket.socket(fileno=os.dup(self.socket.fileno())) as raw:
                raw.settimeout(REFUSAL_LINGER_S)
                raw.sendall(response)
                raw.shutdown(socket.SHUT_WR)
                # Read the rest of the request before closing (a bounded time and amount): closing over
                # unread data sends a reset, which may reach the client before it has read the answer.
                drained = 0
                while drained < REFUSAL_DRAIN_BYTES and (left := deadline - time.monotonic()) > 0:
                    raw.settimeout(left)
                    chunk = raw.recv(4096)
                    if not chunk:
                        break
                    drained += len(chunk)
        except OSError:
            pass


class DashboardServer(wsgi.Server):
    """cheroot's WSGI server with our connections, and its messages through logging (the journal)."""

    ConnectionClass = DashboardConnection

    #: Made by prepare(), before the first connection.
    head_deadlines: HeadDeadlines | None = None

    def prepare(self) -> None:
        """Bind and listen, as cheroot does; and start the head deadlines."""
        self.head_deadlines = HeadDeadlines()
        super().prepare()
        self.head_deadlines.start()

    def stop(self) -> None:
        """Stop serving, as cheroot does; and the head deadlines."""
        try:
            super().stop()
        finally:
            if self.head_deadlines is not None:
                self.head_deadlines.stop()

    def process_conn(self, conn: DashboardConnection) -> None:
        """A new connection goes to the selector until it has something to read, then to a worker.

        cheroot hands a new connection straight to a worker, which then waits in a blocking read:
        each client that connects and says nothing (a browser's spare connection, a slowloris)
        would hold one of the THREADS for the whole timeout. Kept-open connections already wait
        in the selector; new ones now do too.
        """
        if conn.awaiting_first_bytes:
            conn.awaiting_first_bytes = False
            self._connections.put(conn)
            return
        super().process_conn(conn)

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        """cheroot writes straight to stderr by default; the queue handler keeps that off the workers' path."""
        log.log(level, "%s", msg, exc_info=traceback)


def make_server(app: Any, cfg: Config) -> DashboardServer:
    """The dashboard's server on ``[web] host:port``: HTTPS with the configured certificate, else plain HTTP."""
    server = DashboardServer((cfg.web.host, cfg.web.port), app, numthreads=THREADS, max=THREADS,
                             request_queue_size=LISTEN_BACKLOG, timeout=IDLE_CONNECTION_S,
                             server_name="treadmill-dashboard")
    server.keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
    # cheroot's defaults are "no limit" for both.
    server.max_request_header_size = MAX_HEAD_BYTES
    server.max_request_body_size = MAX_BODY_BYTES
    if cfg.web.tls_cert:
        server.ssl_adapter = WorkerHandshakeAdapter(server_context(cfg.web.tls_cert, cfg.web.tls_key))
    return server


def serve(cfg: Config) -> None:
    """Serve the dashboard on ``cfg.web.host:port`` until interrupted; runs the shared StatusHub meanwhile.

    A certificate or key that cannot serve raises CertificateError (naming the file) before anything listens.
    """
    app = create_app(cfg)
    server = make_server(app, cfg)
    link = app.extensions[EXTENSION_KEY]
    link.start()
    try:
        server.prepare()
        host, port = server.bind_addr[:2]
        # cheroot writes each chunk to the socket as the app yields it: SSE statuses are not
        # held in a buffer (tests/web/test_serve.py checks they arrive as they happen).
        log.info("Serving on %s://%s:%d", "https" if server.ssl_adapter else "http", host, port)
        server.serve()
    finally:
        server.stop()
        link.close()
