"""Bad input for the dashboard's HTTP API: field rules, body strategies, and the endpoints to send it to.

Kinds (:class:`Num`, :class:`Text`, :class:`Choice`, :class:`Pattern`, :class:`Same`) say what a field
accepts, independently of the web layer's code, and draw values it must refuse. A :class:`Body` names an
endpoint's fields and a body every check accepts; :meth:`Body.faults` says which fields of a parsed body
are at fault, which is what a 400 must name. Bodies are sent as raw text (:func:`to_json`), so that NaN,
Infinity, -0.0 and numbers Python's parser overflows on can be in them. :func:`enumerate_targets` lists
the endpoints from the app's url_map, their URL ids filled in.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Flask
from hypothesis import strategies as st
from werkzeug.routing import AnyConverter, Rule

from controller.therapy import patients
from controller.therapy.patients import FIELDS as PATIENT_FIELDS
from controller.therapy.runner import PAIN, PLANNED_MIN
from tests.web.fake_controller import DEMO_ACTIONS, RANGES, FakeController
from tests.web.helpers import VALID_PATIENT
from web.history import PATIENT_BODY_MAX_BYTES
from web.users import BODY_MAX_BYTES as USERS_BODY_MAX_BYTES
from web.validation import MAX_BODY_BYTES

#: What parse() answers for a body that is not JSON.
NOT_JSON = object()


class Raw(str):
    """A JSON token written as it is: NaN, Infinity, -0.0, 1e999 ..."""


#: Number tokens Python's json module reads (into nan, inf, -0.0 ...), though standard JSON has some of them not.
RAW_NUMBERS = tuple(Raw(t) for t in ("NaN", "Infinity", "-Infinity", "-0.0", "-0", "1e999", "-1e999", "1e-999",
                                     "0.1e1", "1E2", "123456789012345678901234567890"))


def to_json(value: Any) -> str:
    """``value`` as JSON text, with each :class:`Raw` token as it is."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(to_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)}: {to_json(item)}" for key, item in value.items()) + "}"
    return json.dumps(value, allow_nan=True)


def parse(raw: bytes) -> Any:
    """The body as the dashboard parses it (Python's json module), or NOT_JSON."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return NOT_JSON


def seen(value: Any) -> Any:
    """``value`` as the dashboard sees it after a round trip through JSON text."""
    return json.loads(to_json(value))


def nesting(raw: bytes) -> int:
    """The deepest run of brackets in ``raw`` (strings not excluded: an upper bound is all that is needed)."""
    depth = deepest = 0
    for byte in raw:
        if byte in b"[{":
            depth += 1
            deepest = max(deepest, depth)
        elif byte in b"]}":
            depth = max(0, depth - 1)
    return deepest


# --- what a field accepts, and values it must refuse --------------------------------------------

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12),
    # Integers past a float's range: math.isfinite() overflows on them.
    st.integers(min_value=10 ** 16, max_value=10 ** 400), st.integers(min_value=-10 ** 400, max_value=-10 ** 16),
    st.sampled_from(RAW_NUMBERS),
)
#: Any JSON value, a few levels deep.
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)
#: Values of the wrong type for most fields.
WRONG_TYPES = st.one_of(st.none(), st.booleans(), st.text(max_size=8), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
NUMBER_TEXT = st.sampled_from(["1", "1.0", "0", "NaN", "nan", "inf", "Infinity", "1e3", " 1", ""])
HUGE_INTS = st.integers(min_value=10 ** 16, max_value=10 ** 1000) | st.integers(min_value=-10 ** 1000,
                                                                                  max_value=-10 ** 16)


class Kind(Protocol):
    """What one field accepts, and the values to try on it."""

    def accepts(self, value: Any) -> bool: ...

    def candidates(self) -> st.SearchStrategy[Any]: ...


@functools.cache
def refused_by(kind: Kind) -> st.SearchStrategy[Any]:
    """Values ``kind`` refuses (as the dashboard sees them after JSON); one strategy per kind, built once."""
    return kind.candidates().filter(lambda value: not kind.accepts(seen(value)))


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and (isinstance(value, int) or isinstance(value, float) and math.isfinite(value))


@dataclass(frozen=True)
class Num:
    """A finite number from ``lo`` to ``hi`` (``lo`` itself excluded if ``above``); a JSON integer if ``integer``."""

    lo: float
    hi: float = math.inf
    integer: bool = False
    nullable: bool = False
    above: bool = False

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if not _is_number(value) or (self.integer and not isinstance(value, int)):
            return False
        return (self.lo < value if self.above else self.lo <= value) and value <= self.hi

    def candidates(self) -> st.SearchStrategy[Any]:
        parts = [WRONG_TYPES, NUMBER_TEXT, st.sampled_from(RAW_NUMBERS), HUGE_INTS,
                 st.floats(max_value=self.lo), st.integers(max_value=math.floor(self.lo))]
        if math.isfinite(self.hi):
            parts += [st.floats(min_value=self.hi), st.integers(min_value=math.ceil(self.hi))]
        if self.integer:
            parts.append(st.floats(min_value=self.lo, max_value=min(self.hi, 1e6)))
        return st.one_of(parts)


#: Unicode categories a field that forbids "Cc" (control) or "C" (control, format, private, surrogate ...) refuses.
FORBIDDEN = {"Cc": ["Cc"], "C": ["Cc", "Cf", "Co", "Cs", "Cn"]}


@dataclass(frozen=True)
class Text:
    """Text of ``lo``..``hi`` characters (after strip() if ``strip``), none of category ``forbid``."""

    lo: int
    hi: int
    forbid: str | None = None
    strip: bool = False

    def accepts(self, value: Any) -> bool:
        if not isinstance(value, str):
            return False
        text = value.strip() if self.strip else value
        if not self.lo <= len(text) <= self.hi:
            return False
        return not (self.forbid and any(unicodedata.category(ch).startswith(self.forbid) for ch in text))

    def candidates(self) -> st.SearchStrategy[Any]:
        too_long = st.builds(lambda ch, n: ch * n, st.characters(), st.integers(self.hi + 1, self.hi + 8))
        parts = [WRONG_TYPES, st.integers(), st.floats(), st.sampled_from(["", " ", "\t \n"]), too_long]
        if self.forbid:
            parts.append(st.builds(lambda a, ch, b: a + ch + b, st.text(max_size=4),
                                   st.characters(categories=FORBIDDEN[self.forbid]), st.text(max_size=4)))
        return st.one_of(parts)


@dataclass(frozen=True)
class Choice:
    """One of ``choices``, exactly."""

    choices: tuple[str, ...]

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.choices

    def candidates(self) -> st.SearchStrategy[Any]:
        near = [c.upper() for c in self.choices] + [f" {c}" for c in self.choices] + [c[:-1] for c in self.choices]
        listed = st.lists(st.sampled_from(self.choices), min_size=1, max_size=2)
        return st.one_of(WRONG_TYPES, st.text(max_size=10), st.sampled_from(near), listed)


@dataclass(frozen=True)
class Pattern:
    """Text that matches ``pattern`` in full (a clinic pseudonym)."""

    pattern: str
    near: tuple[str, ...] = ()

    def accepts(self, value: Any) -> bool:
        return isinstance(value, str) and re.fullmatch(self.pattern, value) is not None

    def candidates(self) -> st.SearchStrategy[Any]:
        return st.one_of(WRONG_TYPES, st.integers(), st.text(max_size=20), st.sampled_from(self.near or ("",)))


@dataclass(frozen=True)
class Spec:
    """What one of the controller's own field specs accepts (the one home of the rule); values to try from ``like``."""

    spec: Any
    like: Kind

    def accepts(self, value: Any) -> bool:
        return self.spec.check(value) is None

    def candidates(self) -> st.SearchStrategy[Any]:
        return self.like.candidates()


@dataclass(frozen=True)
class Same:
    """Exactly ``value`` (a field that must repeat the URL's id)."""

    value: str
    others: Kind

    def accepts(self, value: Any) -> bool:
        return value == self.value

    def candidates(self) -> st.SearchStrategy[Any]:
        return self.others.candidates()


@dataclass(frozen=True)
class Body:
    """An endpoint's JSON body: its fields, a body every check accepts, which fields are required."""

    fields: dict[str, Kind] = field(default_factory=dict)
    valid: dict[str, Any] = field(default_factory=dict)
    required: frozenset[str] = frozenset()
    #: Fields not in ``fields`` are refused (login ignores them).
    strict: bool = True
    #: At least one field (an empty object is refused as "body").
    nonempty: bool = False
    max_bytes: int = MAX_BODY_BYTES

    def faults(self, data: Any) -> set[str]:
        """The fields a refusal of ``data`` (a parsed body) may name: "body" if it is not an object."""
        if not isinstance(data, dict):
            return {"body"}
        if self.nonempty and not data:
            return {"body", ""}  # the controller's "[limits]: no limit given" names no key
        faults = {key for key in data if key not in self.fields} if self.strict else set()
        faults |= {key for key in self.required if key not in data}
        faults |= {key for key, kind in self.fields.items() if key in data and not kind.accepts(data[key])}
        return faults

    def unknown(self, data: Any) -> set[str]:
        """Keys of ``data`` that are no field of this body (each refusal names all of them)."""
        if not self.strict or not isinstance(data, dict):
            return set()
        return {key for key in data if key not in self.fields}

    def broken(self) -> st.SearchStrategy[dict[str, Any]]:
        """The valid body with at least one field given a value it refuses or a required one left out."""

        @st.composite
        def build(draw: st.DrawFn) -> dict[str, Any]:
            names = sorted(self.fields)
            spoiled = draw(st.sets(st.sampled_from(names), max_size=len(names)))
            dropped = draw(st.sets(st.sampled_from(sorted(self.required)))) if self.required else set()
            if not spoiled and not dropped:
                spoiled = {draw(st.sampled_from(names))}
            body = {key: value for key, value in self.valid.items() if key not in dropped}
            for name in sorted(spoiled):
                body[name] = draw(refused_by(self.fields[name]))
            return body

        return build()


def arbitrary_bodies(known: set[str]) -> st.SearchStrategy[Any]:
    """Any JSON value but an object, or an object of one to four keys no endpoint has as a field."""
    return st.one_of(
        JSON_VALUES.filter(lambda value: not isinstance(value, dict)),
        st.dictionaries(st.text(max_size=12).filter(lambda key: key not in known), JSON_VALUES,
                        min_size=1, max_size=4),
    )


def not_json(samples: list[str]) -> st.SearchStrategy[bytes]:
    """Bodies that are not JSON: text, bytes, cut-off and broken JSON, deep nesting; never blank."""
    cut = st.builds(lambda text, at: text[:max(1, int(at * len(text)))], st.sampled_from(samples),
                    st.floats(0.0, 0.99)).map(str.encode)
    deep = st.builds(lambda n, key: f'{{"{key}": {"[" * n}{"]" * n}}}'.encode(),
                     st.integers(1, 3000), st.sampled_from(["speed_kmh", "mode", "name", "zz"]))
    broken = st.sampled_from([b"{'mode': 'forward'}", b'{"a": 1,}', b"\xff\xfe{", b'{"mode": "\xff"}', b"nul\x00l",
                              b'{"mode": "forward"} x', b"[" * 5000, b"{" * 3000, b'"\\ud800', b"1" + b"0" * 4400,
                              b'{"speed_kmh": ' + b"9" * 4400 + b"}", b"\x00" * 64, b"[] []", b"--\r\n"])
    bodies = st.one_of(st.text(min_size=1, max_size=40).map(str.encode), st.binary(min_size=1, max_size=40),
                       cut, deep, broken)
    return bodies.filter(lambda raw: raw.strip() != b"" and (parse(raw) is NOT_JSON or b"[[[" in raw))


# --- the endpoints -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    """One endpoint with its URL filled in; ``path_fault`` is the field a malformed URL id is named by."""

    endpoint: str
    method: str
    url: str
    path: dict[str, Any]
    path_fault: str | None


def _path_values(rule: Rule, arg: str, session_id: int) -> list[tuple[Any, str | None]]:
    """Values for one URL argument, each with the field a 400 names for it (None: well-formed)."""
    converter = rule._converters[arg]  # werkzeug keeps a rule's converters only here
    if isinstance(converter, AnyConverter):
        return [(item, None) for item in converter.items]
    if arg == "pid":
        return [("P01", None), ("P99", None), ("_P01", "patient_id")]
    if arg == "sid":
        return [(session_id, None), (999_999, None), (0, "session_id")]
    if arg == "action":
        return [(action, None) for action in DEMO_ACTIONS] + [("no_such_action", None)]
    if arg == "name":
        return [("Dana", None), ("Nobody", None)]
    raise AssertionError(f"{rule.rule}: no test values for <{arg}>; add them to _path_values")


def enumerate_targets(app: Flask, methods: set[str], session_id: int, skip: set[str] = frozenset()) -> list[Target]:
    """Every rule of the url_map with one of ``methods`` (but ``skip``), once for each combination of URL values."""
    adapter = app.url_map.bind("localhost")
    targets = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in skip:
            continue
        for method in sorted(rule.methods & methods):
            args = sorted(rule.arguments)
            for combo in itertools.product(*(_path_values(rule, arg, session_id) for arg in args)):
                values = {arg: value for arg, (value, _) in zip(args, combo)}
                faults = [fault for _, fault in combo if fault]
                url = adapter.build(rule.endpoint, values, method=method)
                targets.append(Target(rule.endpoint, method, url, values, faults[0] if faults else None))
    return targets


def body_specs(fake: FakeController) -> dict[str, Body]:
    """The bodies of the endpoints that have fields, with the ranges the controller publishes."""
    with fake.lock:
        cap_kmh = fake.status["cap_kmh"]
        fields = fake.therapy.fields()
        cfg = fake.config()
    modes = tuple(fields["mode"]["choices"])
    patient_id = Pattern(fields["patient_id"]["pattern"], ("", "P" * 17, "_P01", "P 01", "P01\n", "Pé1", "P01 "))
    specs = patients.specs(cfg)
    profile = {"patient_id": patient_id, "display_name": Spec(specs["display_name"], Text(1, 40, forbid="Cc")),
               "notes": Spec(specs["notes"], Text(0, 2000)), "mode": Choice(modes)}
    for name in ("speed_cap_kmh", "base_stop_mm", "warn_margin_mm", "target_min", "sessions_per_day"):
        like = Num(fields[name]["min"], fields[name]["max"], integer=fields[name]["integer"])
        profile[name] = Spec(specs[name], like)
    pain = Spec(PAIN, Num(0, 10, integer=True))
    min_kmh = cfg.safety.min_speed_kmh
    start_kmh = max(cfg.ceilings.max_reverse_cap_kmh, cfg.ceilings.max_forward_cap_kmh)
    return {
        "api.start": Body({"speed_kmh": Num(min_kmh, cap_kmh, nullable=True)}),
        "api.speed": Body({"speed_kmh": Num(min_kmh, cap_kmh)}, {"speed_kmh": 1.0}, frozenset({"speed_kmh"})),
        "api.mode": Body({"mode": Choice(modes)}, {"mode": "forward"}, frozenset({"mode"})),
        "api.set_limits": Body({name: Num(r["min"], r["max"]) for name, r in RANGES.items()}, {"base_stop_mm": 260},
                               nonempty=True),
        "auth.login": Body({"name": Text(1, 40, forbid="C", strip=True), "password": Text(1, 1024)},
                           {"name": "Dana", "password": "not the password"}, frozenset({"name", "password"}),
                           strict=False),
        "users.own_password": Body({"current_password": Text(1, 1024), "new_password": Text(8, 1024)},
                                   {"current_password": "not the password", "new_password": "a new password"},
                                   frozenset({"current_password", "new_password"}), max_bytes=USERS_BODY_MAX_BYTES),
        "history.patient_create": Body(profile, dict(VALID_PATIENT), frozenset(PATIENT_FIELDS) - {"notes"},
                                       max_bytes=PATIENT_BODY_MAX_BYTES),
        # history.patient_update: see Rig.spec (its patient_id must repeat the URL's).
        "history.patient_update": Body(profile),
        "history.session_start": Body({"patient_id": patient_id, "planned_min": Spec(PLANNED_MIN, Num(0.25, 60)),
                                       "pain_before": pain,
                                       "speed_kmh": Num(min_kmh, start_kmh, nullable=True)},
                                      {"patient_id": "P01", "planned_min": 7.5, "pain_before": 4},
                                      frozenset({"patient_id", "planned_min", "pain_before"})),
        "history.session_pain": Body({"pain_after": pain}, {"pain_after": 3}, frozenset({"pain_after"})),
    }
