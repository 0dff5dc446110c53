"""The session runner's request contract: a request its caller gave up on never runs late."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from controller.therapy.runner import SessionError, SessionRunner
from controller.storage.store import HistoryStore
from tests.unit.rig import example_config


class RecordingLoop:
    """Stands in for the control loop: READY, and every command recorded."""

    status = {"state": "READY"}

    def __init__(self):
        self.commands = []

    def command(self, command, timeout_s=1.0):
        self.commands.append(command)
        raise AssertionError("no command may reach the loop in this test")

    def chime(self, pattern_s=()):
        pass


def test_a_request_whose_caller_gave_up_is_never_run(tmp_path):
    store = HistoryStore(tmp_path)
    store.start()
    loop = RecordingLoop()
    runner = SessionRunner(example_config(), loop, store).start()
    gate = threading.Event()
    try:
        busy: Future = Future()
        runner._q.put(("call", lambda params: gate.wait(5.0), {}, busy))  # the runner is busy elsewhere
        with pytest.raises(SessionError) as exc:
            runner.request("start", {"patient_id": "P-1", "planned_min": 5, "pain_before": 1, "actor": "Ann",
                                     "authorized": True}, timeout_s=0.1)
        assert exc.value.code == "conflict" and "nothing was done" in exc.value.message
        gate.set()
        busy.result(5.0)
        # The runner has moved past the abandoned request: a later one is answered, and nothing was started.
        with pytest.raises(SessionError) as later:
            runner.request("pause", {"actor": "Ann", "authorized": True})
        assert later.value.code == "conflict" and "no session" in later.value.message
        assert loop.commands == []
    finally:
        gate.set()
        runner.close()
        store.close()


def test_a_bug_in_a_request_answers_the_caller_and_the_runner_goes_on(tmp_path, caplog):
    store = HistoryStore(tmp_path)
    store.start()
    runner = SessionRunner(example_config(), RecordingLoop(), store).start()
    try:
        broken: Future = Future()
        runner._q.put(("call", lambda params: 1 / 0, {}, broken))
        with pytest.raises(SessionError) as exc:
            broken.result(5.0)
        assert exc.value.code == "internal" and "ZeroDivisionError" in exc.value.message
        with pytest.raises(SessionError) as later:
            runner.request("end", {"actor": "Ann", "authorized": True})
        assert later.value.code == "conflict"
        assert "session bookkeeping failed" in caplog.text
    finally:
        runner.close()
        store.close()
