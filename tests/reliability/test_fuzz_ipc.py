"""The IPC server takes arbitrary lines: one reply each, the connection stays open, nothing changes.

A real controller on simulated hardware serves its Unix socket. Hypothesis
sends arbitrary bytes, arbitrary JSON and request-shaped objects with wrong
types. A request that could change something (a command, a session or patient
request, a demo action) always carries a defect that the server must refuse
before acting, so after every line the safety state, the relay, the limits and
the mode are as they were, and no command reached the safety core.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero import Device
from hypothesis import event, example, given, strategies as st

from controller.config import ClinicConfig
from controller.ipc import MAX_LINE_BYTES
from controller.safety.types import CommandKind
from sim.bench import SimBench, sim_config
from tests.hil.ipc_client import JsonLinesClient
from tests.reliability.tally import TALLY, fuzz
from tests.waiting import expect

KIND = "bad inputs: IPC lines"
#: Methods that only read: any params may be answered ok or refused.
READ_ONLY = {"status": (), "subscribe": (), "events": ("limit", "kind"), "limits": (), "patients": (),
             "patient": ("patient_id",), "session": ("session_id",),
             "session_samples": ("session_id", "offset", "limit"),
             "outbox_read": ("after", "limit"), "clinic_cursor": ()}
#: Methods that act, with their fields: the generator always breaks them.
ACTING = {"command": ("command", "actor", "authorized", "value"), "demo": ("action",),
          "patient_save": ("patient", "create"), "patient_delete": ("patient_id",),
          "patient_select": ("patient_id",), "session_start": ("patient_id", "planned_min", "pain_before", "speed_kmh"),
          "session_pause": (), "session_resume": (), "session_end": (), "session_pain": ("session_id", "pain_after"),
          # The clinic replicator's methods (the bench belongs to a clinic record).
          "clinic_merge": ("patients", "sessions", "refused", "accepted", "cursor"), "outbox_ack": ("upto",),
          "clinic_report": ("connected", "message", "shipped_wall")}
COMMAND_NAMES = {k.value for k in CommandKind}
DEMO_ACTIONS = {"drift_back", "console_speed_up", "unplug_sensor", "unplug_treadmill", "recover"}
#: What a refusal of bad input may be called; "internal" (a server bug) never.
REFUSALS = {"bad_request", "unknown_method", "invalid", "unauthorized", "not_found", "conflict", "too_long"}


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[SimBench, str]]:
    """One controller for the module: it stays STOPPED, as it starts, unless bad input changed it."""
    saved = Device.pin_factory
    root = tmp_path_factory.mktemp("ipc-fuzz")
    path = str(root / "control.sock")
    # A clinic's treadmill, so the replicator's methods are served too (no server is needed for them).
    cfg = dataclasses.replace(sim_config(root / "state"), clinic=ClinicConfig(treadmill_id="F", dsn="host=127.0.0.1"))
    bench = SimBench(cfg, state_dir=root / "state", ipc_socket=path).start()
    try:
        expect(lambda: bench.controller.status.get("state") == "STOPPED", 5.0, "the controller's first status")
        yield bench, path
    finally:
        bench.close()
        Device.pin_factory = saved


# ---- strategies -----------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**40, 10**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                    st.sampled_from(["", " ", "estop", "reset", "status", "x" * 81, "\u0000", "\U0001f600"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=8)
not_bool = json_values.filter(lambda v: not isinstance(v, bool))
bad_actor = st.one_of(json_values.filter(lambda v: not isinstance(v, str)), st.sampled_from(["", "   ", "a" * 81]))


@st.composite
def params_for(draw: st.DrawFn, fields: tuple[str, ...]) -> dict[str, Any]:
    """A params object with the method's own fields (arbitrary values) and now and then strangers."""
    keys = draw(st.lists(st.sampled_from(fields + ("actor", "authorized")) if fields else st.sampled_from(
        ("actor", "authorized")), max_size=len(fields) + 2, unique=True))
    params = {key: draw(st.one_of(json_values, st.integers(-2, 9))) for key in keys}
    if draw(st.integers(0, 3)) == 0:
        params.update(draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2)))
    return params


@st.composite
def broken_acting_params(draw: st.DrawFn, method: str) -> dict[str, Any]:
    """Params for an acting method with at least one defect the server checks before it acts."""
    params = draw(params_for(ACTING[method]))
    if method == "demo":
        params["action"] = draw(json_values.filter(lambda v: not (isinstance(v, str) and v in DEMO_ACTIONS)))
        return params
    # A session or patient request without a therapist's authority is refused too; a command may not need it.
    extra = ["command"] if method == "command" else ["unauthorized"]
    defect = draw(st.sampled_from(["actor", "authorized", "stranger", *extra]))
    if defect == "actor":
        params["actor"] = draw(bad_actor)
    elif defect == "authorized":
        params["authorized"] = draw(not_bool)
    elif defect == "unauthorized":
        params.update(actor="therapist", authorized=False)
    elif defect == "stranger":
        params[draw(st.text(max_size=8).filter(lambda k: k not in ACTING[method] + ("actor", "authorized")))] = 1
    else:
        params["command"] = draw(json_values.filter(lambda v: not (isinstance(v, str) and v in COMMAND_NAMES)))
    return params


@st.composite
def request_lines(draw: st.DrawFn) -> bytes:
    """A JSON object shaped like a request: known or random method, params of any type."""
    known = st.sampled_from(sorted(READ_ONLY) + sorted(ACTING))
    method = draw(st.one_of(known, known, known, json_values))
    request: dict[str, Any] = {}
    if draw(st.booleans()):
        request["id"] = draw(json_values)
    if draw(st.integers(0, 9)):
        request["method"] = method
    shape = draw(st.integers(0, 9))
    if isinstance(method, str) and method in ACTING:
        request["params"] = draw(broken_acting_params(method))
    elif shape == 0:
        request["params"] = draw(json_values)  # often not an object at all
    elif shape > 1:
        request["params"] = draw(params_for(READ_ONLY.get(method, ()) if isinstance(method, str) else ()))
    if isinstance(method, str) and method in ACTING and shape == 0:
        request["params"] = draw(json_values.filter(lambda v: not isinstance(v, dict)))
    return json.dumps(request).encode()


newline_free_bytes = st.binary(max_size=200).map(lambda b: b.replace(b"\n", b""))
#: Well-formed JSON nested deeper than the parser goes (within the line limit).
deep_nesting = st.builds(lambda depth, shape: shape[0] * depth + shape[1] + shape[2] * depth,
                         st.integers(900, 5000), st.sampled_from([(b"[", b"", b"]"), (b'{"a":', b"1", b"}")]))
over_long = st.builds(lambda extra, filler: b'{"id": 1, "method": "status", "pad": "' + filler * (
    (MAX_LINE_BYTES + extra) // len(filler) + 1) + b'"}', st.integers(1, 3 * MAX_LINE_BYTES),
    st.binary(min_size=1, max_size=8).map(lambda b: b.replace(b"\n", b"")).filter(bool))


# ---- the oracle -------------------------------------------------------------------------------


def must_be_refused(line: bytes) -> bool:
    """False only for a well-formed request to a read-only method (which may be answered ok)."""
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return True
    if not isinstance(request, dict) or not isinstance(request.get("params", {}), dict):
        return True
    method = request.get("method")
    return not (isinstance(method, str) and method in READ_ONLY)


def request_id(line: bytes) -> Any:
    try:
        request = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return request.get("id") if isinstance(request, dict) else None


def same_id(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b and type(a) is type(b)


def safety_snapshot(bench: SimBench) -> tuple:
    """What bad input must never change: state, relay, limits, mode."""
    status = bench.controller.status
    return status["state"], bench.relay_energized, json.dumps(status["limits"], sort_keys=True), status["mode"]


def core_commands(bench: SimBench) -> int:
    """Commands the safety core logged, accepted or refused."""
    bench.controller.history.flush()
    return sum(len(bench.controller.history.recent(None, kind=kind)) for kind in ("command", "refused"))


def send_and_check(bench: SimBench, path: str, line: bytes) -> None:
    """One bad line on a fresh connection: exactly one reply (none for a blank line), then status is served."""
    TALLY.add(KIND)
    before = safety_snapshot(bench), core_commands(bench)
    with JsonLinesClient(path) as client:
        client.send(line + b"\n")
        client.send(b'{"id": "after", "method": "status"}\n')
        replies = []
        while True:
            message = client.read()
            if "push" in message:
                continue
            if message.get("id") == "after" and message.get("ok") is True and "state" in message.get("result", {}):
                break
            replies.append(message)
    assert len(replies) == (1 if line.strip() else 0), replies
    event(", ".join(str(error_code(r) or "ok") for r in replies) or "no reply")
    for reply in replies:
        if reply["ok"] is False or must_be_refused(line):
            assert reply["ok"] is False, f"{line[:200]!r} was accepted: {reply}"
            error = reply["error"]
            if error["code"] == "internal":
                TALLY.add("crashes")  # an exception the server caught: counted, then failed on
            assert error["code"] in REFUSALS and error["message"], reply
            if error["code"] == "invalid":
                assert "[" in error["message"] and "]" in error["message"], reply  # names the field
        if error_code(reply) != "too_long":
            assert same_id(reply["id"], request_id(line)), reply
    assert (safety_snapshot(bench), core_commands(bench)) == before


def error_code(reply: dict) -> str | None:
    return reply["error"]["code"] if reply.get("ok") is False else None


# ---- the tests --------------------------------------------------------------------------------


@fuzz(80)
@given(line=st.one_of(newline_free_bytes, st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")),
                      st.sampled_from([b"", b" ", b"\t\r", b"\x00", b"\xff\xfe", b"\xc3\x28", b"null", b"{}"])))
def test_arbitrary_bytes_get_one_error_reply_each(served, line: bytes) -> None:
    send_and_check(*served, line)


@fuzz(60)
@given(value=json_values)
def test_arbitrary_json_values_get_one_error_reply_each(served, value: Any) -> None:
    send_and_check(*served, json.dumps(value).encode())


@fuzz(150)
@given(line=request_lines())
@example(line=b'{"id": 1, "method": "demo", "params": {"action": ["drift_back"]}}')  # was a TypeError: unhashable
def test_request_shaped_objects_with_wrong_types_change_nothing(served, line: bytes) -> None:
    send_and_check(*served, line)


@fuzz(15)
@given(line=st.one_of(over_long, deep_nesting))
def test_over_long_and_deeply_nested_lines_are_refused(served, line: bytes) -> None:
    send_and_check(*served, line)


def test_no_bad_line_reached_the_safety_core_or_left_a_connection_open(served) -> None:
    """Runs after the fuzzing above: the core logged no command, and every connection was closed."""
    bench, path = served
    assert core_commands(bench) == 0
    expect(lambda: bench.controller.ipc.client_count == 0, 5.0, "every fuzzing connection closed")
    with JsonLinesClient(path) as client:
        assert client.ok("patients")["patients"] == []
        assert client.ok("status")["state"] == "STOPPED"
