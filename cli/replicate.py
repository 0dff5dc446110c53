"""``treadmill-safety replicate``: the clinic record's replicator (systemd/treadmill-replicator.service).

    treadmill-safety replicate --config FILE [--ipc-socket PATH] [--audit-db PATH]

It ships this treadmill's history.db (through the controller's outbox) and the
dashboard's audit trail to the clinic's PostgreSQL server, and brings the
clinic's patients and other treadmills' sessions back (clinic/replicator.py).
It exits 2 when the config has no ``[clinic] treadmill_id``; a server away is
not an error: it waits and tries again, and the outbox keeps everything.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
import threading

from cli.options import load_or_exit, setup_logging


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``replicate``."""
    p = sub.add_parser("replicate", help="ship this treadmill's history to the clinic record ([clinic]) and bring "
                                         "the clinic's patients back; a client of the controller's socket")
    p.add_argument("--config", required=True, help="path to config.toml")
    p.add_argument("--ipc-socket", help="override [web] ipc_socket (the controller's socket)")
    p.add_argument("--audit-db", help="the dashboard's access.db (default: [web] state_dir/access.db)")
    p.add_argument("--max-backoff-s", type=float, default=30.0,
                   help="longest wait between attempts while the server is away (default 30 s)")
    p.set_defaults(func=cmd_replicate)


def cmd_replicate(args: argparse.Namespace) -> int:
    """Run until SIGTERM or SIGINT."""
    cfg = load_or_exit(args.config)
    if not cfg.clinic.enabled:
        print(f"replicate: {args.config} has no [clinic] treadmill_id: this treadmill belongs to no clinic record",
              file=sys.stderr)
        return 2
    if args.ipc_socket:
        cfg = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, ipc_socket=args.ipc_socket))
    listener = setup_logging()
    from clinic.replicator import Replicator
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    replicator = Replicator(cfg, audit_db=args.audit_db, max_backoff_s=args.max_backoff_s).start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        replicator.stop()
        listener.stop()
    return 0
