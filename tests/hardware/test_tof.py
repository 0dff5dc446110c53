"""ToF driver tests: the real adafruit_vl53l0x driver over the register model.

XSHUT lines are gpiozero MockFactory pins bound to the model with bind_xshut().
The fixtures (bus, rec, make_array) are in conftest.py; interrupts and phase
control have their own files.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Iterator

import adafruit_vl53l0x
import pytest

from tests.hardware.tof_support import IO_TIMEOUT_S
from tests.waiting import wait_until
from gpiozero import Device
from gpiozero.pins.mock import MockFactory

from hardware import HardwareError, RangeReading, SensorNotFound
from hardware.sim.pins import WatchedPin
from hardware.sim.vl53l0x import SimI2C, bind_xshut
from hardware.tof import TofArray, TofSpec
from hardware.vl53l0x_regs import NO_TARGET_MM


@pytest.fixture
def plain_mock_factory() -> Iterator[MockFactory]:
    """A MockFactory with the default (non-PWM) MockPin class."""
    saved = Device.pin_factory
    factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        factory.close()
        Device.pin_factory = saved


def single(budget_ms: int = 20, address: int = 0x29) -> list[TofSpec]:
    return [TofSpec("rear", address, None, budget_ms)]


def test_single_sensor_without_xshut_reads_model_distance(bus, rec, make_array):
    bus.add_chip(distance_mm=432)
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: len(rec.readings("rear")) >= 3)
    reading = rec.readings("rear")[-1]
    assert (reading.distance_mm, reading.range_status) == (432, 11)
    assert array.stats["rear"].readings >= 3
    assert rec.faults() == []


def test_reading_follows_distance_fn_at_measurement_time(bus, rec, make_array):
    distance = {"mm": 800.0}
    bus.add_chip(distance_fn=lambda: distance["mm"])
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: any(r.distance_mm == 800 for r in rec.readings()))
    distance["mm"] = 612.4
    assert wait_until(lambda: rec.readings()[-1].distance_mm == 612)


def test_two_sensors_brought_up_through_xshut_get_distinct_addresses(
    mock_factory, bus, rec, make_array
):
    left, right = bus.add_chip(distance_mm=300), bus.add_chip(distance_mm=900)
    bind_xshut(mock_factory, 17, left)
    bind_xshut(mock_factory, 27, right)
    array = make_array(
        [TofSpec("left", 0x30, 17, 20), TofSpec("right", 0x31, "GPIO27", 20)],
        pin_factory=mock_factory,
    )
    array.open()
    assert (left.address, right.address) == (0x30, 0x31)
    assert bus.scan() == [0x30, 0x31]
    array.start()
    assert wait_until(lambda: len(rec.readings("left")) >= 3 and len(rec.readings("right")) >= 3)
    assert {r.distance_mm for r in rec.readings("left")} == {300}
    assert {r.distance_mm for r in rec.readings("right")} == {900}


def test_sensor_keeping_default_address_is_brought_up_last(mock_factory, bus, rec, make_array):
    first, second = bus.add_chip(distance_mm=250), bus.add_chip(distance_mm=750)
    bind_xshut(mock_factory, 17, first)
    bind_xshut(mock_factory, 27, second)
    array = make_array(
        [TofSpec("a", 0x29, 17, 20), TofSpec("b", 0x32, 27, 20)], pin_factory=mock_factory
    )
    array.open()
    assert (first.address, second.address) == (0x29, 0x32)
    array.start()
    assert wait_until(lambda: rec.readings("a") and rec.readings("b"))
    assert rec.readings("a")[-1].distance_mm == 250
    assert rec.readings("b")[-1].distance_mm == 750


def test_slow_booting_sensor_is_waited_for(mock_factory, bus, rec, make_array):
    chip = bus.add_chip(distance_mm=640, boot_time_s=0.02)
    bind_xshut(mock_factory, 17, chip)
    array = make_array([TofSpec("rear", 0x30, 17, 20)], pin_factory=mock_factory)
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    assert rec.readings()[-1].distance_mm == 640


def test_xshut_binding_works_with_plain_mock_pins(plain_mock_factory, bus, rec, make_array):
    chips = [bus.add_chip(distance_mm=400), bus.add_chip(distance_mm=500)]
    pins = [bind_xshut(plain_mock_factory, pin, chip) for pin, chip in zip((5, 6), chips)]
    assert all(isinstance(pin, WatchedPin) for pin in pins)
    array = make_array(
        [TofSpec("a", 0x40, 5, 20), TofSpec("b", 0x41, 6, 20)], pin_factory=plain_mock_factory
    )
    array.open()
    assert [chip.address for chip in chips] == [0x40, 0x41]


@pytest.mark.parametrize("budget_ms", [20, 50])
def test_timing_budget_sets_sample_period(bus, rec, make_array, budget_ms):
    chip = bus.add_chip(distance_mm=500)
    array = make_array(single(budget_ms))
    array.open()
    # The driver's getter adds ~0.6 ms of start overhead its setter leaves out.
    assert array.sensor_periods_s["rear"] == pytest.approx(budget_ms / 1000, abs=0.001)
    assert chip.timing_budget_us / 1000 == pytest.approx(budget_ms, abs=1)
    array.start()
    assert wait_until(lambda: len(rec.readings()) >= 9, timeout_s=3.0)
    stamps = [r.t_mono for r in rec.readings()[:9]]
    mean_period_ms = (stamps[-1] - stamps[0]) / (len(stamps) - 1) * 1000
    assert 0.8 * budget_ms <= mean_period_ms <= 1.5 * budget_ms


def test_timing_budget_round_trips_through_registers(bus):
    chip = bus.add_chip()
    sensor = adafruit_vl53l0x.VL53L0X(bus, 0x29, io_timeout_s=IO_TIMEOUT_S)
    for budget_us in (20000, 33000, 200000):
        sensor.measurement_timing_budget = budget_us
        read_back_us = sensor.measurement_timing_budget
        assert read_back_us == pytest.approx(budget_us, rel=0.01, abs=1000)
        assert chip.timing_budget_us == read_back_us  # the model's period is the driver's


def test_i2c_error_is_reported_and_reading_resumes(bus, rec, make_array):
    chip = bus.add_chip(distance_mm=500)
    array = make_array(single(address=0x29))
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    chip.inject_fault("i2c_error")
    assert wait_until(lambda: rec.faults("read failed"))
    fault = rec.faults("read failed")[0]
    assert "'rear'" in fault.message and "0x29" in fault.message and "OSError" in fault.message
    assert array.reader_thread.is_alive()
    chip.clear_faults()
    count = len(rec.readings())
    assert wait_until(lambda: len(rec.readings()) > count + 2)
    assert array.stats["rear"].faults >= 1


def test_hung_sensor_gives_no_readings_and_one_no_data_fault(bus, rec, make_array):
    chip = bus.add_chip(distance_mm=500)
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    chip.inject_fault("hang")
    assert wait_until(lambda: rec.faults("no data for"))
    count = len(rec.readings())
    limit_s = 2 * array.sensor_periods_s["rear"] + IO_TIMEOUT_S
    fault_t = rec.faults("no data for")[0].t_mono
    # Absence over a window: let three more staleness limits pass.
    assert wait_until(lambda: time.monotonic() > fault_t + 3 * limit_s)
    assert len(rec.faults("no data for")) == 1
    assert len(rec.readings()) == count
    chip.clear_faults()
    assert wait_until(lambda: len(rec.readings()) > count)


def test_no_target_reads_8190_with_its_status(bus, rec, make_array):
    chip = bus.add_chip(distance_mm=500)
    chip.inject_fault("no_target")
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    reading = rec.readings()[-1]
    assert reading.distance_mm == NO_TARGET_MM == 8190
    assert reading.range_status == 4


def test_nothing_in_view_reads_as_no_target(bus, rec, make_array):
    bus.add_chip(distance_mm=None)
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    assert rec.readings()[-1].distance_mm == 8190


def test_invalid_status_is_passed_on_with_plausible_range(bus, rec, make_array):
    chip = bus.add_chip(distance_mm=700)
    chip.inject_fault("invalid_status")
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    reading = rec.readings()[-1]
    assert reading.distance_mm == 700
    assert reading.range_status != 11


def test_phantom_reports_fixed_distance(bus, rec, make_array):
    chip = bus.add_chip(distance_mm=1200)
    array = make_array(single())
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    chip.inject_fault("phantom")
    assert wait_until(lambda: rec.readings()[-1].distance_mm == chip.phantom_distance_mm)
    assert rec.readings()[-1].range_status == 11


@pytest.mark.parametrize("kind", ["wrong_chip", "absent"])
def test_missing_or_wrong_chip_refused_at_open_without_xshut(bus, make_array, kind):
    bus.add_chip().inject_fault(kind)
    array = make_array(single())
    with pytest.raises(SensorNotFound, match=r"'rear' at 0x29 on I2C bus 1"):
        array.open()


@pytest.mark.parametrize("kind", ["wrong_chip", "absent"])
def test_missing_or_wrong_chip_refused_at_open_through_xshut(mock_factory, bus, make_array, kind):
    good, bad = bus.add_chip(), bus.add_chip()
    bind_xshut(mock_factory, 17, good)
    bind_xshut(mock_factory, 27, bad)
    bad.inject_fault(kind)
    array = make_array(
        [TofSpec("good", 0x30, 17, 20), TofSpec("bad", 0x31, 27, 20)], pin_factory=mock_factory
    )
    with pytest.raises(SensorNotFound, match=r"'bad' at 0x29 on I2C bus 1"):
        array.open()
    # A failed open leaves every sensor powered down and the pins released.
    assert not good.powered and not bad.powered
    assert mock_factory.pin(17).state == 0


def test_device_stuck_at_default_address_refused(mock_factory, bus, make_array):
    bind_xshut(mock_factory, 17, bus.add_chip())
    bus.add_chip()  # XSHUT not wired: always on at 0x29
    array = make_array(
        [TofSpec("a", 0x30, 17, 20), TofSpec("b", 0x31, 27, 20)], pin_factory=mock_factory
    )
    with pytest.raises(HardwareError, match="check the XSHUT wiring"):
        array.open()


def test_missing_i2c_bus_refused_naming_bus(rec):
    array = TofArray(
        single(), i2c=SimI2C(), on_reading=rec.on_reading, on_fault=rec.on_fault,
        bus_number=99,
    )
    with pytest.raises(SensorNotFound, match="I2C bus 99"):
        array.open()


@pytest.mark.parametrize("io_timeout_s", [0, -1.0])
def test_io_timeout_must_be_positive(bus, rec, io_timeout_s):
    with pytest.raises(ValueError, match="io_timeout_s must be > 0"):
        TofArray(single(), i2c=bus, on_reading=rec.on_reading, on_fault=rec.on_fault,
                 io_timeout_s=io_timeout_s)


@pytest.mark.parametrize("budget_ms", [19, 201, 20.5])
def test_timing_budget_out_of_range_refused(budget_ms):
    with pytest.raises(ValueError, match=r"timing_budget_ms .* in 20\.\.200"):
        TofSpec("rear", 0x29, None, budget_ms)


def test_two_sensors_without_xshut_refused(bus, rec):
    specs = [TofSpec("a", 0x30, None, 20), TofSpec("b", 0x31, 27, 20)]
    with pytest.raises(ValueError, match="xshut_pin is required"):
        TofArray(specs, i2c=bus, on_reading=rec.on_reading, on_fault=rec.on_fault)


@pytest.mark.parametrize("pin", ["BOARD11", 28, "17"])
def test_xshut_pin_outside_the_config_rule_refused(pin):
    with pytest.raises(ValueError, match=r"xshut_pin of sensor 'rear' must be a BCM pin number from 0 to 27"):
        TofSpec("rear", 0x30, pin, 20)


def test_one_xshut_pin_under_two_spellings_refused(bus, rec):
    specs = [TofSpec("a", 0x30, 17, 20), TofSpec("b", 0x31, "GPIO17", 20)]
    with pytest.raises(ValueError, match="xshut_pin must differ"):
        TofArray(specs, i2c=bus, on_reading=rec.on_reading, on_fault=rec.on_fault)


def test_duplicate_addresses_refused(bus, rec):
    specs = [TofSpec("a", 0x30, 17, 20), TofSpec("b", 0x30, 27, 20)]
    with pytest.raises(ValueError, match="address must differ"):
        TofArray(specs, i2c=bus, on_reading=rec.on_reading, on_fault=rec.on_fault)


def test_close_twice_stops_reader_and_powers_sensors_down(mock_factory, bus, rec, make_array):
    chips = [bus.add_chip(), bus.add_chip()]
    for pin, chip in zip((17, 27), chips):
        bind_xshut(mock_factory, pin, chip)
    array = make_array(
        [TofSpec("a", 0x30, 17, 20), TofSpec("b", 0x31, 27, 20)], pin_factory=mock_factory
    )
    array.open()
    array.start()
    assert wait_until(lambda: rec.readings())
    thread = array.reader_thread
    assert thread.name == "tof-reader" and thread.daemon
    array.close()
    array.close()
    assert not thread.is_alive()
    assert not any(chip.powered for chip in chips)
    assert not any(t.name == "tof-reader" for t in threading.enumerate())


def test_close_stops_continuous_ranging_without_xshut(bus, make_array):
    chip = bus.add_chip()
    with make_array(single()) as array:
        array.start()
        assert chip.continuous
    assert not chip.continuous


def test_callback_error_does_not_stop_reader(bus, make_array):
    bus.add_chip(distance_mm=500)
    calls: list[RangeReading] = []

    def flaky(reading: RangeReading) -> None:
        calls.append(reading)
        if len(calls) == 1:
            raise RuntimeError("consumer bug")

    array = TofArray(single(), i2c=bus, smbus=bus.smbus(), on_reading=flaky,
                     on_fault=lambda fault: None, io_timeout_s=IO_TIMEOUT_S)
    try:
        array.open()
        array.start()
        assert wait_until(lambda: len(calls) >= 3)
    finally:
        array.close()


def test_unanswered_address_raises_oserror_like_linux(bus):
    with pytest.raises(OSError) as info:
        bus.writeto(0x30, b"\x00")
    assert info.value.errno in (errno.ENXIO, errno.EREMOTEIO)


def test_model_history_is_bounded(bus):
    chip = bus.add_chip(distance_mm=500, history_len=2)
    sensor = adafruit_vl53l0x.VL53L0X(bus, 0x29, io_timeout_s=IO_TIMEOUT_S)
    sensor.measurement_timing_budget = 20000
    for distance_mm in (100, 200, 300):
        chip.set_distance(distance_mm)
        assert sensor.range == distance_mm
    assert [m.distance_mm for m in chip.history] == [200, 300]
