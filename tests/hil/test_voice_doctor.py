"""HIL: `doctor` with the voice's line, as the command line wires it (cli/main.py), on simulated hardware."""

from __future__ import annotations

import functools

from gpiozero import Device

from controller.doctor.runner import run_checks
from tests.hil.test_doctor import EXPECTED_CHECKS, Rig, checks_of
from tests.voice.sink import FifoSink
from voice.doctor import CHECK, check_voice


def test_the_voice_line_comes_after_the_controllers_checks_and_a_failure_fails_the_run(tmp_path):
    saved = Device.pin_factory
    rig = Rig(tmp_path / "rig")
    sink = FifoSink(tmp_path / "card")
    try:
        def run(health_file) -> bool:
            rig.lines.clear()
            voice = functools.partial(check_voice, health_file=health_file, argv_for=sink.argv_for)
            return run_checks(rig.cfg, i2c_factory=rig.i2c_factory, smbus_factory=rig.smbus_factory,
                              pin_factory_factory=rig.pin_factory_factory, port=str(rig.emulator.link_path),
                              out=rig.lines.append, extra_checks=((CHECK, voice),))

        assert run(tmp_path / "no-service.json") is True, rig.lines
        assert checks_of(rig.lines) == EXPECTED_CHECKS + [CHECK]
        assert rig.lines[-1].startswith(f"PASS {CHECK}: eSpeak NG") and "the voice service is not running" in \
            rig.lines[-1]

        (tmp_path / "health.json").write_text('{"engine": {"ok": true}, "device": {"ok": false, "detail": '
                                              '"Unknown PCM hw:9"}, "controller": {"connected": true}}')
        assert run(tmp_path / "health.json") is False
        assert rig.lines[-1].startswith(f"FAIL {CHECK}:") and "Unknown PCM hw:9" in rig.lines[-1]
    finally:
        sink.close()
        rig.close()
        Device.pin_factory = saved
