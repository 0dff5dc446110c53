"""Options, config loading and logging shared by the subcommands."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import logging.handlers
import queue
import sys

from controller.config import ConfigError, load_config


def load_or_exit(path: str):
    """The config at ``path``, or every error on stderr and exit status 2."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"{path}: invalid config, {len(exc.errors)} error(s):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        raise SystemExit(2) from exc


def web_config(args: argparse.Namespace):
    """The config with the command line's [web] overrides applied."""
    cfg = load_or_exit(args.config)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port), ("ipc_socket", args.ipc_socket),
                                   ("state_dir", args.state_dir), ("tls_cert", getattr(args, "tls_cert", None)),
                                   ("tls_key", getattr(args, "tls_key", None))) if v is not None}
    return dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, **overrides))


def add_web_options(p: argparse.ArgumentParser) -> None:
    """--config and the [web] overrides every dashboard-side command takes."""
    p.add_argument("--config", required=True, help="path to config.toml")
    p.add_argument("--host", help="override [web] host")
    p.add_argument("--port", type=int, help="override [web] port")
    p.add_argument("--ipc-socket", help="override [web] ipc_socket")
    p.add_argument("--state-dir", help="override [web] state_dir")


def setup_logging(level: int = logging.INFO) -> logging.handlers.QueueListener:
    """Log through a queue, so a slow journal or disk never blocks the decision thread (or a prompt)."""
    q: queue.SimpleQueue = queue.SimpleQueue()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(threadName)s %(name)s: %(message)s"))
    listener = logging.handlers.QueueListener(q, handler, respect_handler_level=True)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(q)]
    root.setLevel(level)
    listener.start()
    return listener
