"""What every doctor check shares: the config, the report it prints to, and the pin factory.

The bottom of the doctor's modules: ``sensors``, ``panel`` and ``runner`` import it, it imports none of them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.config import Config

#: The doctor logs under one name, whichever of its modules does the logging.
log = logging.getLogger("controller.doctor")

Out = Callable[[str], Any]

#: Names from systemd/treadmill-controller.service, for the hints.
SERVICE_UNIT = "treadmill-controller"
SERVICE_USER = "treadmill"
#: The dashboard's user (systemd/treadmill-dashboard.service): it must be able to read the TLS key.
WEB_USER = "treadmill-web"


def pin_name(pin: int | str | None) -> str:
    """A pin as the installer reads it on a pinout: ``GPIO17`` for 17, names as written."""
    return f"GPIO{pin}" if isinstance(pin, int) else str(pin)


def exc_text(exc: BaseException) -> str:
    """An exception's message, or its type's name when it has none."""
    return str(exc) or type(exc).__name__


class Report:
    """The PASS/FAIL/SKIP lines of one doctor run, and whether any check failed."""

    def __init__(self, out: Out) -> None:
        self._out = out
        self.failed = False

    def ok(self, check: str, detail: str) -> None:
        """Print ``PASS <check>: <detail>``."""
        self._emit(f"PASS {check}: {detail}")

    def fail(self, check: str, problem: str, hint: str) -> None:
        """Print ``FAIL <check>: <problem> — hint: <hint>``; the run fails."""
        self.failed = True
        self._emit(f"FAIL {check}: {problem} — hint: {hint}")

    def skip(self, check: str, detail: str) -> None:
        """Print ``SKIP <check>: <detail>``."""
        self._emit(f"SKIP {check}: {detail}")

    def guarded(self, check: str, body: Callable[[], None]) -> None:
        """Run one check; an unexpected exception becomes its FAIL line."""
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - checks never raise
            log.exception("doctor check %r failed unexpectedly", check)
            self.fail(check, f"unexpected {type(exc).__name__}: {exc_text(exc)}",
                      "this is a bug in the doctor or a driver; report it with the output above")

    def _emit(self, line: str) -> None:
        try:
            self._out(" ".join(line.split("\n")))
        except Exception:  # noqa: BLE001 - a broken output must not leave hardware open
            log.exception("doctor: could not print %r", line)


class LazyPinFactory:
    """The run's gpiozero pin factory, opened on first use; the XSHUT and GPIO checks share it."""

    def __init__(self, name: str, open_factory: Callable[[str], Any]) -> None:
        self.name = name
        self._open_factory = open_factory
        self._factory: Any = None
        self._error: str | None = None

    def get(self) -> Any:
        """The factory, or None if it did not load (``error`` says why); opened at most once."""
        if self._factory is None and self._error is None:
            try:
                self._factory = self._open_factory(self.name)
            except Exception as exc:  # noqa: BLE001 - PinConfigError and backend errors
                self._error = f"pin factory {self.name!r} did not load: {exc_text(exc)}"
        return self._factory

    @property
    def error(self) -> str | None:
        """Why the factory did not load, once ``get()`` has failed."""
        return self._error

    def close(self) -> None:
        """Close the factory if it was opened."""
        if self._factory is not None:
            self._factory.close()


@dataclass(frozen=True)
class DoctorContext:
    """What every check of one run reads: the config, the report it prints to and the shared pin factory."""

    cfg: Config
    report: Report
    pins: LazyPinFactory
