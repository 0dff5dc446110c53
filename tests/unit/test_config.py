"""Config loading: the example passes, every kind of error is reported with field, value and range."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from cli.main import main
from controller.config import ConfigError, load_config, parse_config
from tests.unit.rig import EXAMPLE


def example_data() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def errors_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(data)
    return [str(e) for e in exc.value.errors]


def test_example_config_passes_with_the_regimen_defaults():
    cfg = load_config(EXAMPLE)
    assert cfg.limits.reverse_cap_kmh == 2.0
    assert cfg.limits.base_stop_mm == 250
    assert cfg.limits.warn_margin_mm == 200
    assert cfg.warnings == ()
    assert [s.i2c_address for s in cfg.sensors] == [0x30, 0x31]


def test_check_config_exits_0_on_the_example(capsys):
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("section, key, value, words", [
    ("treadmill", "protocol", "tredmaster", '[treadmill] protocol = \'tredmaster\': must be one of "trackmaster"'),
    ("treadmill", "decel_mps2", 0.0, "[treadmill] decel_mps2 = 0.0: must be a number from 0.2 to 5 m/s^2"),
    ("treadmill", "baudrate", 4800.5, "must be a whole number from 1200 to 115200"),
    ("treadmill", "link_timeout_s", "0.3", "[treadmill] link_timeout_s = '0.3': must be a number"),
    ("treadmill", "reverse_mode_carries", "backwards", 'must be one of "toward_edge", "away_from_edge"'),
    ("limits", "reverse_cap_kmh", True, "[limits] reverse_cap_kmh = True: must be a number from 0.5 to 6 km/h"),
    ("limits", "base_stop_mm", float("nan"), "[limits] base_stop_mm = nan: must be a number from 100 to 600 mm"),
    ("gpio", "estop_pin", 40, "[gpio] estop_pin = 40: must be a BCM pin number from 0 to 27"),
    ("gpio", "pin_factory", "auto", '[gpio] pin_factory = \'auto\': must be one of "lgpio"'),
    ("display", "units", "m/s", '[display] units = \'m/s\': must be one of "km/h", "mph"'),
    ("web", "port", 0, "[web] port = 0: must be a whole number from 1 to 65535"),
    ("gpio", "heartbeat_period_ms", 5, "[gpio] heartbeat_period_ms = 5: must be a number from 10 to 200 ms"),
    ("gpio", "watchdog_hold_ms", 10, "[gpio] watchdog_hold_ms = 10: must be a number from 20 to 5000 ms"),
])
def test_a_bad_value_names_section_key_value_and_range(section, key, value, words):
    data = example_data()
    data[section][key] = value
    assert any(words in e for e in errors_of(data)), errors_of(data)


def test_an_interrupt_pin_is_a_pin_and_used_once():
    data = example_data()
    data["sensors"][0]["interrupt_pin"] = 99
    data["sensors"][1]["interrupt_pin"] = data["gpio"]["relay_pin"]
    errs = errors_of(data)
    assert any("[sensors #1] interrupt_pin = 99: must be a BCM pin number from 0 to 27" in e for e in errs), errs
    assert any("[sensors #2] interrupt_pin = 23: is already used by [gpio] relay_pin" in e for e in errs), errs


def test_the_heartbeat_period_must_fit_twice_in_the_watchdog_hold_time():
    data = example_data()
    data["gpio"]["heartbeat_period_ms"] = 60
    errs = errors_of(data)
    assert any("[gpio] heartbeat_period_ms = 60: must be at most 50 ms, half of [gpio] watchdog_hold_ms (100 ms)" in e
               for e in errs), errs
    data["gpio"]["watchdog_hold_ms"] = 120
    assert parse_config(data).gpio.heartbeat_period_ms == 60


def test_the_old_tick_rate_is_refused_with_what_replaced_it():
    data = example_data()
    data["safety"]["tick_hz"] = 100
    errs = errors_of(data)
    assert any("[safety] tick_hz = 100: is no longer used" in e and "heartbeat_period_ms" in e for e in errs), errs
    assert len(errs) == 1


def test_unknown_options_and_sections_are_refused():
    data = example_data()
    data["treadmill"]["colour"] = "red"
    data["extras"] = {}
    errs = errors_of(data)
    assert any("option 'colour' is not valid in section [treadmill]" in e for e in errs)
    assert any("section [extras] is not valid" in e for e in errs)


def test_missing_required_sections_and_options_are_named():
    data = example_data()
    del data["gpio"]
    del data["treadmill"]["port"]
    errs = errors_of(data)
    assert "[gpio]: this section is required" in errs
    assert any(e.startswith("[treadmill] port = '(missing)': is required") for e in errs)


def test_sensor_rules_unique_ids_addresses_and_xshut_with_two_sensors():
    data = example_data()
    data["sensors"][1]["id"] = "left"
    data["sensors"][1]["i2c_address"] = 0x30
    del data["sensors"][1]["xshut_pin"]
    data["sensors"][0]["timing_budget_ms"] = 10
    errs = errors_of(data)
    assert "[sensors] id = 'left': must be unique across [[sensors]]" in errs
    assert "[sensors] i2c_address = '0x30': must be unique across [[sensors]]" in errs
    assert any(e.startswith("[sensors #2] xshut_pin = '(missing)': is required with two or more") for e in errs)
    assert any(e.startswith("[sensors #1] timing_budget_ms = 10: must be a whole number from 20 to 200")
               for e in errs)


def test_pins_used_twice_are_refused_naming_both():
    data = example_data()
    data["gpio"]["heartbeat_pin"] = data["gpio"]["relay_pin"]
    data["sensors"][0]["xshut_pin"] = "GPIO25"  # the E-stop's pin, by name
    data["gpio"]["buzzer_pin"] = 5
    data["sensors"][1]["xshut_pin"] = "gpio05"  # the buzzer's, zero-padded
    errs = errors_of(data)
    assert "[gpio] heartbeat_pin = 23: is already used by [gpio] relay_pin" in errs
    assert "[sensors #1] xshut_pin = 'GPIO25': is already used by [gpio] estop_pin" in errs
    assert "[sensors #2] xshut_pin = 'gpio05': is already used by [gpio] buzzer_pin" in errs


def test_defaults_must_lie_inside_the_ceilings():
    data = example_data()
    data["limits"]["reverse_cap_kmh"] = 2.2
    data["ceilings"]["max_reverse_cap_kmh"] = 2.0
    data["limits"]["base_stop_mm"] = 150
    errs = errors_of(data)
    assert "[limits] reverse_cap_kmh = 2.2: must be <= 2 ([ceilings] max_reverse_cap_kmh)" in errs
    assert "[limits] base_stop_mm = 150.0: must be >= 200 ([ceilings] min_base_stop_mm)" in errs


def test_a_warn_zone_beyond_the_sensors_reach_is_refused():
    data = example_data()
    data["limits"]["warn_margin_mm"] = 400
    errs = errors_of(data)
    # 250 mm + 0.56 m/s x (33 ms + 150 ms) + braking 154 mm = 506 mm, + 400 mm + the 40 mm mount offset.
    assert ("[limits] reverse_cap_kmh = 2.0: with these distances the reverse cap can be at most 1.1 km/h; "
            "at 2 km/h the warn zone would end 946 mm from the sensor (stop 506 mm + warn margin 400 mm + "
            "mount offset 40 mm), beyond [safety] sensor_reach_mm = 800") in errs


def test_a_stop_zone_at_the_approach_speed_beyond_the_sensors_reach_is_refused():
    data = example_data()
    data["safety"]["approach_speed_mps"] = 2.5
    errs = errors_of(data)
    # 250 mm + 2.5 m/s x (33 ms + 150 ms) + the 2 km/h belt's braking 154 mm + the 40 mm mount offset.
    assert ("[limits] reverse_cap_kmh = 2.0: with these distances the reverse cap can be at most 1.1 km/h; "
            "at 2 km/h the stop zone for a patient approaching at [safety] approach_speed_mps = 2.5 m/s would end "
            "902 mm from the sensor, beyond [safety] sensor_reach_mm = 800") in errs, errs
    data["safety"]["sensor_reach_mm"] = 950
    assert parse_config(data).safety.sensor_reach_mm == 950
    # An assumed approach below the belt's own speed changes nothing: the belt's speed counts.
    data = example_data()
    data["safety"]["approach_speed_mps"] = 1.0
    assert errors_of(data) == ["[safety] approach_speed_mps = 1.0: must be a number from 1.6 to 2.5 m/s"]


def test_the_old_reverse_belt_option_is_refused_naming_its_new_name():
    data = example_data()
    data["treadmill"]["reverse_belt"] = True
    assert errors_of(data) == ['[treadmill] reverse_belt = True: was renamed: write reverse_mode_carries = '
                               '"away_from_edge" for true, "toward_edge" for false']


def test_a_ceiling_beyond_reach_is_only_a_warning(capsys, tmp_path):
    text = EXAMPLE.read_text().replace("max_reverse_cap_kmh = 2.2", "max_reverse_cap_kmh = 3.0")
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert main(["check-config", str(path)]) == 0
    assert "warning: [ceilings] max_reverse_cap_kmh = 3.0" in capsys.readouterr().err


def test_a_belt_carrying_away_in_reverse_mode_needs_the_woodway_dialect():
    data = example_data()
    data["treadmill"]["reverse_mode_carries"] = "away_from_edge"
    assert any("[treadmill] reverse_mode_carries = 'away_from_edge': only the woodway dialect" in e
               for e in errors_of(data))


def test_check_config_prints_every_error_and_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(EXAMPLE.read_text().replace('protocol = "trackmaster"', 'protocol = "x"')
                    .replace("decel_mps2 = 1.0", "decel_mps2 = 9").replace("heartbeat_period_ms = 50", "heartbeat_period_ms = 1"))
    proc = subprocess.run([sys.executable, "-m", "cli.main", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "3 error(s)" in proc.stderr
    for field in ("[treadmill] protocol", "[treadmill] decel_mps2", "[gpio] heartbeat_period_ms"):
        assert field in proc.stderr


@pytest.mark.parametrize("text, words", [
    ("[treadmill\nport=1", "is not valid TOML"),
    (None, "cannot be read"),
])
def test_unreadable_or_broken_files_are_clear_errors(tmp_path, capsys, text, words):
    path = tmp_path / "c.toml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as exc:
        main(["check-config", str(path)])
    assert exc.value.code == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("pin", ["GPIO99", "999", "BOARD11", "J8:11", 28])
def test_pin_names_outside_bcm_0_to_27_are_refused(pin):
    data = example_data()
    data["gpio"]["relay_pin"] = pin
    assert any(e.startswith(f"[gpio] relay_pin = {pin!r}: must be a BCM pin number from 0 to 27")
               for e in errors_of(data))


def test_a_cap_below_the_minimum_speed_is_refused():
    data = example_data()
    data["safety"]["min_speed_kmh"] = 1.5
    data["limits"]["reverse_cap_kmh"] = 1.0
    assert "[limits] reverse_cap_kmh = 1.0: must be at least [safety] min_speed_kmh = 1.5" in errors_of(data)


def test_a_link_timeout_shorter_than_a_poll_and_an_ack_is_refused():
    data = example_data()
    data["treadmill"]["ack_timeout_s"] = 0.25
    data["treadmill"]["link_timeout_s"] = 0.25
    assert any(e.startswith("[treadmill] link_timeout_s = 0.25: must be at least one poll period plus the ack")
               for e in errors_of(data))


def test_the_example_serves_https_with_the_installed_certificate_paths():
    web = load_config(EXAMPLE).web
    assert (web.tls_cert, web.tls_key) == ("/etc/treadmill-safety/tls/dashboard.crt",
                                           "/etc/treadmill-safety/tls/dashboard.key")


def test_tls_cert_and_key_both_empty_is_plain_http():
    data = example_data()
    data["web"]["tls_cert"] = data["web"]["tls_key"] = ""
    assert parse_config(data).web.tls_cert == ""
    del data["web"]["tls_cert"], data["web"]["tls_key"]
    assert (parse_config(data).web.tls_cert, parse_config(data).web.tls_key) == ("", "")


@pytest.mark.parametrize("missing", ["tls_cert", "tls_key"])
def test_a_certificate_without_its_key_or_a_key_without_its_certificate_names_both_fields(missing):
    data = example_data()
    data["web"][missing] = ""
    errors = errors_of(data)
    other = {"tls_cert": "tls_key", "tls_key": "tls_cert"}[missing]
    assert f"[web] {missing} = '': must be set together with [web] {other}" in "\n".join(errors), errors
    assert all("[web] tls_cert" in e and "[web] tls_key" in e for e in errors), errors


def test_tls_paths_are_text_without_control_characters():
    data = example_data()
    data["web"]["tls_key"] = "/etc/key\n.pem"
    assert errors_of(data) == ["[web] tls_key = '/etc/key\\n.pem': must be a PEM private key path or \"\" "
                               "(0 to 4096 characters)"]
