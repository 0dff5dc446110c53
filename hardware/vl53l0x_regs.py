"""VL53L0X facts from the datasheet and ST's API: addresses, registers, range status codes.

Pure constants: the driver (``hardware.tof``), its register model
(``hardware.sim.vl53l0x``) and the doctor read them from here, so the model
cannot drift from what the driver expects.
"""

from __future__ import annotations

#: Every VL53L0X boots at this 7-bit address; XSHUT brings them up one by one to move them.
DEFAULT_ADDRESS = 0x29
#: Addresses a sensor may be moved to: 7-bit, outside the I2C reserved blocks.
ADDRESS_RANGE = (0x08, 0x77)
#: Measurement timing budget the driver accepts, in ms (inclusive).
TIMING_BUDGET_MS_RANGE = (20, 200)

#: IDENTIFICATION_MODEL_ID reads MODEL_ID on a VL53L0X.
MODEL_ID_REGISTER = 0xC0
MODEL_ID = 0xEE

#: SYSTEM_INTERRUPT_CONFIG_GPIO: what drives the GPIO1 interrupt output (bits 2:0).
SYSTEM_INTERRUPT_CONFIG_GPIO = 0x0A
#: SYSTEM_INTERRUPT_CLEAR: writing bit 0 clears the interrupt (and releases GPIO1).
SYSTEM_INTERRUPT_CLEAR = 0x0B
#: GPIO_HV_MUX_ACTIVE_HIGH: bit 4 sets GPIO1's polarity (0 active low, as the Adafruit driver sets it).
GPIO_HV_MUX_ACTIVE_HIGH = 0x84
GPIO_ACTIVE_HIGH_BIT = 0x10
#: RESULT_INTERRUPT_STATUS: bits 2:0 are non-zero while an interrupt waits to be cleared.
RESULT_INTERRUPT_STATUS = 0x13
INTERRUPT_STATUS_MASK = 0x07
#: "New sample ready": the interrupt source the driver configures, and the status it then reports.
INTERRUPT_NEW_SAMPLE = 0x04

#: RESULT_RANGE_STATUS (right after RESULT_INTERRUPT_STATUS): the device range status sits in bits 6:3.
RESULT_RANGE_STATUS = 0x14
RANGE_STATUS_SHIFT = 3
RANGE_STATUS_MASK = 0x0F
#: Device range status "range complete": the only status whose distance can be trusted.
RANGE_STATUS_VALID = 11
#: Device range status "MSRC no target", reported with nothing in view.
RANGE_STATUS_NO_TARGET = 4
#: RESULT_RANGE (big-endian u16 at 0x1E/0x1F) with nothing in view.
NO_TARGET_MM = 8190
#: Every range that means "nothing in view" rather than a distance (some parts report 8191).
NO_TARGET_VALUES_MM = frozenset({NO_TARGET_MM, 8191})


def range_status_of(result_range_status: int) -> int:
    """The device range status held in a RESULT_RANGE_STATUS byte."""
    return (result_range_status >> RANGE_STATUS_SHIFT) & RANGE_STATUS_MASK
