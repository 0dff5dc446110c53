"""TofArray sensors read on their GPIO1 edge: stamping, no duplicates, the wire watchdog, the pin rules.

The chips' GPIO1 lines are MockFactory pins bound with bind_gpio1(); the model's clock thread
makes results (and edges) in real time, as a real sensor does.
"""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest

from hardware import RangeReading
from hardware.sim.vl53l0x import SimI2C, bind_gpio1
from hardware.tof import TofArray, TofSpec
from tests.hardware.tof_support import IO_TIMEOUT_S, wire_sensors
from tests.waiting import expect, holds_for

#: A longer period where a test checks when the watchdog fires: scheduling noise is small beside it.
SLOW_BUDGET_MS = 50


class CountingI2C(SimI2C):
    """A SimI2C that counts transactions."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    def writeto(self, *args, **kwargs) -> None:
        self.transactions += 1
        super().writeto(*args, **kwargs)

    def readfrom_into(self, *args, **kwargs) -> None:
        self.transactions += 1
        super().readfrom_into(*args, **kwargs)

    def writeto_then_readfrom(self, *args, **kwargs) -> None:
        self.transactions += 1
        super().writeto_then_readfrom(*args, **kwargs)


def started(make_array, specs, factory, **options) -> TofArray:
    array = make_array(specs, pin_factory=factory, **options)
    array.open()
    array.start()
    return array


def test_interrupt_readings_carry_the_edge_time_not_the_read_time(mock_factory, bus, rec, make_array):
    specs, chips = wire_sensors(bus, mock_factory, ["left"])
    pin = mock_factory.pin(specs[0].interrupt_pin)
    release = threading.Event()
    first_seen = threading.Event()

    def slow_consumer(reading: RangeReading) -> None:
        rec.on_reading(reading)
        if not first_seen.is_set():
            first_seen.set()
            release.wait(5.0)  # hold the reader while the next sample becomes ready

    array = TofArray(specs, i2c=bus, smbus=bus.smbus(), on_reading=slow_consumer,
                     on_fault=rec.on_fault, pin_factory=mock_factory, io_timeout_s=IO_TIMEOUT_S)
    try:
        array.open()
        array.start()
        assert first_seen.wait(3.0)
        expect(lambda: not pin.state, what="the next sample's edge while the reader is held")
        released_t = time.monotonic()
        release.set()
        expect(lambda: len(rec.readings("left")) >= 2, what="the held sample")
    finally:
        release.set()
        array.close()
    first, second = rec.readings("left")[:2]
    result_times = [m.t_mono for m in chips["left"].history]
    assert second.t_mono < released_t, "stamped when the sample became ready, not when read"
    assert any(t <= second.t_mono < t + array.sensor_periods_s["left"] for t in result_times)
    assert first.t_mono < second.t_mono


def test_interrupt_readings_are_each_new_samples(mock_factory, bus, rec, make_array):
    specs, chips = wire_sensors(bus, mock_factory, ["left"])
    counter = itertools.count(100)
    chips["left"].distance_fn = lambda: next(counter)  # every result has its own distance
    array = started(make_array, specs, mock_factory)
    expect(lambda: len(rec.readings()) >= 20, 5.0, "20 readings")
    readings = rec.readings()
    distances = [r.distance_mm for r in readings]
    stamps = [r.t_mono for r in readings]
    assert distances == sorted(set(distances)), "no sample handed over twice"
    assert stamps == sorted(set(stamps))
    assert array.stats["left"].readings == len(rec.readings())
    assert rec.faults() == []


def test_interrupt_sensor_is_not_polled_between_samples(mock_factory, rec):
    bus = CountingI2C()
    try:
        specs, _ = wire_sensors(bus, mock_factory, ["left"])
        array = TofArray(specs, i2c=bus, smbus=bus.smbus(), on_reading=rec.on_reading,
                         on_fault=rec.on_fault, pin_factory=mock_factory,
                         io_timeout_s=IO_TIMEOUT_S)
        try:
            array.open()
            array.start()
            expect(lambda: len(rec.readings()) >= 3, what="first readings")
            count, transactions = len(rec.readings()), bus.transactions
            expect(lambda: len(rec.readings()) >= count + 20, 5.0, "20 more readings")
            per_reading = (bus.transactions - transactions) / (len(rec.readings()) - count)
        finally:
            array.close()
    finally:
        bus.close()
    # One status read, then range: data_ready (2), the result (2) and the clear (1).
    assert per_reading <= 6.5


def test_sensors_report_their_read_mode(mock_factory, bus, rec, make_array):
    specs, _ = wire_sensors(bus, mock_factory, ["left", "right"])
    specs[1] = TofSpec("right", 0x31, specs[1].xshut_pin, 20)  # polled: its GPIO1 is not wired
    array = started(make_array, specs, mock_factory)
    expect(lambda: len(rec.readings("left")) >= 5 and len(rec.readings("right")) >= 5,
           what="readings of both")
    timing = array.timing
    assert json.loads(json.dumps(timing)) == timing
    assert (timing["left"]["interrupt"], timing["right"]["interrupt"]) == (True, False)
    assert timing["left"]["interrupt_fault"] is None
    assert timing["left"]["period_s"] == array.sensor_periods_s["left"]


def test_broken_interrupt_wire_is_reported_within_two_periods_and_mends(
    mock_factory, bus, rec, make_array
):
    specs, chips = wire_sensors(bus, mock_factory, ["left"], budget_ms=SLOW_BUDGET_MS)
    chip = chips["left"]
    array = started(make_array, specs, mock_factory)
    period_s = array.sensor_periods_s["left"]
    expect(lambda: len(rec.readings()) >= 3, what="first readings")
    chip.inject_fault("gpio1_broken")
    expect(lambda: rec.faults("GPIO1 wire"), 3.0, "the broken wire fault")
    fault = rec.faults("GPIO1 wire")[0]
    last_good = [r for r in rec.readings() if r.t_mono < fault.t_mono][-1]
    assert fault.t_mono - last_good.t_mono <= 2 * period_s
    assert "'left' at 0x30" in fault.message
    assert "interrupt_pin GPIO17 gave no falling edge" in fault.message
    assert "while a sample waits (I2C answers)" in fault.message
    assert array.timing["left"]["interrupt_fault"] == "no_edge"
    # Readings stay withheld while the sensor goes on measuring.
    count, results = len(rec.readings()), len(chip.history)
    expect(lambda: len(chip.history) >= results + 4, what="four more results")
    assert len(rec.readings()) == count
    assert len(rec.faults("GPIO1 wire")) == 1
    assert rec.faults("no data for") == [], "the sensor answers: it is not hung"
    chip.clear_faults()
    expect(lambda: len(rec.readings()) >= count + 2, 3.0, "readings again")
    assert array.timing["left"]["interrupt_fault"] is None
    assert all(r.t_mono > fault.t_mono for r in rec.readings()[count:])


def test_interrupt_line_stuck_low_is_reported_and_mends(mock_factory, bus, rec, make_array):
    specs, chips = wire_sensors(bus, mock_factory, ["left"], budget_ms=SLOW_BUDGET_MS)
    chip = chips["left"]
    array = started(make_array, specs, mock_factory)
    period_s = array.sensor_periods_s["left"]
    expect(lambda: len(rec.readings()) >= 3, what="first readings")
    chip.inject_fault("gpio1_stuck_low")
    expect(lambda: rec.faults("stuck low"), 3.0, "the stuck line fault")
    fault = rec.faults("stuck low")[0]
    assert "'left' at 0x30: interrupt_pin GPIO17" in fault.message
    assert "interrupt line stuck low" in fault.message
    # One missed edge is recovered by reading the sample; the second one is the fault.
    last_good = [r for r in rec.readings() if r.t_mono < fault.t_mono][-1]
    assert fault.t_mono - last_good.t_mono <= 2 * period_s
    assert array.timing["left"]["interrupt_fault"] == "stuck_low"
    count, results = len(rec.readings()), len(chip.history)
    expect(lambda: len(chip.history) >= results + 4, what="four more results")
    assert len(rec.readings()) == count
    chip.clear_faults()
    expect(lambda: len(rec.readings()) >= count + 2, 3.0, "readings again")
    assert array.timing["left"]["interrupt_fault"] is None
    assert len(rec.faults("stuck low")) == 1 and rec.faults("while a sample waits") == []


def test_hung_interrupt_sensor_gets_the_stale_report_not_a_wire_fault(
    mock_factory, bus, rec, make_array
):
    specs, chips = wire_sensors(bus, mock_factory, ["left"])
    array = started(make_array, specs, mock_factory)
    expect(lambda: rec.readings(), what="a first reading")
    chips["left"].inject_fault("hang")
    expect(lambda: rec.faults("no data for"), what="the stale report")
    assert rec.faults("GPIO1") == [] and rec.faults("interrupt_pin") == []
    assert array.timing["left"]["interrupt_fault"] is None
    count = len(rec.readings())
    chips["left"].clear_faults()
    expect(lambda: len(rec.readings()) > count, what="readings after the hang")


def test_i2c_error_on_an_interrupt_sensor_is_reported_and_reading_resumes(
    mock_factory, bus, rec, make_array
):
    specs, chips = wire_sensors(bus, mock_factory, ["left"])
    array = started(make_array, specs, mock_factory)
    expect(lambda: rec.readings(), what="a first reading")
    chips["left"].inject_fault("i2c_error")
    expect(lambda: rec.faults("read failed"), what="the read fault")
    assert "OSError" in rec.faults("read failed")[0].message
    chips["left"].clear_faults()
    count = len(rec.readings())
    expect(lambda: len(rec.readings()) > count + 5, what="readings again")
    assert rec.faults("stuck low") == [] and rec.faults("GPIO1 wire") == []
    assert array.reader_thread.is_alive()


def test_single_sensor_without_xshut_can_use_its_interrupt(mock_factory, bus, rec, make_array):
    chip = bus.add_chip(distance_mm=456)
    bind_gpio1(mock_factory, 22, chip)
    array = started(make_array, [TofSpec("rear", 0x29, None, 20, interrupt_pin="GPIO22")],
                    mock_factory)
    expect(lambda: len(rec.readings()) >= 3, what="readings")
    assert {r.distance_mm for r in rec.readings()} == {456}
    assert array.timing["rear"]["interrupt"] is True


def test_close_releases_the_interrupt_pins(mock_factory, bus, rec, make_array):
    specs, _ = wire_sensors(bus, mock_factory, ["left", "right"])
    array = started(make_array, specs, mock_factory)
    expect(lambda: rec.readings("right"), what="readings")
    array.close()
    count = len(rec.readings())
    for spec in specs:
        assert mock_factory.pin(spec.interrupt_pin).when_changed is None
    holds_for(lambda: len(rec.readings()) == count, 0.1, "no readings after close")


@pytest.mark.parametrize("pin", ["BOARD11", 28, "17", -1])
def test_interrupt_pin_outside_the_config_rule_refused(pin):
    rule = r"interrupt_pin of sensor 'rear' must be a BCM pin number from 0 to 27"
    with pytest.raises(ValueError, match=rule):
        TofSpec("rear", 0x30, 5, 20, interrupt_pin=pin)


@pytest.mark.parametrize(("specs", "message"), [
    ([TofSpec("a", 0x30, 17, 20), TofSpec("b", 0x31, 27, 20, interrupt_pin="GPIO17")],
     r"interrupt_pin of sensor 'b' \(GPIO17\) is already the xshut_pin of sensor 'a'"),
    ([TofSpec("a", 0x30, 5, 20, interrupt_pin=5), TofSpec("b", 0x31, 6, 20)],
     r"interrupt_pin of sensor 'a' \(GPIO5\) is already the xshut_pin of sensor 'a'"),
    ([TofSpec("a", 0x30, 5, 20, interrupt_pin=17), TofSpec("b", 0x31, 6, 20, interrupt_pin="bcm17")],
     r"interrupt_pin of sensor 'b' \(GPIO17\) is already the interrupt_pin of sensor 'a'"),
])
def test_a_pin_used_twice_across_xshut_and_interrupt_refused(bus, rec, specs, message):
    with pytest.raises(ValueError, match=message):
        TofArray(specs, i2c=bus, on_reading=rec.on_reading, on_fault=rec.on_fault)
