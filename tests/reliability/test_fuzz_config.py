"""The config loader takes arbitrary TOML values and answers with a clear error or a valid config.

Starting from systemd/config.example.toml, hypothesis replaces values of real
keys with arbitrary TOML values (huge integers, nan, inf, -0.0, unicode,
arrays, inline tables, dates and times), adds unknown keys and sections, and
deletes keys and sections. The document is written as TOML text by a small
emitter below (the standard library only reads TOML) and read by load_config.
The answer is either a Config that keeps the documented cross-field rules,
checked here independently, or a ConfigError naming what was changed; never
any other exception.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, strategies as st

from controller.config import Config, ConfigError, load_config
from tests.reliability.tally import TALLY, fuzz

KIND = "bad inputs: config values"
EXAMPLE = Path(__file__).resolve().parents[2] / "systemd" / "config.example.toml"
BASE: dict[str, Any] = tomllib.loads(EXAMPLE.read_text())
#: Every (section, sensor index or None, key) of the example.
TARGETS = [(section, None, key) for section, table in BASE.items() if section != "sensors" for key in table] + [
    ("sensors", i, key) for i, table in enumerate(BASE["sensors"]) for key in table]
SECTIONS = sorted(BASE)
REQUIRED_SECTIONS = {"treadmill", "sensors", "gpio"}
#: Keys without a default (the README's "required"); xshut_pin too while there are two sensors.
REQUIRED_KEYS = {("treadmill", "protocol"), ("treadmill", "port"), ("gpio", "pin_factory"), ("gpio", "relay_pin"),
                 ("gpio", "heartbeat_pin"), ("gpio", "estop_pin"), ("sensors", "id"), ("sensors", "i2c_address"),
                 ("sensors", "xshut_pin")}
#: Keys that feed a cross-field rule reported under another key (README: Stop distance, Config).
REACH = ("[limits] reverse_cap_kmh", "[limits] forward_cap_kmh")
RELATED: dict[tuple[str, str], tuple[str, ...]] = {
    ("treadmill", "decel_mps2"): REACH, ("treadmill", "reaction_time_s"): REACH,
    ("sensors", "timing_budget_ms"): REACH, ("sensors", "mount_offset_mm"): REACH,
    ("limits", "base_stop_mm"): REACH, ("limits", "warn_margin_mm"): REACH,
    ("treadmill", "poll_hz"): ("[treadmill] link_timeout_s",),
    ("treadmill", "ack_timeout_s"): ("[treadmill] link_timeout_s",),
    ("treadmill", "protocol"): ("[treadmill] link_timeout_s", "[treadmill] reverse_mode_carries"),
    ("sensors", "id"): ("[sensors] id",), ("sensors", "i2c_address"): ("[sensors] i2c_address",),
}
PIN_NAME = re.compile(r"(?:GPIO|BCM)([0-9]{1,2})", re.IGNORECASE)
#: Python cannot print integers this long in decimal; TOML files can still hold them.
HUGE_DIGITS = 5000


class Literal(str):
    """TOML text written as is: an integer too long for Python's int(), or nesting deeper than tomllib goes."""

    def __repr__(self) -> str:
        return f"Literal({self[:8]}...{len(self)} characters)"


class HugeInt(int):
    """An integer too long for Python to print in decimal, with a short repr for hypothesis's reports."""

    def __repr__(self) -> str:
        return f"HugeInt(0x{self:x})" if self.bit_length() < 64 else f"HugeInt({self.bit_length()} bits)"


# ---- a small TOML emitter -------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\x7f]')


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    return '"' + _NEEDS_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        # Decimal up to Python's printing limit; beyond it hexadecimal, which has no such limit.
        return str(value) if abs(value) < 10**4000 else f"0x{value:x}"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {value!r}")


def toml_document(data: dict[str, Any]) -> str:
    """Plain values first (they must precede every table header), then tables, then arrays of tables."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict) and not is_table_array(v)]
    for name, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{toml_string(name)}]")
            lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()]
    for name, value in data.items():
        if is_table_array(value):
            for table in value:
                lines.append(f"[[{toml_string(name)}]]")
                lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def has_literal(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_literal(v) for v in value.values())
    if isinstance(value, list):
        return any(has_literal(v) for v in value)
    return isinstance(value, Literal)


def is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(t, dict) for t in value)


def same(a: Any, b: Any) -> bool:
    """Equality that holds nan equal to itself (for the emitter's round trip)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if is_number(a) and is_number(b):
        return isinstance(a, int) == isinstance(b, int) and a == b
    return type(a) is type(b) and a == b


# ---- strategies -------------------------------------------------------------------------------

huge_ints = st.one_of(st.sampled_from([2**63 - 1, -(2**63), 2**64, 10**100, -(10**100)]),
                      st.just(HUGE_DIGITS).map(lambda n: HugeInt(16**n)))
huge_decimal = st.sampled_from(["1", "-9"]).map(lambda digit: Literal(digit * HUGE_DIGITS))
near_valid_strings = st.sampled_from([
    "trackmaster", "woodway", "speed-sensor", "lgpio", "mock", "auto", "km/h", "mph", "GPIO17", "gpio5", "BCM27",
    "GPIO28", "GPIO17\n", " GPIO17", "GPIO 17", "17", "", " ", "left", "right", "/dev/ttyUSB0", "a\u0000b", "\u00e9",
    "\U0001f600"]) | st.just(5000).map(lambda n: "x" * n)
scalars = st.one_of(
    st.booleans(), st.integers(), st.integers(-100, 70000), huge_ints, huge_decimal,
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-1000, 1000), st.just(-0.0),
    st.text(max_size=12), near_valid_strings,
    st.datetimes(timezones=st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=-5))])),
    st.dates(), st.times())
toml_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                           st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=6)


def nearby(original: Any) -> st.SearchStrategy[Any]:
    """Values of the original's own type close to it: these often make a valid config, or break a cross rule."""
    if isinstance(original, bool):
        return st.booleans()
    if isinstance(original, int):
        return st.integers(original // 2 - 2, original * 2 + 2)
    if isinstance(original, float):
        return st.floats(min(original / 2, original * 2), max(original / 2, original * 2))
    return st.sampled_from([original, original.upper(), original + "x"])


@dataclass(frozen=True)
class Mutation:
    """One change to the example: set, delete, unknown_key, unknown_section, replace_section, delete_section."""

    action: str
    section: str
    index: int | None = None
    key: str = ""
    value: Any = None

    def label(self) -> str:
        """How the loader names the place: ``[section] key``, ``[sensors #2] key`` or ``[section]``."""
        where = self.section if self.index is None else f"{self.section} #{self.index + 1}"
        return f"[{where}] {self.key}".rstrip()

    def apply(self, data: dict[str, Any]) -> None:
        table = data.get(self.section)
        if self.index is not None:
            table = table[self.index] if isinstance(table, list) and self.index < len(table) else None
        if self.action in ("set", "unknown_key") and isinstance(table, dict):
            table[self.key] = self.value
        elif self.action == "delete" and isinstance(table, dict):
            table.pop(self.key, None)
        elif self.action in ("unknown_section", "replace_section"):
            data[self.section] = self.value
        elif self.action == "delete_section":
            data.pop(self.section, None)


@st.composite
def mutations(draw: st.DrawFn) -> Mutation:
    action = draw(st.sampled_from(["set", "set", "set", "set", "delete", "unknown_key", "unknown_section",
                                   "replace_section", "delete_section"]))
    if action in ("set", "delete"):
        section, index, key = draw(st.sampled_from(TARGETS))
        original = BASE[section][index][key] if index is not None else BASE[section][key]
        value = draw(st.one_of(toml_values, nearby(original), nearby(original))) if action == "set" else None
        return Mutation(action, section, index, key, value)
    if action == "unknown_key":
        section, index, _ = draw(st.sampled_from(TARGETS))
        known = BASE[section][index] if index is not None else BASE[section]
        key = draw(st.text(max_size=10).filter(lambda k: k not in known and k not in KNOWN_KEYS))
        return Mutation(action, section, index, key, draw(toml_values))
    if action == "unknown_section":
        name = draw(st.text(max_size=10).filter(lambda n: n not in BASE))
        return Mutation(action, name, value=draw(st.dictionaries(st.text(max_size=6), toml_values, max_size=2)))
    section = draw(st.sampled_from(SECTIONS))
    if action == "replace_section":
        return Mutation(action, section, value=draw(scalars))  # a plain value where a table belongs
    return Mutation(action, section)


def twins(key: str, value: Any) -> list[Mutation]:
    """The same value for one key in every [[sensors]] table: the cross-sensor rules see it twice."""
    return [Mutation("set", "sensors", i, key, value) for i in range(len(BASE["sensors"]))]


@st.composite
def twin_mutations(draw: st.DrawFn) -> list[Mutation]:
    key = draw(st.sampled_from(sorted(BASE["sensors"][0])))
    value = draw(st.one_of(toml_values, nearby(BASE["sensors"][0][key])))
    return twins(key, value)


#: Keys a config may hold (a deleted example key may be added back as "unknown": it is not).
KNOWN_KEYS = {key for _, _, key in TARGETS} | {"reset_pin", "buzzer_pin", "lamp_green_pin", "lamp_amber_pin",
                                               "lamp_red_pin", "xshut_pin"}


# ---- the oracle -------------------------------------------------------------------------------


def must_be_named(m: Mutation, data: dict[str, Any]) -> str | None:
    """The label a ConfigError must contain for this change, or None if it may be valid (or was undone)."""
    if m.action == "delete_section":
        return m.label() if m.section in REQUIRED_SECTIONS and m.section not in data else None
    if m.action in ("unknown_section", "replace_section"):
        return m.label() if data.get(m.section) is m.value else None
    table = data.get(m.section)
    if m.index is not None:
        table = table[m.index] if isinstance(table, list) and m.index < len(table) else None
    if not isinstance(table, dict):
        return None  # another change replaced or deleted the table
    if m.action == "unknown_key":
        return m.label() if m.key in table else None
    if m.action == "delete":
        two_sensors = isinstance(data.get("sensors"), list) and len(data["sensors"]) > 1
        required = (m.section, m.key) in REQUIRED_KEYS and (m.key != "xshut_pin" or two_sensors)
        return m.label() if required and m.key not in table else None
    if table.get(m.key, m) is not m.value:
        return None  # a later change replaced or deleted it
    original = BASE[m.section][m.index][m.key] if m.index is not None else BASE[m.section][m.key]
    return None if plausible_type(m.key, original, m.value) else m.label()


def plausible_type(key: str, original: Any, value: Any) -> bool:
    """Whether ``value`` has a type the key could take (a range check may still refuse it)."""
    if key.endswith("_pin"):
        return is_number(value) or isinstance(value, str)
    if isinstance(original, bool):
        return isinstance(value, bool)
    if isinstance(original, (int, float)):
        return is_number(value)
    return isinstance(value, str)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def config_rules_hold(cfg: Config) -> None:
    """The README's cross-field rules, computed here from the loaded values."""
    t, lim, ceil, safety = cfg.treadmill, cfg.limits, cfg.ceilings, cfg.safety
    assert lim.reverse_cap_kmh <= ceil.max_reverse_cap_kmh and lim.forward_cap_kmh <= ceil.max_forward_cap_kmh
    assert lim.base_stop_mm >= ceil.min_base_stop_mm and lim.warn_margin_mm >= ceil.min_warn_margin_mm
    for cap in (lim.reverse_cap_kmh, lim.forward_cap_kmh, ceil.max_reverse_cap_kmh, ceil.max_forward_cap_kmh):
        assert cap >= safety.min_speed_kmh
    if t.protocol != "speed-sensor":
        assert t.link_timeout_s >= 1.0 / t.poll_hz + t.ack_timeout_s
    assert t.protocol in ("trackmaster", "woodway", "speed-sensor")
    assert not t.reverse_belt or t.protocol == "woodway"
    assert t.reverse_mode_carries in ("toward_edge", "away_from_edge")
    assert cfg.gpio.pin_factory in ("lgpio", "rpigpio", "pigpio", "native", "mock")
    assert cfg.display.units in ("km/h", "mph")
    assert bool(cfg.web.tls_cert) == bool(cfg.web.tls_key)  # a certificate and its key, or plain HTTP
    sensors = cfg.sensors
    assert sensors and len({s.id for s in sensors}) == len(sensors)
    assert len({s.i2c_address for s in sensors}) == len(sensors)
    assert len(sensors) == 1 or all(s.xshut_pin is not None for s in sensors)
    pins = [getattr(cfg.gpio, name) for name in ("relay_pin", "heartbeat_pin", "estop_pin", "reset_pin",
                                                 "buzzer_pin", "lamp_green_pin", "lamp_amber_pin", "lamp_red_pin")]
    numbers = [bcm_number(p) for p in pins + [pin for s in sensors for pin in (s.xshut_pin, s.interrupt_pin)]
               if p is not None]
    assert all(0 <= n <= 27 for n in numbers) and len(set(numbers)) == len(numbers), numbers
    period_s = max(s.timing_budget_ms for s in sensors) / 1000.0
    for cap_kmh in (lim.reverse_cap_kmh, lim.forward_cap_kmh):
        v = cap_kmh / 3.6
        stop_mm = lim.base_stop_mm + 1000.0 * (v * (period_s + t.reaction_time_s) + v * v / (2.0 * t.decel_mps2))
        assert stop_mm + lim.warn_margin_mm + max(0.0, max(s.mount_offset_mm for s in sensors)) <= 800.0 + 1e-9
    for value in (t.decel_mps2, t.reaction_time_s, t.ack_timeout_s, t.poll_hz, t.link_timeout_s, lim.base_stop_mm,
                  cfg.gpio.heartbeat_period_ms, cfg.sessions.sample_hz, *(s.mount_offset_mm for s in sensors)):
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    for text in (t.port, cfg.web.host, cfg.web.ipc_socket, cfg.storage.state_dir, *(s.id for s in sensors)):
        assert isinstance(text, str) and text and not any(ord(c) < 32 for c in text)


def bcm_number(pin: int | str) -> int:
    """A pin's BCM number: an int as it is, a name like GPIO17 or BCM17 (nothing around it); -1 otherwise."""
    if is_number(pin):
        return pin if isinstance(pin, int) else -1
    match = PIN_NAME.fullmatch(pin) if isinstance(pin, str) else None
    return int(match[1]) if match else -1


@pytest.fixture(scope="module")
def config_path(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("config-fuzz") / "config.toml"


def test_the_example_loads_and_keeps_the_rules() -> None:
    config_rules_hold(load_config(EXAMPLE))


#: Values Python cannot print, a pin name with a newline, and nesting deeper than the TOML parser goes.
FOUND = [
    [Mutation("set", "gpio", None, "relay_pin", HugeInt(16**HUGE_DIGITS))],
    twins("i2c_address", HugeInt(16**HUGE_DIGITS)),
    twins("id", HugeInt(16**HUGE_DIGITS)),
    [Mutation("set", "gpio", None, "relay_pin", "GPIO17\n")],
    [Mutation("set", "treadmill", None, "baudrate", Literal("1" * HUGE_DIGITS))],
    [Mutation("set", "limits", None, "base_stop_mm", Literal("[" * 3000 + "]" * 3000))],
]


@fuzz(200)
@example(changes=FOUND[0])
@example(changes=FOUND[1])
@example(changes=FOUND[2])
@example(changes=FOUND[3])
@example(changes=FOUND[4])
@example(changes=FOUND[5])
@given(changes=st.lists(st.one_of(mutations().map(lambda m: [m]), mutations().map(lambda m: [m]), twin_mutations()),
                        min_size=1, max_size=3).map(lambda groups: [m for group in groups for m in group]))
def test_arbitrary_values_give_a_valid_config_or_a_config_error_naming_them(config_path: Path,
                                                                           changes: list[Mutation]) -> None:
    TALLY.add(KIND)
    data = copy.deepcopy(BASE)
    for change in changes:
        change.apply(data)
    text = toml_document(data)
    unreadable = has_literal(data)  # an integer literal that Python's int() refuses
    if not unreadable:
        assert same(tomllib.loads(text), data), "the test's TOML emitter is wrong"
    config_path.write_text(text, encoding="utf-8")
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        event("ConfigError")
        message = str(exc)
        assert exc.errors and f"{len(exc.errors)} error(s)" in message
        if unreadable:
            assert "is not valid TOML" in message and str(config_path) in message, message
            return
        for change in changes:
            label = must_be_named(change, data)
            assert label is None or label in message, f"{change} not named in: {message}"
        labels = [m.label() for m in changes] + [r for m in changes for r in RELATED.get((m.section, m.key), ())]
        assert any(label in message for label in labels), f"none of {changes} named in: {message}"
        return
    except Exception as exc:  # noqa: BLE001 - the finding this test exists for
        pytest.fail(f"load_config raised {type(exc).__name__}, not ConfigError: {exc!r}"[:2000])
    event("valid Config")
    assert not any(must_be_named(m, data) for m in changes), f"{changes} accepted"
    config_rules_hold(cfg)
