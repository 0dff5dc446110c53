"""Run the dashboard under waitress, never Flask's development server.

The command line is ``treadmill-safety web --config FILE`` (controller/cli.py);
the therapist password is set with ``treadmill-safety set-password``.
"""

from __future__ import annotations

import waitress

from controller.config import Config
from web import create_app
from web.link import EXTENSION_KEY

#: Worker threads. Every open SSE stream holds one for as long as it is open,
#: so at most web.DEFAULT_MAX_SSE_STREAMS of them; the rest always remain for
#: E-stops and commands (tests/web/test_serve.py checks the margin).
THREADS = 64


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
        waitress.serve(app, host=cfg.web.host, port=cfg.web.port, threads=THREADS, ident="treadmill-dashboard")
    finally:
        link.close()
