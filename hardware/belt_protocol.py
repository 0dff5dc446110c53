"""Byte framing of the TrackMaster/Woodway serial protocol and the speed-sensor line protocol.

Pure functions and constants, no I/O: the driver (``hardware.belt``) and the
emulator (``hardware.sim.treadmill``) both use them, so a framing change shows
up on both sides of the tests at once.

TrackMaster/Woodway framing (4800 8N1, one command outstanding at a time):

- Input command: one byte ``0xA0..0xAF``; A3 (set speed) and A4 (set
  elevation) carry 4 ASCII bytes of data. The answer is the single byte
  ``command + 0x10`` (A3 -> B3), or BE (data out of range) / BF (illegal
  command). BD (master timeout) is sent unasked when the disconnect stop fires.
- Status request: one byte ``0xC0..0xCF``; the answer is ``request + 0x10``
  (C1 -> D1) followed by data: 1 byte for D0, 4 ASCII bytes for D1..D4.
- Speeds are tenths of mph. TrackMaster: 4 ASCII digits (``0040`` = 4.0 mph).
  Woodway: a direction digit (``0`` forward, ``3`` reversed belt) then 3
  ASCII digits (``3012`` = 1.2 mph reversed). No sign byte, ever.
"""

from __future__ import annotations

import math

DIALECTS: tuple[str, ...] = ("trackmaster", "woodway")

#: Exact by definition (international mile, hour).
MPS_PER_MPH = 0.44704

# Input commands (host -> treadmill).
START_BELT_DISCONNECT_STOP = 0xA0
START_BELT = 0xA1
STOP_BELT = 0xA2
SET_SPEED = 0xA3
SET_ELEVATION = 0xA4
WOODWAY_START_BELT = 0xA9
AUTO_STOP = 0xAA
#: Commands followed by 4 ASCII data bytes.
COMMANDS_WITH_DATA = frozenset({SET_SPEED, SET_ELEVATION})
DATA_LEN = 4

# Status requests (host -> treadmill); the answer is request + 0x10.
BELT_STATUS = 0xC0
ACTUAL_SPEED = 0xC1
ACTUAL_ELEVATION = 0xC2
SET_SPEED_STATUS = 0xC3
SET_ELEVATION_STATUS = 0xC4

#: Ax -> Bx and Cx -> Dx.
ANSWER_OFFSET = 0x10

# Error answers.
MASTER_TIMEOUT = 0xBD
DATA_OUT_OF_RANGE = 0xBE
ILLEGAL_COMMAND = 0xBF
ERROR_NAMES: dict[int, str] = {
    MASTER_TIMEOUT: "master timeout",
    DATA_OUT_OF_RANGE: "data out of range",
    ILLEGAL_COMMAND: "illegal command",
}

# D0 belt status byte (ASCII digit), per the TrackMaster service manual.
STATUS_STOPPED = ord("1")
STATUS_STARTED_DISCONNECT_STOP = ord("2")
STATUS_STARTED = ord("3")

# Woodway direction digit.
DIRECTION_FORWARD = ord("0")
DIRECTION_REVERSED = ord("3")

_DIGITS = frozenset(b"0123456789")

#: Largest speed each dialect's A3/D1 field can carry, in tenths of mph.
MAX_SPEED_TENTHS_MPH: dict[str, int] = {"trackmaster": 9999, "woodway": 999}


def check_dialect(dialect: str) -> str:
    """Return ``dialect`` if it names a TrackMaster-family dialect, else raise ValueError."""
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}, got {dialect!r}")
    return dialect


def answer_code(request: int) -> int:
    """The acknowledgement (Ax -> Bx) or status response (Cx -> Dx) code for a request byte."""
    return request + ANSWER_OFFSET


def max_speed_mps(dialect: str) -> float:
    """Largest speed the dialect's 3- or 4-digit speed field can encode, in m/s."""
    return MAX_SPEED_TENTHS_MPH[check_dialect(dialect)] / 10.0 * MPS_PER_MPH


def mps_to_tenths_mph_floor(speed_mps: float) -> int:
    """Speed in whole tenths of mph, rounded DOWN so a speed cap is never exceeded.

    Rounding to 9 decimals first keeps exact values (1.0 mph) from flooring to
    0.9 through binary float error; the excess it can add is below 1e-9 tenth.
    """
    return math.floor(round(speed_mps / MPS_PER_MPH * 10.0, 9))


def mps_to_tenths_mph_nearest(speed_mps: float) -> int:
    """Speed in tenths of mph, rounded to nearest (a treadmill's display of its actual speed)."""
    return int(round(abs(speed_mps) / MPS_PER_MPH * 10.0))


def tenths_mph_to_mps(tenths_mph: int) -> float:
    """Convert tenths of mph to m/s."""
    return tenths_mph / 10.0 * MPS_PER_MPH


def encode_speed_field(tenths_mph: int, dialect: str, *, reversed_belt: bool = False) -> bytes:
    """The 4 ASCII data bytes of A3/D1/D3; clamps to the field, never emits a '-' byte."""
    field_max = MAX_SPEED_TENTHS_MPH[check_dialect(dialect)]
    tenths = min(max(int(tenths_mph), 0), field_max)
    if dialect == "woodway":
        direction = DIRECTION_REVERSED if reversed_belt else DIRECTION_FORWARD
        return bytes([direction]) + f"{tenths:03d}".encode("ascii")
    return f"{tenths:04d}".encode("ascii")


def decode_speed_field(data: bytes, dialect: str) -> tuple[int, bool]:
    """Parse A3/D1/D3 data into (tenths of mph, reversed belt); ValueError if malformed."""
    check_dialect(dialect)
    if len(data) != DATA_LEN:
        raise ValueError(f"speed field must be {DATA_LEN} bytes, got {len(data)}: {data!r}")
    if dialect == "woodway":
        direction, digits = data[0], data[1:]
        if direction not in (DIRECTION_FORWARD, DIRECTION_REVERSED):
            raise ValueError(f"woodway direction digit must be '0' or '3', got {data[:1]!r}")
    else:
        direction, digits = DIRECTION_FORWARD, data
    if not all(b in _DIGITS for b in digits):
        raise ValueError(f"speed field must be ASCII digits, got {data!r}")
    return int(digits.decode("ascii")), direction == DIRECTION_REVERSED


def is_speed_field(data: bytes, dialect: str) -> bool:
    """True if ``data`` is a well-formed speed field for the dialect."""
    try:
        decode_speed_field(data, dialect)
    except ValueError:
        return False
    return True


def set_speed_frame(speed_mps: float, dialect: str, *, reversed_belt: bool = False) -> bytes:
    """A3 frame for a speed in m/s: floor to tenths of mph, direction digit for woodway."""
    tenths = mps_to_tenths_mph_floor(speed_mps)
    return bytes([SET_SPEED]) + encode_speed_field(tenths, dialect, reversed_belt=reversed_belt)


def describe_frame(frame: bytes) -> str:
    """Human form of a frame for log lines: ``A3 0012``, ``C1``, ``D1 0012``."""
    if not frame:
        return "(nothing)"
    text = f"{frame[0]:02X}"
    data = frame[1:]
    if data:
        if all(0x20 <= b < 0x7F for b in data):
            text += " " + data.decode("ascii")
        else:
            text += " " + data.hex(" ").upper()
    return text


def describe_code(code: int) -> str:
    """``BE (data out of range)`` for error codes, ``B3`` otherwise."""
    name = ERROR_NAMES.get(code)
    return f"{code:02X} ({name})" if name else f"{code:02X}"


# ---- Speed-sensor line protocol --------------------------------------------
# One ASCII signed integer (mm/s) per line, '\n' terminated ('\r\n' accepted).

#: Longest line accepted; anything longer is noise and is skipped to the next newline.
SENSOR_MAX_LINE_BYTES = 16
#: A belt faster than this (36 km/h) is not a treadmill reading: reject, don't clamp.
SENSOR_MAX_ABS_MM_S = 10_000


def parse_sensor_line(line: bytes) -> int:
    """Parse one speed-sensor line (without its newline) into signed mm/s; ValueError if not one."""
    text = line.rstrip(b"\r")
    body = text[1:] if text[:1] in (b"-", b"+") else text
    # The limit counts the raw line, '\r' included, as the driver's reader does before the newline arrives.
    if not body or len(line) > SENSOR_MAX_LINE_BYTES or not all(b in _DIGITS for b in body):
        raise ValueError(f"speed-sensor line is not a signed integer: {line!r}")
    speed_mm_s = int(text.decode("ascii"))
    if abs(speed_mm_s) > SENSOR_MAX_ABS_MM_S:
        raise ValueError(
            f"speed-sensor value {speed_mm_s} mm/s is outside "
            f"[-{SENSOR_MAX_ABS_MM_S}, {SENSOR_MAX_ABS_MM_S}] mm/s"
        )
    return speed_mm_s


def encode_sensor_line(speed_mm_s: int) -> bytes:
    """One speed-sensor line for a signed speed in mm/s."""
    return f"{int(speed_mm_s)}\n".encode("ascii")
