"""Command line: the composition root. Only here are drivers wired to the loop."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from cli.options import add_web_options, load_or_exit, setup_logging, web_config


def open_i2c(bus_number: int):
    """The real I2C bus (Blinka's busio over /dev/i2c-N): only on the Pi, with the "pi" extra."""
    try:
        from adafruit_extended_bus import ExtendedI2C
    except ImportError as exc:
        raise SystemExit(f"[i2c] bus = {bus_number}: cannot open the I2C bus: {exc}; "
                         "install the \"pi\" extra on the Raspberry Pi") from exc
    return ExtendedI2C(bus_number)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM or SIGINT (on the real hardware, or --simulate)."""
    cfg = load_or_exit(args.config)
    listener = setup_logging()
    from controller.notify import Notifier
    from controller.service import announce_ready, healthy_tick_hook
    stop = threading.Event()
    controller = None
    bench = None
    notifier = Notifier()
    hook = healthy_tick_hook(notifier, lambda: controller.loop.core if controller and controller.loop else None)

    def on_signal(signum, frame):  # noqa: ARG001 - signal handler signature
        # The relay drops before anything else: the loop's stop() opens it first.
        if controller is not None and controller.loop is not None:
            controller.loop.stop()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if args.simulate:
            from sim.bench import SimBench, sim_config
            bench = SimBench(sim_config(cfg.storage.state_dir, base=cfg, protocol=cfg.treadmill.protocol),
                             state_dir=cfg.storage.state_dir, ipc_socket=cfg.web.ipc_socket,
                             start_gap_mm=1000.0, on_healthy_tick=hook)
            controller = bench.controller
            bench.start()
        else:
            from controller.assembly import Controller
            from hardware.io import make_pin_factory
            controller = Controller(cfg, i2c=open_i2c(cfg.i2c.bus), pin_factory=make_pin_factory(cfg.gpio.pin_factory),
                                    on_healthy_tick=hook)
            controller.start()
            controller.serve_ipc()
        if announce_ready(controller.loop.core, notifier):
            return 1  # systemd restarts us; the journal has the reason
        while not stop.wait(1.0):
            pass
        return 0
    finally:
        notifier.stopping()
        if bench is not None:
            bench.close()
        elif controller is not None:
            controller.close()
        notifier.close()
        listener.stop()


def cmd_web(args: argparse.Namespace) -> int:
    """Serve the dashboard under cheroot, HTTPS with [web] tls_cert; it reaches the controller only by its socket."""
    if (args.tls_cert is None) != (args.tls_key is None) or bool(args.tls_cert) != bool(args.tls_key):
        print("web: --tls-cert and --tls-key go together (both paths, or both \"\" for plain HTTP)",
              file=sys.stderr)
        return 2
    cfg = web_config(args)
    listener = setup_logging()
    try:
        from web.serve import serve
        from web.tls import CertificateError
        try:
            serve(cfg)
        except CertificateError as exc:
            print(f"web: cannot serve HTTPS: {exc}; fix [web] tls_cert/tls_key in {args.config}, or generate a "
                  f"certificate with: treadmill-safety tls-cert --config {args.config}", file=sys.stderr)
            return 2
        return 0
    finally:
        listener.stop()


def cmd_tls_cert(args: argparse.Namespace) -> int:
    """Write a self-signed certificate and key where [web] tls_cert and tls_key point; print its fingerprint."""
    cfg = load_or_exit(args.config)
    if not cfg.web.tls_cert:
        print(f"tls-cert: [web] tls_cert and tls_key are empty in {args.config}: set them to where the certificate "
              "and key go (/etc/treadmill-safety/tls/dashboard.crt and .key in the example config)", file=sys.stderr)
        return 2
    from web.tls import default_names, generate_self_signed
    dns_names, addresses = default_names()
    try:
        info = generate_self_signed(cfg.web.tls_cert, cfg.web.tls_key, args.host or dns_names,
                                    args.address or addresses, force=args.force)
    except FileExistsError as exc:
        print(f"tls-cert: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"tls-cert: {exc}; nothing written", file=sys.stderr)
        return 2
    print(f"certificate: {info.path} (self-signed, valid until {info.not_after:%Y-%m-%d})")
    import os
    print(f"key: {cfg.web.tls_key} (mode {os.stat(cfg.web.tls_key).st_mode & 0o777:04o}; the dashboard's user "
          "must be able to read it)")
    print(f"names: {', '.join(info.names)}")
    print(f"SHA-256 fingerprint: {info.fingerprint}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Hardware self-test for the installer: one PASS/FAIL line per check; 0 all pass, 1 a FAIL, 2 bad config."""
    from controller.doctor.runner import main_doctor
    from voice.doctor import CHECK as VOICE_CHECK, check_voice
    # The voice is a process beside the controller: its line is wired here, the controller knows nothing of it.
    return main_doctor(args.config, args.relay_test, extra_checks=((VOICE_CHECK, check_voice),))


def cmd_simulate_treadmill(args: argparse.Namespace) -> int:
    """Serve the treadmill emulator on a pseudo-terminal."""
    from hardware.sim.treadmill_cli import main as emulator_main
    argv = ["--dialect", args.dialect, "--baudrate", str(args.baudrate)]
    argv += ["--link", args.link] if args.link else []
    argv += ["--byte-time"] if args.byte_time else []
    return emulator_main(argv)


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file: exit 0 if valid, 2 with every error if not."""
    cfg = load_or_exit(args.path)
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.path}: OK ({len(cfg.sensors)} sensor(s), protocol {cfg.treadmill.protocol}, "
          f"reverse cap {cfg.limits.reverse_cap_kmh:g} km/h)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Back up the history (events, patients, sessions, timelines) into a new folder under --out."""
    if args.state_dir:
        state_dir = args.state_dir
    elif args.config:
        state_dir = load_or_exit(args.config).storage.state_dir
    else:
        print("export: give --config or --state-dir", file=sys.stderr)
        return 2
    from pathlib import Path

    from controller.storage.export import export_history
    from controller.storage.database import StorageError
    try:
        folder = export_history(Path(state_dir) / "history.db", Path(args.out))
    except StorageError as exc:
        print(f"export failed: {exc}", file=sys.stderr)
        return 1
    print(f"exported to {folder}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """The controller on simulated hardware with the dashboard (or, --scripted, a terminal run)."""
    if args.scripted:
        from sim.demo import run_demo
        return run_demo(args)
    from sim.dashboard import run_dashboard_demo
    return run_dashboard_demo(args)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="treadmill-safety", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("path")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("run", help="run the controller on the hardware the config names")
    p.add_argument("--config", required=True, help="path to config.toml")
    p.add_argument("--simulate", action="store_true",
                   help="run on simulated hardware (sensor models, mock GPIO, a pty treadmill)")
    p.set_defaults(func=cmd_run)

    from hardware.sim.treadmill_cli import build_parser as emulator_parser
    p = sub.add_parser("simulate-treadmill", parents=[emulator_parser(add_help=False)],
                       help="serve the treadmill emulator on a pty; first line: port: /dev/pts/N")
    p.set_defaults(func=cmd_simulate_treadmill)

    from cli.access import add_commands
    p = sub.add_parser("web", help="serve the dashboard (cheroot; HTTPS with [web] tls_cert and tls_key)")
    add_web_options(p)
    p.add_argument("--tls-cert", help='override [web] tls_cert (with --tls-key; "" for both serves plain HTTP)')
    p.add_argument("--tls-key", help="override [web] tls_key (with --tls-cert)")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("tls-cert", help="write a self-signed dashboard certificate where [web] tls_cert and "
                                        "tls_key point, and print its SHA-256 fingerprint")
    p.add_argument("--config", required=True, help="path to config.toml")
    p.add_argument("--host", action="append", metavar="NAME",
                   help="a DNS name for the certificate (repeatable; replaces the default: this machine's host "
                        "name, NAME.local and localhost)")
    p.add_argument("--address", action="append", metavar="IP",
                   help="an IP address for the certificate (repeatable; replaces this machine's LAN addresses)")
    p.add_argument("--force", action="store_true",
                   help="replace a certificate tls-cert made before (never one it did not make)")
    p.set_defaults(func=cmd_tls_cert)
    add_commands(sub)

    from cli.voice import add_command as add_voice_command
    add_voice_command(sub)
    from cli.replicate import add_command as add_replicate_command
    add_replicate_command(sub)
    from cli.clinic import add_clinic_parser
    add_clinic_parser(sub)

    p = sub.add_parser("doctor", help="hardware self-test for the installer: one PASS/FAIL line per check")
    p.add_argument("--config", required=True, help="path to config.toml")
    p.add_argument("--relay-test", action="store_true",
                   help="also energize the safety relay for 0.5 s, then drop it (listen for two clicks)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("export", help="back up events, patients, sessions and timelines (safe while running)")
    p.add_argument("--out", required=True, help="a folder; the backup goes into a new dated folder inside it")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--config", help="path to config.toml (its [storage] state_dir is exported)")
    where.add_argument("--state-dir", help="the controller's state directory, instead of --config")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("demo", help="the controller on simulated hardware, with the dashboard")
    p.add_argument("--port", type=int, default=8080, help="dashboard port on 127.0.0.1 (default 8080)")
    p.add_argument("--scripted", action="store_true",
                   help="no dashboard: a scripted patient drifts back until the trip, then exit")
    p.add_argument("--speed-kmh", type=float, default=2.0, help="with --scripted: the belt speed")
    p.add_argument("--tls", action="store_true",
                   help="serve the dashboard over HTTPS, with a throw-away certificate for 127.0.0.1 and localhost")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``treadmill-safety`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
