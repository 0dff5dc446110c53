"""``treadmill-safety simulate-treadmill``: serve an emulated treadmill on a pty until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from hardware.sim.treadmill import EMULATOR_DIALECTS, TreadmillEmulator


def build_parser(add_help: bool = True) -> argparse.ArgumentParser:
    """Arguments of the simulate-treadmill command (``add_help=False`` to use it as a parent)."""
    parser = argparse.ArgumentParser(
        prog="treadmill-safety simulate-treadmill", add_help=add_help,
        description="Serve an emulated TrackMaster/Woodway treadmill or speed sensor on a pseudo-terminal.",
    )
    parser.add_argument("--dialect", choices=EMULATOR_DIALECTS, default="trackmaster",
                        help="protocol to speak (default: trackmaster)")
    parser.add_argument("--link", metavar="PATH", default=None,
                        help="also make PATH a symlink to the pty, e.g. /tmp/treadmill")
    parser.add_argument("--baudrate", type=int, default=4800, help="baud rate for --byte-time (default: 4800)")
    parser.add_argument("--byte-time", action="store_true",
                        help="charge 10 bits / baud seconds per byte, like a real 8N1 line")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Print ``port: /dev/pts/N`` first, then serve until SIGINT or SIGTERM; returns 0."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with TreadmillEmulator(args.dialect, link_path=args.link, baudrate=args.baudrate,
                               byte_time=args.byte_time) as emulator:
            print(f"port: {emulator.port}", flush=True)
            # A timed wait lets the signal handler run promptly on every platform.
            while not stop.wait(0.2):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
