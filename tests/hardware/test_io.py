"""GPIO panel over gpiozero's MockFactory, the patient model and the watchdog relay model."""

from __future__ import annotations

import time

import pytest

from tests.waiting import wait_until
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from hardware import HardwareError, PinConfigError, gpio_rules
from hardware.io import GpioSpec, PanelIO, make_pin_factory
from hardware.sim.patient import PatientModel, PatientRunner
from hardware.sim.watchdog import WatchdogRelayModel

RELAY, HEARTBEAT, ESTOP, RESET, BUZZER, GREEN, AMBER, RED = 17, 27, 22, 23, 24, 5, 6, 13


def make_spec(**overrides: object) -> GpioSpec:
    values: dict[str, object] = dict(
        relay_pin=RELAY, relay_active_high=True, heartbeat_pin=HEARTBEAT, estop_pin=ESTOP,
        estop_bounce_ms=5, reset_pin=RESET, buzzer_pin=BUZZER,
        lamp_green_pin=GREEN, lamp_amber_pin=AMBER, lamp_red_pin=RED)
    values.update(overrides)
    return GpioSpec(**values)


@pytest.fixture
def panel(mock_factory: MockFactory):
    """A fully fitted panel with its E-stop contact closed (healthy)."""
    with PanelIO(make_spec(), pin_factory=mock_factory) as io:
        # The closed contact shorts the pulled-up input to ground.
        mock_factory.pin(ESTOP).drive_low()
        yield io


# -- pin factory ---------------------------------------------------------------

def test_unknown_pin_factory_is_refused_naming_the_allowed_names():
    with pytest.raises(PinConfigError) as err:
        make_pin_factory("nonsense")
    message = str(err.value)
    assert "'nonsense'" in message
    for name in ("lgpio", "rpigpio", "pigpio", "native", "mock"):
        assert name in message


def test_pin_factory_that_fails_to_load_raises_without_fallback(monkeypatch):
    monkeypatch.setitem(gpio_rules.PIN_FACTORY_CLASSES, "lgpio", "no_such_module_xyz:Factory")
    saved = Device.pin_factory
    try:
        with pytest.raises(PinConfigError) as err:
            make_pin_factory("lgpio")
        assert "'lgpio'" in str(err.value)
        assert "no_such_module_xyz" in str(err.value)
        assert "allowed: lgpio, rpigpio, pigpio, native, mock" in str(err.value)
        assert Device.pin_factory is saved  # the global default was not touched
    finally:
        Device.pin_factory = saved


def test_mock_pin_factory_is_a_pwm_capable_mock_factory():
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
        assert factory.pin_class.__name__ == "MockPWMPin"
    finally:
        factory.close()


def test_panel_refuses_a_missing_pin_factory():
    with pytest.raises(PinConfigError, match="pin_factory"):
        PanelIO(make_spec(), pin_factory=None)  # type: ignore[arg-type]


# -- spec validation -----------------------------------------------------------

def test_duplicate_pins_are_refused_naming_both_fields():
    with pytest.raises(ValueError) as err:
        make_spec(buzzer_pin="GPIO17")
    assert "relay_pin" in str(err.value) and "buzzer_pin" in str(err.value)


@pytest.mark.parametrize(("spelling", "first_field"), [("bcm17", "relay_pin"), ("GPIO05", "lamp_green_pin")])
def test_same_bcm_pin_under_other_spellings_is_refused_naming_both_fields(spelling, first_field):
    with pytest.raises(PinConfigError) as err:
        make_spec(lamp_red_pin=spelling)
    assert first_field in str(err.value) and "lamp_red_pin" in str(err.value)


@pytest.mark.parametrize("bounce_ms", [10.5, 50, 0, 0.5, -1, float("nan")])
def test_estop_bounce_outside_1_to_10_ms_is_refused(bounce_ms):
    with pytest.raises(ValueError) as err:
        make_spec(estop_bounce_ms=bounce_ms)
    assert "estop_bounce_ms" in str(err.value)
    assert "between 1 and 10 ms" in str(err.value)


@pytest.mark.parametrize("bounce_ms", [1, 10])
def test_estop_bounce_at_the_range_ends_is_accepted(bounce_ms):
    assert make_spec(estop_bounce_ms=bounce_ms).estop_bounce_ms == bounce_ms


@pytest.mark.parametrize("pin", [99, 28, -1, True, "BOARD11", "J8:11", "17", "GPIO99"])
def test_pin_names_the_config_refuses_are_refused_naming_the_field(pin):
    with pytest.raises(PinConfigError) as err:
        make_spec(relay_pin=pin)
    # The config's words (tests/unit/test_config.py): the driver and the config refuse alike.
    assert str(err.value) == (f"[gpio] relay_pin = {pin!r}: "
                              'must be a BCM pin number from 0 to 27, or its name like "GPIO17"')


def test_pin_in_use_is_refused_naming_the_field_and_releases_the_others(mock_factory):
    second_spec = make_spec(relay_pin=12, heartbeat_pin=16, estop_pin=20, reset_pin=None,
                            buzzer_pin=None, lamp_amber_pin=None, lamp_red_pin=None,
                            lamp_green_pin=GREEN)
    with PanelIO(make_spec(), pin_factory=mock_factory):
        with pytest.raises(PinConfigError, match=r"\[gpio\] lamp_green_pin = 5: GPIOPinInUse"):
            PanelIO(second_spec, pin_factory=mock_factory)
    # The failed panel released the relay, heartbeat and E-stop pins it had
    # claimed, and the first panel released GPIO5 on close: it builds now.
    with PanelIO(second_spec, pin_factory=mock_factory) as io:
        assert not io.relay_energized


# -- relay ---------------------------------------------------------------------

@pytest.mark.parametrize(("active_high", "off_level"), [(True, 0), (False, 1)])
def test_relay_is_born_de_energized_for_both_polarities(mock_factory, active_high, off_level):
    with PanelIO(make_spec(relay_active_high=active_high), pin_factory=mock_factory) as io:
        relay_pin = mock_factory.pin(RELAY)
        assert relay_pin.function == "output"
        assert relay_pin.state == off_level
        assert not io.relay_energized
        # It never passed through the energized level while being set up.
        assert all(entry.state == off_level for entry in relay_pin.states[1:])


@pytest.mark.parametrize(("active_high", "on_level"), [(True, 1), (False, 0)])
def test_set_relay_drives_the_pin_at_the_configured_polarity(mock_factory, active_high, on_level):
    with PanelIO(make_spec(relay_active_high=active_high), pin_factory=mock_factory) as io:
        relay_pin = mock_factory.pin(RELAY)
        io.set_relay(True)
        assert relay_pin.state == on_level and io.relay_energized
        io.set_relay(False)
        assert relay_pin.state == 1 - on_level and not io.relay_energized


def test_set_relay_refuses_a_non_bool(panel):
    with pytest.raises(TypeError):
        panel.set_relay(1)  # type: ignore[arg-type]
    assert not panel.relay_energized


# -- heartbeat -----------------------------------------------------------------

def test_toggle_heartbeat_flips_the_heartbeat_pin(panel, mock_factory):
    heartbeat_pin = mock_factory.pin(HEARTBEAT)
    levels = []
    for _ in range(4):
        panel.toggle_heartbeat()
        levels.append(int(heartbeat_pin.state))
    assert levels == [1, 0, 1, 0]


# -- E-stop --------------------------------------------------------------------

def test_estop_contact_closed_is_healthy_and_pressing_it_opens(panel, mock_factory):
    events: list[tuple[bool, float]] = []
    panel.on_estop_change = lambda estop_open, t_mono: events.append((estop_open, t_mono))
    estop_pin = mock_factory.pin(ESTOP)
    assert not panel.estop_open
    before_t = time.monotonic()
    estop_pin.drive_high()  # pressed: the NC contact opens, the pull-up wins
    assert panel.estop_open
    estop_pin.drive_low()  # released: contact closed again
    assert not panel.estop_open
    assert [open_flag for open_flag, _ in events] == [True, False]
    assert all(before_t <= t_mono <= time.monotonic() for _, t_mono in events)


def test_estop_broken_wire_floats_high_and_reads_open(mock_factory):
    # No driver on the pin at all: only the pull-up that PanelIO enables.
    with PanelIO(make_spec(), pin_factory=mock_factory) as io:
        estop_pin = mock_factory.pin(ESTOP)
        assert estop_pin.pull == "up"
        assert estop_pin.state
        assert io.estop_open


def test_estop_uses_the_configured_debounce(mock_factory):
    with PanelIO(make_spec(estop_bounce_ms=7), pin_factory=mock_factory):
        assert mock_factory.pin(ESTOP).bounce == pytest.approx(0.007)


def test_estop_callback_error_does_not_escape_into_the_event_thread(panel, mock_factory, caplog):
    def broken_callback(estop_open: bool, t_mono: float) -> None:
        raise RuntimeError("callback bug")

    panel.on_estop_change = broken_callback
    mock_factory.pin(ESTOP).drive_high()
    assert panel.estop_open
    assert "on_estop_change callback failed" in caplog.text


def test_reset_button_press_calls_back_with_monotonic_time(panel, mock_factory):
    presses: list[float] = []
    panel.on_reset_pressed = presses.append
    reset_pin = mock_factory.pin(RESET)
    reset_pin.drive_low()  # pressed: the button shorts the pulled-up pin to ground
    reset_pin.drive_high()
    assert len(presses) == 1 and presses[0] <= time.monotonic()


# -- buzzer and lamps ----------------------------------------------------------

def test_buzzer_and_lamps_are_born_off_and_follow_the_setters(panel, mock_factory):
    pins = {name: mock_factory.pin(number) for name, number in
            (("buzzer", BUZZER), ("green", GREEN), ("amber", AMBER), ("red", RED))}
    assert not any(pin.state for pin in pins.values())
    panel.set_buzzer(True)
    panel.set_lamps(green=False, amber=True, red=True)
    assert [int(pins[n].state) for n in ("buzzer", "green", "amber", "red")] == [1, 0, 1, 1]


def test_missing_buzzer_and_lamps_are_skipped(mock_factory):
    spec = make_spec(buzzer_pin=None, lamp_green_pin=None, lamp_amber_pin=None, lamp_red_pin=None)
    with PanelIO(spec, pin_factory=mock_factory) as io:
        io.set_buzzer(True)
        io.set_lamps(True, True, True)
        assert io.safe_off() == ()


# -- shutdown ------------------------------------------------------------------

def test_safe_off_drops_the_relay_first_even_if_the_buzzer_raises(panel, mock_factory, monkeypatch):
    relay_pin = mock_factory.pin(RELAY)
    buzzer_pin = mock_factory.pin(BUZZER)
    red_pin = mock_factory.pin(RED)
    panel.set_relay(True)
    panel.set_buzzer(True)
    panel.set_lamps(False, False, True)
    relay_level_when_buzzer_tried: list[float] = []

    def failing_write(value: float) -> None:
        relay_level_when_buzzer_tried.append(relay_pin.state)
        raise OSError("buzzer driver failed")

    monkeypatch.setattr(buzzer_pin, "_set_state", failing_write)
    failures = panel.safe_off()
    assert relay_level_when_buzzer_tried == [0]  # relay already down when the buzzer was tried
    assert relay_pin.state == 0 and not panel.relay_energized
    assert red_pin.state == 0  # the lamps after the failing buzzer were still switched off
    assert len(failures) == 1 and "buzzer_pin" in failures[0] and "buzzer driver failed" in failures[0]


def test_close_twice_is_safe_and_leaves_everything_off(mock_factory):
    io = PanelIO(make_spec(), pin_factory=mock_factory)
    io.set_relay(True)
    io.close()
    io.close()
    assert not io.relay_energized
    assert io.estop_open  # a closed panel cannot vouch for the E-stop
    io.set_relay(False)  # stopping stays allowed
    with pytest.raises(HardwareError):
        io.set_relay(True)
    with pytest.raises(HardwareError):
        io.toggle_heartbeat()
    # Every pin was released: a new panel can claim them all.
    with PanelIO(make_spec(), pin_factory=mock_factory) as again:
        assert not again.relay_energized


def test_context_manager_exit_drops_the_relay(mock_factory):
    relay_pin = mock_factory.pin(RELAY)
    with pytest.raises(RuntimeError):
        with PanelIO(make_spec(), pin_factory=mock_factory) as io:
            io.set_relay(True)
            raise RuntimeError("loop crashed")
    # The relay went low before the pin was released.
    assert [int(entry.state) for entry in relay_pin.states][-2:] == [1, 0]


# -- patient model -------------------------------------------------------------

def integrate(model: PatientModel, belt_speed_mps: float, duration_s: float, dt_s: float = 0.001) -> None:
    for _ in range(round(duration_s / dt_s)):
        model.step(dt_s, belt_speed_mps)


def test_patient_standing_still_on_moving_belt_reaches_edge_in_gap_over_speed_and_falls():
    model = PatientModel(300.0)
    model.set_drift(0.5)  # drift = belt speed: carried at full belt speed
    integrate(model, 0.5, 0.59)
    assert not model.fallen and model.gap_mm == pytest.approx(5.0, abs=1e-6)
    integrate(model, 0.5, 0.02)
    assert model.fallen
    assert model.fallen_at == pytest.approx(0.300 / 0.5, abs=1e-9)
    assert model.gap_mm == 0.0 and model.min_gap_mm == 0.0


def test_patient_drift_cannot_exceed_belt_speed():
    model = PatientModel(500.0)
    model.set_drift(2.0)
    integrate(model, 0.25, 1.0)
    assert model.gap_mm == pytest.approx(250.0, abs=1e-6)


def test_stopping_the_belt_holds_the_gap():
    model = PatientModel(400.0)
    model.set_drift(0.3)
    integrate(model, 0.3, 0.5)
    held_mm = model.gap_mm
    integrate(model, 0.0, 2.0)
    assert model.gap_mm == held_mm == pytest.approx(250.0, abs=1e-6)
    assert model.min_gap_mm == held_mm and not model.fallen


def test_negative_drift_increases_the_gap_up_to_the_deck_length():
    model = PatientModel(400.0, deck_length_mm=1000.0)
    model.set_drift(-0.2)
    integrate(model, 0.4, 1.0)
    assert model.gap_mm == pytest.approx(600.0, abs=1e-6)
    integrate(model, 0.4, 5.0)
    assert model.gap_mm == 1000.0 and model.min_gap_mm == 400.0


def test_sensor_distance_is_gap_plus_mount_offset():
    model = PatientModel(350.0)
    distance_fn = model.sensor_distance_fn(40.0)
    assert distance_fn() == 390.0
    model.set_gap(120.0)
    assert distance_fn() == 160.0 and model.min_gap_mm == 120.0


def test_patient_model_rejects_a_start_gap_outside_the_deck():
    with pytest.raises(ValueError, match="start_gap_mm"):
        PatientModel(2000.0, deck_length_mm=1500.0)


def test_patient_runner_carries_a_standing_patient_over_the_edge_in_real_time():
    model = PatientModel(100.0)
    model.set_drift(1.0)
    start_t = time.monotonic()
    with PatientRunner(model, lambda: 1.0) as runner:
        runner.start()  # idempotent
        assert wait_until(lambda: model.fallen, timeout_s=5.0), runner.error
    assert runner.error is None and not runner.running
    # 100 mm at 1 m/s takes 0.1 s: the fall cannot come earlier.
    assert model.fallen_at is not None and model.fallen_at >= start_t + 0.1 - 1e-6
    runner.close()


def test_patient_runner_on_a_stopped_belt_holds_the_gap():
    model = PatientModel(100.0)
    model.set_drift(1.0)
    with PatientRunner(model, lambda: 0.0):
        start_t = time.monotonic()
        assert wait_until(lambda: model.time_s > start_t + 0.05, timeout_s=5.0)
    assert model.gap_mm == 100.0 and not model.fallen


# -- watchdog relay model ------------------------------------------------------

def test_watchdog_stays_closed_while_the_heartbeat_toggles(panel, mock_factory):
    watchdog = WatchdogRelayModel(mock_factory.pin(HEARTBEAT), hold_time_s=0.5)
    first_t = time.monotonic()
    # Space the edges about 20 ms apart for longer than the hold time.
    while time.monotonic() < first_t + 0.7:
        panel.toggle_heartbeat()
        edge_t = watchdog.last_edge_t
        assert edge_t is not None and watchdog.is_closed(now=edge_t + 0.25)
        target_t = time.monotonic() + 0.02
        wait_until(lambda: time.monotonic() >= target_t, timeout_s=1.0)
    assert watchdog.is_closed() and watchdog.opened_at is None


def test_watchdog_opens_once_the_heartbeat_stops_for_longer_than_hold_time(panel, mock_factory):
    watchdog = WatchdogRelayModel(mock_factory.pin(HEARTBEAT), hold_time_s=0.1)
    for _ in range(3):
        panel.toggle_heartbeat()
    last_t = watchdog.last_edge_t
    assert last_t is not None and last_t <= time.monotonic()
    assert watchdog.is_closed(now=last_t + 0.099)
    assert not watchdog.is_closed(now=last_t + 0.101)
    assert watchdog.opened_at == pytest.approx(last_t + 0.1, abs=1e-9)
    # Non-latched: a new pulse closes it again.
    wait_until(lambda: time.monotonic() > last_t + 0.11, timeout_s=1.0)
    panel.toggle_heartbeat()
    assert watchdog.is_closed()


def test_latched_watchdog_stays_open_through_a_gap_until_reset(panel, mock_factory):
    watchdog = WatchdogRelayModel(mock_factory.pin(HEARTBEAT), hold_time_s=0.05, latched=True)
    panel.toggle_heartbeat()
    gap_start_t = watchdog.last_edge_t
    assert gap_start_t is not None
    # A hung loop: no edge for longer than the hold time, then pulses resume.
    assert wait_until(lambda: time.monotonic() > gap_start_t + 0.08, timeout_s=2.0)
    panel.toggle_heartbeat()
    panel.toggle_heartbeat()
    # Evaluated only after the pulses resumed, the gap is still seen.
    assert not watchdog.is_closed()
    assert watchdog.opened_at == pytest.approx(gap_start_t + 0.05, abs=1e-9)
    reset_t = time.monotonic()
    watchdog.reset(now=reset_t)
    assert watchdog.is_closed(now=reset_t + 0.04) and watchdog.opened_at is None
    assert not watchdog.is_closed(now=reset_t + 0.06)  # no pulses since the reset


def test_watchdog_without_any_heartbeat_opens_after_hold_time_from_arming(panel, mock_factory):
    armed_before_t = time.monotonic()
    watchdog = WatchdogRelayModel(mock_factory.pin(HEARTBEAT), hold_time_s=0.1)
    assert watchdog.last_edge_t is None
    assert not watchdog.is_closed(now=time.monotonic() + 0.2)
    assert watchdog.opened_at is not None and watchdog.opened_at >= armed_before_t + 0.1


def test_watchdog_refuses_to_evaluate_the_past(panel, mock_factory):
    watchdog = WatchdogRelayModel(mock_factory.pin(HEARTBEAT))
    now_t = time.monotonic()
    watchdog.is_closed(now=now_t)
    with pytest.raises(ValueError, match="before the previous evaluation"):
        watchdog.is_closed(now=now_t - 1.0)
