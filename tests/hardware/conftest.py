"""Fixtures of the ToF tests: a simulated bus, a recorder and TofArrays, all closed afterwards.

No test may leave a "tof-reader" or "sim-vl53l0x-clock" thread behind: that is checked after each.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.sim.vl53l0x import SimI2C
from hardware.tof import TofArray, TofSpec
from tests.hardware.tof_support import IO_TIMEOUT_S, OWN_THREADS, Recorder
from tests.waiting import wait_until


def _own_threads_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in OWN_THREADS]


@pytest.fixture(autouse=True)
def no_threads_left_behind() -> Iterator[None]:
    """Fail a test that leaves a reader or model clock thread running (fixtures close theirs first)."""
    yield
    assert wait_until(lambda: not _own_threads_alive(), timeout_s=2.0), (
        f"threads left running: {_own_threads_alive()}"
    )


@pytest.fixture
def bus() -> Iterator[SimI2C]:
    """A simulated I2C bus; closed afterwards, which stops its clock thread."""
    sim_bus = SimI2C()
    try:
        yield sim_bus
    finally:
        sim_bus.close()


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def make_array(bus: SimI2C, rec: Recorder) -> Iterator[Callable[..., TofArray]]:
    """Builds TofArrays over the simulated bus; all are closed afterwards (before the bus)."""
    arrays: list[TofArray] = []

    def make(specs: list[TofSpec], *, pin_factory: MockFactory | None = None,
             io_timeout_s: float = IO_TIMEOUT_S, **options: object) -> TofArray:
        array = TofArray(
            specs, i2c=bus, smbus=bus.smbus(), on_reading=rec.on_reading,
            on_fault=rec.on_fault, pin_factory=pin_factory, io_timeout_s=io_timeout_s, **options,
        )
        arrays.append(array)
        return array

    try:
        yield make
    finally:
        for array in arrays:
            array.close()
