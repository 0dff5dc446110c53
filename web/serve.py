"""Run the dashboard under waitress, never Flask's development server.

The command line is ``treadmill-safety web --config FILE`` (cli/main.py);
the therapist password is set with ``treadmill-safety set-password``.
"""

from __future__ import annotations

import socket

import waitress

from controller.config import Config
from web import create_app
from web.link import EXTENSION_KEY

#: Worker threads. Every open SSE stream holds one for as long as it is open,
#: so at most web.DEFAULT_MAX_SSE_STREAMS of them; the rest always remain for
#: E-stops and commands (tests/web/test_serve.py checks the margin).
THREADS = 64

#: A client that acknowledges nothing for this long is disconnected by the kernel
#: (TCP_USER_TIMEOUT, which also bounds a receive window held shut): a stream to a
#: client that never reads, or that left the network, would otherwise keep its
#: stream slot and worker thread for as long as the connection stays open.
STALLED_CLIENT_TIMEOUT_S = 10.0


def socket_options() -> list[tuple[int, int, int]]:
    """Options for every accepted connection: waitress's default TCP_NODELAY, plus the stall timeout on Linux."""
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    if hasattr(socket, "TCP_USER_TIMEOUT"):
        options.append((socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(STALLED_CLIENT_TIMEOUT_S * 1000)))
    return options


def serve(cfg: Config) -> None:
    """Serve the dashboard on ``cfg.web.host:port`` until interrupted; runs the shared StatusHub meanwhile."""
    app = create_app(cfg)
    link = app.extensions[EXTENSION_KEY]
    link.start()
    try:
        # Streaming (SSE) needs waitress to flush each chunk as it comes rather
        # than collect it in the output buffer. That is send_bytes=1, which has
        # been waitress's default since 1.3.0 (Pylons/waitress#246), where the
        # keyword was also deprecated: passing it only raises a
        # DeprecationWarning (an error under pytest -W error). So it is left at
        # its default on purpose; tests/web/test_serve.py checks that statuses
        # reach a client through waitress as they happen.
        server = waitress.create_server(app, host=cfg.web.host, port=cfg.web.port, threads=THREADS,
                                        ident="treadmill-dashboard")
        # waitress has no keyword for these; it reads them for every connection it accepts.
        server.adj.socket_options = socket_options()
        server.print_listen("Serving on http://{}:{}")
        server.run()
    finally:
        link.close()
