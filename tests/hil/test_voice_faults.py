"""HIL: the voice without its engine, without its sound device, and across a controller restart.

It keeps running, logs each failure once per episode, writes it where doctor
reads it, and speaks again by itself once the part is there. The controller
trips the same whatever the voice does.
"""

from __future__ import annotations

import logging
import os
import shutil

from controller.doctor.context import Report
from controller.safety.types import CommandKind
from tests.hil.helpers import reset_when_healthy, wait_tripped
from tests.voice.sink import FifoSink
from tests.waiting import expect, wait_until
from voice.doctor import check_voice
from voice.health import read_health
from voice.service import VoiceService

APLAY = shutil.which("aplay") or "aplay"


def voice_on(bench, tmp_path, **kw) -> VoiceService:
    socket_path = tmp_path / "control.sock"
    bench.controller.serve_ipc(socket_path, group="")
    service = VoiceService(socket_path=str(socket_path), language="en", rate_wpm=140, volume_pct=100,
                           cache_dir=tmp_path / "cache", health_file=tmp_path / "health.json", retry_s=0.3,
                           **kw).start()
    assert service.wait_ready(60.0)
    expect(lambda: service.link.online, 5.0, "the voice subscribed")
    return service


def trip(bench) -> None:
    """Reset, then an E-stop on the standing belt (READY -> STOPPED: the trip prompt), released again."""
    assert reset_when_healthy(bench).ok and wait_until(lambda: bench.controller.status["state"] == "READY", 2.0)
    bench.press_estop()
    assert wait_tripped(bench)
    bench.release_estop()


def said(sink, after: int = 0) -> list[str]:
    """The prompts the card received, from the ``after``-th on."""
    return [p.key for p in sink.prompts()[after:]]


def messages(caplog, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


def test_without_espeak_ng_the_voice_stays_up_logs_once_and_speaks_once_it_is_installed(bench, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="voice")
    engine = tmp_path / "bin" / "espeak-ng"  # not there yet
    engine.parent.mkdir()
    sink = FifoSink(tmp_path / "card")
    service = voice_on(bench, tmp_path, argv_for=sink.argv_for, engine=str(engine))
    try:
        trip(bench)
        expect(lambda: service.health.snapshot()["failed"] >= 1, 3.0, "the unspoken trip prompt counted")
        expect(lambda: read_health(tmp_path / "health.json")["failed"] >= 1, 3.0, "the health file")
        health = read_health(tmp_path / "health.json")
        assert health["engine"]["ok"] is False
        assert "espeak-ng is not installed" in health["engine"]["detail"]
        assert health["controller"]["connected"] is True and sink.prompts() == []
        assert len(messages(caplog, "the prompts cannot be rendered")) == 1, "once per episode, not per retry"

        os.symlink(shutil.which("espeak-ng"), engine)  # apt-get install espeak-ng
        expect(lambda: service.engine_ok, 20.0, "the prompts rendered on a retry")
        trip(bench)
        expect(lambda: "stopped_stand_still" in said(sink), 3.0, "the trip prompt heard")
        assert messages(caplog, "the prompts are rendered now")
        expect(lambda: read_health(tmp_path / "health.json")["engine"]["ok"] is True, 3.0, "the health file")
    finally:
        service.close()
        sink.close()


def test_a_sound_device_that_does_not_open_is_logged_once_shown_by_doctor_and_recovers(bench, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="voice")
    sink = FifoSink(tmp_path / "card")
    card = {"present": False}

    def argv(wav):  # the USB speaker is unplugged until card["present"]
        return sink.argv_for(wav) if card["present"] else [APLAY, "-q", "-D", "no_such_card", str(wav)]

    service = voice_on(bench, tmp_path, argv_for=argv)
    try:
        for n in range(1, 4):
            trip(bench)
            expect(lambda: service.health.snapshot()["failed"] >= n, 3.0, f"unspoken prompt {n}")
        assert len(messages(caplog, "the sound device does not play")) == 1, "one line per episode"
        expect(lambda: read_health(tmp_path / "health.json")["failed"] >= 3, 3.0, "the health file")
        lines: list[str] = []
        check_voice(bench.cfg, Report(lines.append), health_file=tmp_path / "health.json")
        assert lines[0].startswith("FAIL voice prompts:") and "no_such_card" in lines[0], lines

        card["present"] = True  # plugged back in
        expect(lambda: service.device_ok, 5.0, "the device check passing on a retry")
        assert messages(caplog, "the sound device plays again")
        trip(bench)
        expect(lambda: "stopped_stand_still" in said(sink), 3.0, "the trip prompt heard")
        expect(lambda: read_health(tmp_path / "health.json")["device"]["ok"] is True, 3.0, "the health file")
        lines.clear()
        check_voice(bench.cfg, Report(lines.append), health_file=tmp_path / "health.json")
        assert lines[0].startswith("PASS voice prompts:") and "connected to the controller" in lines[0], lines
    finally:
        service.close()
        sink.close()


def test_the_voice_follows_a_controller_restart_and_says_the_stop_it_comes_back_with(bench, tmp_path):
    """The controller's process ended (its relay dropped with it) and came back STOPPED, as it always does."""
    sink = FifoSink(tmp_path / "card")
    service = voice_on(bench, tmp_path, argv_for=sink.argv_for)
    try:
        assert reset_when_healthy(bench).ok
        assert bench.command(CommandKind.START, 1.0).ok
        expect(lambda: service.prompter.state == "RUNNING", 3.0, "the voice sees the belt run")
        before = len(sink.prompts())
        bench.controller.ipc.close()
        expect(lambda: not service.link.online, 5.0, "the voice notices")
        bench.press_estop()  # stands in for the stop a restart makes
        assert wait_tripped(bench)
        bench.controller.serve_ipc(tmp_path / "control.sock", group="")
        expect(lambda: service.link.online, 5.0, "the voice back on the socket")
        expect(lambda: said(sink, before) == ["stopped_stand_still"], 3.0, "the stop said")
        expect(lambda: read_health(tmp_path / "health.json")["controller"]["connected"] is True, 3.0,
               "the health file")
    finally:
        bench.release_estop()
        service.close()
        sink.close()
