"""Field specs: one place that checks a value's type and range and words the error.

Config tables, runtime limit changes and IPC/HTTP bodies all go through
:func:`check_value`, so every refusal reads the same way:
``[limits] reverse_cap_kmh = 9.0: must be between 0.5 and 6 km/h``.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from dataclasses import dataclass
from typing import Any

from hardware.gpio_rules import PIN_RULE, bcm_number


@dataclass(frozen=True)
class FieldError:
    """One bad value: where it is, what it was, and what is allowed."""

    section: str
    key: str
    value: Any
    message: str

    @property
    def field(self) -> str:
        """``[section] key`` (or ``[section]`` for a whole-section problem)."""
        return f"[{self.section}] {self.key}".rstrip()

    def __str__(self) -> str:
        if self.key:
            return f"{self.field} = {shown(self.value)}: {self.message}"
        return f"{self.field}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form for API replies: ``key`` is the bare field name (a form input's ``name``),
        "" for a whole-section problem."""
        return {"field": self.field, "key": self.key, "value": jsonable(self.value), "message": self.message}


#: Containers are shown a few levels deep: repr() of a value nested a thousand levels (a JSON
#: body may be) raises RecursionError, which on the decision thread would trip the belt.
_CONTAINER_REPR = reprlib.Repr()
_CONTAINER_REPR.maxlevel = 4
_CONTAINER_REPR.maxtuple = _CONTAINER_REPR.maxlist = _CONTAINER_REPR.maxdict = 10
_CONTAINER_REPR.maxset = _CONTAINER_REPR.maxfrozenset = 10
_CONTAINER_REPR.maxstring = _CONTAINER_REPR.maxlong = _CONTAINER_REPR.maxother = 200


def shown(value: Any) -> str:
    """repr() of a value, bounded: deep containers are cut short, and Python refuses to print
    integers of over 4300 digits (a TOML file may hold one)."""
    try:
        if isinstance(value, (list, tuple, dict, set, frozenset)):
            return _CONTAINER_REPR.repr(value)
        return repr(value)
    except ValueError:
        return f"<{type(value).__name__} too large to show>"


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: scalars as they are, anything else as its bounded repr()."""
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return shown(value)


#: Larger magnitudes are refused before any float arithmetic (JSON allows 400-digit integers).
MAX_MAGNITUDE = 1e9


def is_number(value: Any, magnitude: float = MAX_MAGNITUDE) -> bool:
    """A finite int or float of sane magnitude (at most ``magnitude``); never bool, never raises."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return -magnitude <= value <= magnitude
    return math.isfinite(value) and abs(value) <= magnitude


@dataclass(frozen=True)
class Num:
    """A number in [lo, hi]; ``integer`` refuses fractions; bool is never a number."""

    lo: float
    hi: float
    unit: str = ""
    integer: bool = False
    hex: bool = False

    def describe(self) -> str:
        """The allowed range in words."""
        fmt = (lambda v: f"0x{int(v):02x}") if self.hex else (lambda v: f"{v:g}")
        kind = "a whole number" if self.integer else "a number"
        unit = f" {self.unit}" if self.unit else ""
        return f"must be {kind} from {fmt(self.lo)} to {fmt(self.hi)}{unit}"

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        # A range wider than MAX_MAGNITUDE (unix times, change numbers) says itself how large is sane.
        if not is_number(value, max(MAX_MAGNITUDE, abs(self.lo), abs(self.hi))):
            return self.describe()
        if self.integer and not float(value).is_integer():
            return self.describe()
        if not self.lo <= value <= self.hi:
            return self.describe()
        return None

    def convert(self, value: Any) -> int | float:
        """The stored form (int or float)."""
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        if isinstance(value, str) and value in self.options:
            return None
        return "must be one of " + ", ".join(f'"{o}"' for o in self.options)

    def convert(self, value: Any) -> str:
        """The stored form."""
        return value


@dataclass(frozen=True)
class Text:
    """A non-empty string without control characters."""

    hint: str
    max_len: int = 4096
    min_len: int = 1
    #: Line breaks and tabs allowed (free text such as notes); other control characters never.
    multiline: bool = False

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        allowed = "\n\r\t" if self.multiline else ""
        # A lone surrogate (from a JSON "\\ud800") is no character: it cannot be stored as UTF-8.
        if (isinstance(value, str) and self.min_len <= len(value) <= self.max_len
                and not any((ord(c) < 32 and c not in allowed) or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF
                        for c in value)):
            return None
        lines = ", line breaks allowed" if self.multiline else ""
        return f"must be {self.hint} ({self.min_len} to {self.max_len} characters{lines})"

    def convert(self, value: Any) -> str:
        """The stored form."""
        return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        return None if isinstance(value, bool) else "must be true or false"

    def convert(self, value: Any) -> bool:
        """The stored form."""
        return value


@dataclass(frozen=True)
class Pin:
    """A BCM pin number (0-27), as a number or a name such as "GPIO17"; the rule is the panel driver's."""

    def check(self, value: Any) -> str | None:
        """None if valid, else the reason."""
        return None if bcm_number(value) is not None else PIN_RULE

    def convert(self, value: Any) -> int | str:
        """The stored form."""
        return value


def spec_of(field: dataclasses.Field) -> Any:
    """The spec attached to a dataclass field."""
    return field.metadata["spec"]


def check_value(section: str, key: str, value: Any, spec: Any, errors: list[FieldError]) -> Any:
    """Check one value; on failure append a FieldError and return None."""
    reason = spec.check(value)
    if reason is not None:
        errors.append(FieldError(section, key, value, reason))
        return None
    return spec.convert(value)


def check_table(cls: type, section: str, table: Any, errors: list[FieldError],
                base: Any = None) -> Any:
    """Build dataclass ``cls`` from a table; unknown keys, missing keys and bad values are errors.

    With ``base``, missing keys keep the base's values (a partial update).
    Returns None if anything was wrong (the errors say what).
    """
    if not isinstance(table, dict):
        errors.append(FieldError(section, "", table, "must be a table of options"))
        return None
    fields = {f.name: f for f in dataclasses.fields(cls) if "spec" in f.metadata}
    before = len(errors)
    for key in table:
        if key not in fields:
            errors.append(FieldError(section, key, table[key],
                                     f"option '{key}' is not valid in section [{section}]; "
                                     f"valid options: {', '.join(fields)}"))
    values = {}
    for name, f in fields.items():
        if name in table:
            values[name] = check_value(section, name, table[name], spec_of(f), errors)
        elif base is not None:
            values[name] = getattr(base, name)
        elif f.default is dataclasses.MISSING:
            errors.append(FieldError(section, name, "(missing)", "is required; it "
                                     + (spec_of(f).check(object()) or "has no default")))
    if len(errors) > before:
        return None
    return cls(**values)
