"""Command line: the composition root. Only here are drivers wired to the loop."""

from __future__ import annotations

import argparse
import sys

from controller.config import ConfigError, load_config


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file: exit 0 if valid, 2 with every error if not."""
    try:
        cfg = load_config(args.path)
    except ConfigError as exc:
        print(f"{args.path}: invalid config, {len(exc.errors)} error(s):", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 2
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.path}: OK ({len(cfg.sensors)} sensor(s), protocol {cfg.treadmill.protocol}, "
          f"reverse cap {cfg.limits.reverse_cap_kmh:g} km/h)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the whole controller on simulated hardware with a scripted patient."""
    from controller.demo import run_demo
    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="treadmill-safety", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("path")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("demo", help="run on simulated hardware with a scripted patient")
    p.add_argument("--speed-kmh", type=float, default=2.0, help="belt speed the therapist sets")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``treadmill-safety`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
