"""The VL53L0X model's GPIO1 line, its real-time clock, its oscillator error and its emitter windows.

The real adafruit_vl53l0x driver talks to the model; GPIO1 is a MockFactory pin bound with bind_gpio1().
"""

from __future__ import annotations

import itertools
import math
import threading
import time

import adafruit_vl53l0x
import pytest
from gpiozero import DigitalInputDevice

from hardware.sim.vl53l0x import FAULT_KINDS, SimI2C, bind_gpio1, bind_xshut, overlap_fraction
from hardware.vl53l0x_regs import DEFAULT_ADDRESS, GPIO_HV_MUX_ACTIVE_HIGH, SYSTEM_INTERRUPT_CONFIG_GPIO
from tests.hardware.tof_support import IO_TIMEOUT_S
from tests.waiting import expect, holds_for


def driver(bus: SimI2C, budget_us: int = 20000) -> adafruit_vl53l0x.VL53L0X:
    sensor = adafruit_vl53l0x.VL53L0X(bus, DEFAULT_ADDRESS, io_timeout_s=IO_TIMEOUT_S)
    sensor.measurement_timing_budget = budget_us
    return sensor


def read_reg(bus: SimI2C, reg: int) -> int:
    buf = bytearray(1)
    bus.writeto_then_readfrom(DEFAULT_ADDRESS, bytes([reg]), buf)
    return buf[0]


def write_reg(bus: SimI2C, reg: int, value: int) -> None:
    bus.writeto(DEFAULT_ADDRESS, bytes([reg, value]))


def wait_for_results(chip, count: int, timeout_s: float = 3.0) -> None:
    expect(lambda: len(chip.history) >= count, timeout_s, f"{count} results of the model")


def test_gpio1_falls_on_a_new_sample_and_rises_when_it_is_cleared(mock_factory, bus):
    chip = bus.add_chip(distance_mm=420)
    pin = bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    assert pin.state, "idle high after init: the driver clears the calibration interrupt"
    sensor.do_range_measurement()  # single shot: one result, one period from now
    expect(lambda: not pin.state, what="GPIO1 low with a new sample")
    assert sensor.read_range() == 420  # reads, then writes SYSTEM_INTERRUPT_CLEAR
    assert pin.state


def test_gpio1_polarity_and_source_follow_their_registers(mock_factory, bus):
    chip = bus.add_chip()
    pin = bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    write_reg(bus, GPIO_HV_MUX_ACTIVE_HIGH, read_reg(bus, GPIO_HV_MUX_ACTIVE_HIGH) | 0x10)
    assert not pin.state, "active high: inactive is low"
    sensor.do_range_measurement()
    expect(lambda: pin.state, what="GPIO1 high with a new sample (active high)")
    sensor.read_range()
    assert not pin.state
    write_reg(bus, SYSTEM_INTERRUPT_CONFIG_GPIO, 0x00)  # GPIO function off: released to the pull-up
    assert pin.state
    count = len(chip.history)
    sensor.do_range_measurement()
    wait_for_results(chip, count + 1)
    assert pin.state


def test_clock_produces_results_and_edges_without_bus_traffic(mock_factory, bus):
    chip = bus.add_chip()
    bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    period_s = chip.timing_budget_us / 1e6
    edges: list[float] = []
    line = DigitalInputDevice(17, pull_up=True, pin_factory=mock_factory)
    try:
        line.when_activated = lambda: edges.append(time.monotonic())
        sensor.start_continuous()
        # No bus traffic from here: the model's clock thread alone makes the results.
        wait_for_results(chip, 5)
        stamps = [m.t_mono for m in chip.history]
        assert all(later - earlier == pytest.approx(period_s, abs=1e-6)
                   for earlier, later in itertools.pairwise(stamps))
        assert len(edges) == 1, "the line stays low until the interrupt is cleared"
        assert edges[0] >= stamps[0]
        assert line.is_active
        _ = sensor.range  # clears: the next result pulls the line low again
        expect(lambda: len(edges) == 2, what="a second edge after the clear")
    finally:
        line.close()
    assert bus.clock_thread is not None and bus.clock_thread.name.startswith("sim-")


def test_chip_without_gpio1_stays_lazy_and_starts_no_thread(bus):
    chip = bus.add_chip()
    sensor = driver(bus)
    sensor.start_continuous()
    count = len(chip.history)
    holds_for(lambda: len(chip.history) == count, 0.1, "no results without bus traffic")
    assert sensor.range == 500
    assert len(chip.history) == count + 1  # only the latest result is computed on demand
    assert bus.clock_thread is None


def test_edge_callbacks_run_outside_the_bus_lock(mock_factory, bus):
    # A callback that hands work to another thread which uses the bus must not deadlock.
    chip = bus.add_chip(distance_mm=610)
    bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    answers: list[int] = []
    line = DigitalInputDevice(17, pull_up=True, pin_factory=mock_factory)

    def on_edge() -> None:
        worker = threading.Thread(target=lambda: answers.append(read_reg(bus, 0x13)))
        worker.start()
        worker.join(1.0)

    try:
        line.when_activated = on_edge
        sensor.do_range_measurement()
        expect(lambda: answers, what="the worker's bus read")
        assert answers[0] & 0x07 == 0x04  # new sample ready
    finally:
        line.close()


def test_unpowered_chip_leaves_gpio1_at_the_pull_up_level(mock_factory, bus):
    chip = bus.add_chip()
    xshut = bind_xshut(mock_factory, 5, chip)
    pin = bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    sensor.do_range_measurement()
    expect(lambda: not pin.state, what="GPIO1 low with a new sample")
    xshut.drive_low()
    assert not chip.powered and pin.state
    xshut.drive_high()  # boots with GPIO1 unconfigured: released
    assert chip.powered and pin.state


def test_gpio1_faults_hold_the_line_and_clearing_them_restores_it(mock_factory, bus):
    assert {"gpio1_broken", "gpio1_stuck_low"} <= FAULT_KINDS
    chip = bus.add_chip()
    pin = bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    chip.inject_fault("gpio1_broken")
    sensor.do_range_measurement()
    wait_for_results(chip, 1)
    assert pin.state, "a cut wire reads the pull-up even with a sample waiting"
    chip.clear_faults()
    assert not pin.state
    sensor.read_range()
    assert pin.state
    chip.inject_fault("gpio1_stuck_low")
    assert not pin.state, "held low with nothing waiting"
    chip.clear_faults()
    assert pin.state


def test_period_scale_stretches_the_period_from_the_next_one(mock_factory, bus):
    chip = bus.add_chip(period_scale=1.03)
    bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    budget_s = chip.timing_budget_us / 1e6
    sensor.start_continuous()
    wait_for_results(chip, 3)
    stamps = [m.t_mono for m in chip.history]
    assert stamps[-1] - stamps[-2] == pytest.approx(1.03 * budget_s, abs=1e-6)
    assert chip.timing_budget_us / 1e6 == budget_s  # the registers do not change
    chip.period_scale = 0.97
    count = len(chip.history)
    wait_for_results(chip, count + 3)
    stamps = [m.t_mono for m in chip.history]
    assert stamps[-1] - stamps[-2] == pytest.approx(0.97 * budget_s, abs=1e-6)


@pytest.mark.parametrize("scale", [0, -1.0, math.nan, math.inf, True, "1"])
def test_period_scale_must_be_a_positive_number(bus, scale):
    with pytest.raises(ValueError, match="period_scale must be a finite number > 0"):
        bus.add_chip(period_scale=scale)


def test_back_to_back_start_while_ranging_restarts_the_period(mock_factory, bus):
    chip = bus.add_chip()
    bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus, budget_us=50000)
    period_s = chip.timing_budget_us / 1e6
    sensor.start_continuous()
    wait_for_results(chip, 2)
    count = len(chip.history)
    wait_for_results(chip, count + 1)  # just after a result: the next one is a period away
    before = time.monotonic()
    sensor.start_continuous()
    after = time.monotonic()
    wait_for_results(chip, count + 2)
    t_next = chip.history[count + 1].t_mono
    assert before + period_s <= t_next <= after + period_s


def test_emitter_windows_of_chips_started_together_overlap_fully(mock_factory, bus):
    # Both chips answer at 0x29, so one driver starts them with the same write.
    chips = [bus.add_chip(), bus.add_chip()]
    for pin, chip in zip((17, 27), chips):
        bind_gpio1(mock_factory, pin, chip)
    sensor = driver(bus)
    period_s = chips[0].timing_budget_us / 1e6
    sensor.start_continuous()
    for chip in chips:
        wait_for_results(chip, 5)
    windows = [chip.emitter_windows() for chip in chips]
    cut_t = min(w[-1][1] for w in windows)
    first, second = ([w for w in chip_windows if w[1] <= cut_t] for chip_windows in windows)
    assert len(first) >= 4
    assert overlap_fraction(first, second) == pytest.approx(1.0)
    start, end = first[-1]
    assert end == chips[0].history[len(first) - 1].t_mono
    assert 0 < end - start < period_s  # the final range step (about 3 ms of a 20 ms budget)


@pytest.mark.parametrize(("a", "b", "share"), [
    ([(0.0, 10.0)], [(5.0, 15.0)], 0.5),
    ([(5.0, 15.0)], [(0.0, 10.0)], 0.5),
    ([(0.0, 10.0)], [(0.0, 5.0)], 0.5),
    ([(0.0, 5.0)], [(0.0, 10.0)], 1.0),
    ([(0.0, 10.0)], [(2.0, 4.0), (3.0, 6.0)], 0.4),  # B's windows overlap each other: counted once
    ([(0.0, 10.0), (20.0, 30.0)], [(8.0, 22.0)], 0.2),
    ([(0.0, 10.0)], [(10.0, 20.0)], 0.0),  # touching is not overlapping
    ([(0.0, 10.0)], [], 0.0),
    ([], [(0.0, 10.0)], 0.0),
])
def test_overlap_fraction_on_hand_made_windows(a, b, share):
    assert overlap_fraction(a, b) == pytest.approx(share)


def test_overlap_fraction_refuses_a_window_that_ends_before_it_starts():
    with pytest.raises(ValueError, match="must end at or after its start"):
        overlap_fraction([(1.0, 0.0)], [(0.0, 1.0)])


def test_closing_the_bus_stops_its_clock_and_leaves_the_bus_working(mock_factory, bus):
    chip = bus.add_chip()
    bind_gpio1(mock_factory, 17, chip)
    sensor = driver(bus)
    thread = bus.clock_thread
    assert thread is not None and thread.is_alive() and thread.daemon
    bus.close()
    bus.close()
    assert not thread.is_alive()
    sensor.start_continuous()
    assert sensor.range == 500  # lazily, as a chip without GPIO1
    assert bus.clock_thread is thread
