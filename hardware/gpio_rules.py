"""The [gpio] rules the panel driver enforces and the config checks: pin names, pin factories, debounce.

Pure (no gpiozero, no I/O), so ``controller.config`` can read them without
loading a GPIO backend, and both refuse the same values in the same words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TypeVar

_T = TypeVar("_T")

#: The highest BCM GPIO number on the Raspberry Pi's 40-pin header (they start at 0).
BCM_PIN_MAX = 27
# BCM names only: BOARD/J8/WPI numbering would hide a pin used twice under two names.
# ASCII: without it IGNORECASE also takes "GPİO5" (a dotted capital I), which gpiozero does not.
_PIN_NAME = re.compile(r"(GPIO|BCM)([0-9]{1,2})", re.IGNORECASE | re.ASCII)
#: Why a pin was refused, worded for "[gpio] relay_pin = 40: <this>".
PIN_RULE = f'must be a BCM pin number from 0 to {BCM_PIN_MAX}, or its name like "GPIO17"'

#: Pin factory names accepted in [gpio] pin_factory, and the gpiozero class behind each as
#: "module:Class", imported only when that factory is made (a backend may be missing).
PIN_FACTORY_CLASSES: dict[str, str] = {
    "lgpio": "gpiozero.pins.lgpio:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
    "pigpio": "gpiozero.pins.pigpio:PiGPIOFactory",
    "native": "gpiozero.pins.native:NativeFactory",
    "mock": "gpiozero.pins.mock:MockFactory",
}
PIN_FACTORIES: tuple[str, ...] = tuple(PIN_FACTORY_CLASSES)

#: [gpio] estop_bounce_ms, inclusive. Debouncing is always on, so contact bounce never reaches the
#: loop as a burst of edges; longer would delay the E-stop edge (the level is polled every tick anyway).
ESTOP_BOUNCE_MS_RANGE = (1.0, 10.0)
ESTOP_BOUNCE_MS_DEFAULT = 5.0


def bcm_number(pin: object) -> int | None:
    """The BCM number of ``pin`` (an int 0-27, or "GPIO17"/"BCM17" in any case), or None if it is not one."""
    if isinstance(pin, int) and not isinstance(pin, bool):
        return pin if 0 <= pin <= BCM_PIN_MAX else None
    # fullmatch: with match(), "$" also matches before a trailing newline ("GPIO17\n").
    match = _PIN_NAME.fullmatch(pin) if isinstance(pin, str) else None
    if match is None or int(match.group(2)) > BCM_PIN_MAX:
        return None
    return int(match.group(2))


def pin_clashes(pins: Iterable[tuple[_T, object]]) -> list[tuple[_T, _T]]:
    """``(user, earlier user)`` for each user of a BCM pin an earlier user already named.

    5, "GPIO5", "gpio05" and "BCM5" are one pin; pins that are not valid are skipped
    (they have their own error).
    """
    owners: dict[int, _T] = {}
    clashes: list[tuple[_T, _T]] = []
    for user, pin in pins:
        number = bcm_number(pin)
        if number is None:
            continue
        if number in owners:
            clashes.append((user, owners[number]))
        else:
            owners[number] = user
    return clashes
