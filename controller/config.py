"""Config: TOML (stdlib tomllib) loaded into frozen dataclasses, checked in full.

Every error names ``[section] key``, the value and the allowed range, and the
loader reports all of them at once. Unknown sections and options are refused.
Speeds in the file are km/h (therapists think in km/h); the code uses m/s.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.fields import FieldError, Num, Choice, Text, Flag, Pin, check_table
from hardware import vl53l0x_regs
from hardware.gpio_rules import ESTOP_BOUNCE_MS_DEFAULT, ESTOP_BOUNCE_MS_RANGE, PIN_FACTORIES, pin_clashes

#: VL53L0X reach that still holds on dark clothing in a lit room (datasheet: 1.2 m
#: on white indoors, much less on dark, low-reflectance targets).
#: What a VL53L0X reliably sees of a patient in dark clothing (mm): [safety] sensor_reach_mm's default.
SENSOR_RELIABLE_RANGE_MM = 800.0
KMH_PER_MPS = 3.6
BELT_CARRIES = ("toward_edge", "away_from_edge")
PROTOCOLS = ("trackmaster", "woodway", "speed-sensor")
#: The languages the dashboard, the patient display and the spoken prompts ship complete
#: (web/translations, voice/translations): English and Simplified Chinese.
LANGUAGES = ("en", "zh")


class ConfigError(ValueError):
    """The config file is invalid; ``errors`` holds every problem found."""

    def __init__(self, errors: list[FieldError], path: str | None = None):
        self.errors = errors
        self.path = path
        where = f"{path}: " if path else ""
        lines = "\n".join(f"  {e}" for e in errors)
        super().__init__(f"{where}{len(errors)} error(s) in config:\n{lines}")


@dataclass(frozen=True)
class TreadmillConfig:
    """The treadmill: how to reach it and how fast it can stop."""

    protocol: str = field(metadata={"spec": Choice(PROTOCOLS)})
    port: str = field(metadata={"spec": Text("a serial device path, e.g. /dev/serial/by-id/...")})
    baudrate: int = field(default=4800, metadata={"spec": Num(1200, 115200, integer=True)})
    decel_mps2: float = field(default=1.0, metadata={"spec": Num(0.2, 5.0, "m/s^2")})
    reaction_time_s: float = field(default=0.15, metadata={"spec": Num(0.0, 1.0, "s")})
    ack_timeout_s: float = field(default=0.1, metadata={"spec": Num(0.02, 0.25, "s")})
    poll_hz: float = field(default=20.0, metadata={"spec": Num(20.0, 50.0, "Hz")})
    link_timeout_s: float = field(default=0.3, metadata={"spec": Num(0.1, 0.3, "s")})
    #: Woodway dialect: send the reversed-belt direction digit in reverse mode.
    #: Which way the belt carries the patient in reverse-walking mode: "toward_edge" (the patient
    #: faces the rear on a normal belt), or "away_from_edge" (a reversed belt, the patient facing
    #: the console; woodway only). Forward walking always carries toward the edge.
    reverse_mode_carries: str = field(default="toward_edge", metadata={"spec": Choice(BELT_CARRIES)})

    @property
    def reverse_belt(self) -> bool:
        """Whether the belt runs reversed in reverse-walking mode (the woodway direction digit)."""
        return self.reverse_mode_carries == "away_from_edge"

    def carries_toward_edge(self, mode: str) -> bool:
        """Whether the belt carries the patient toward the rear edge in this walking mode."""
        return mode != "reverse" or not self.reverse_belt

    @property
    def can_command(self) -> bool:
        """Whether the controller can slow or stop the belt over the link."""
        return self.protocol != "speed-sensor"


@dataclass(frozen=True)
class SensorConfig:
    """One VL53L0X looking forward from the rear edge at the patient."""

    id: str = field(metadata={"spec": Text("a short name, e.g. \"left\"", max_len=16)})
    i2c_address: int = field(metadata={"spec": Num(*vl53l0x_regs.ADDRESS_RANGE, integer=True, hex=True)})
    xshut_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    #: The sensor's GPIO1 ("new sample ready", active low) wired to a Pi pin: the reader then wakes on
    #: its falling edge instead of polling the sensor over I2C. Optional; without it the sensor is polled.
    interrupt_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    #: Distance from the sensor's window to the rear edge (sensor behind the edge > 0).
    mount_offset_mm: float = field(default=0.0, metadata={"spec": Num(-200, 300, "mm")})
    timing_budget_ms: int = field(default=33, metadata={"spec": Num(*vl53l0x_regs.TIMING_BUDGET_MS_RANGE, "ms",
                                                                    integer=True)})

    @property
    def period_s(self) -> float:
        """Time between two samples in continuous mode."""
        return self.timing_budget_ms / 1000.0


@dataclass(frozen=True)
class I2cConfig:
    """The I2C bus all sensors share."""

    bus: int = field(default=1, metadata={"spec": Num(0, 20, integer=True)})


@dataclass(frozen=True)
class GpioConfig:
    """Pins, by BCM number or gpiozero name, and the pin factory (no fallback)."""

    pin_factory: str = field(metadata={"spec": Choice(PIN_FACTORIES)})
    relay_pin: int | str = field(metadata={"spec": Pin()})
    heartbeat_pin: int | str = field(metadata={"spec": Pin()})
    estop_pin: int | str = field(metadata={"spec": Pin()})
    relay_active_high: bool = field(default=True, metadata={"spec": Flag()})
    estop_bounce_ms: float = field(default=ESTOP_BOUNCE_MS_DEFAULT,
                                   metadata={"spec": Num(*ESTOP_BOUNCE_MS_RANGE, "ms")})
    #: The heartbeat's square-wave period: one edge every half period, from the decision thread.
    heartbeat_period_ms: float = field(default=50.0, metadata={"spec": Num(10.0, 200.0, "ms")})
    #: Hold time of the external missing-pulse watchdog relay on the heartbeat pin: it opens the
    #: safety circuit when no heartbeat period completes within it. Set to the relay as fitted.
    watchdog_hold_ms: float = field(default=100.0, metadata={"spec": Num(20.0, 5000.0, "ms")})
    reset_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    buzzer_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    lamp_green_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    lamp_amber_pin: int | str | None = field(default=None, metadata={"spec": Pin()})
    lamp_red_pin: int | str | None = field(default=None, metadata={"spec": Pin()})


@dataclass(frozen=True)
class Limits:
    """Therapist-adjustable limits; the dashboard may change them within the ceilings."""

    reverse_cap_kmh: float = field(default=2.0, metadata={"spec": Num(0.5, 6.0, "km/h")})
    forward_cap_kmh: float = field(default=2.2, metadata={"spec": Num(0.5, 6.0, "km/h")})
    base_stop_mm: float = field(default=250.0, metadata={"spec": Num(100, 600, "mm")})
    warn_margin_mm: float = field(default=200.0, metadata={"spec": Num(50, 500, "mm")})

    def cap_kmh(self, mode: str) -> float:
        """The speed cap of a mode ("reverse" or "forward")."""
        return self.reverse_cap_kmh if mode == "reverse" else self.forward_cap_kmh


#: For each limit, which direction is tighter (+1: larger is tighter).
LIMIT_TIGHTER_SIGN = {"reverse_cap_kmh": -1, "forward_cap_kmh": -1, "base_stop_mm": +1, "warn_margin_mm": +1}


@dataclass(frozen=True)
class Ceilings:
    """Installer-only hard bounds that no dashboard request can pass."""

    max_reverse_cap_kmh: float = field(default=2.2, metadata={"spec": Num(0.5, 6.0, "km/h")})
    max_forward_cap_kmh: float = field(default=2.2, metadata={"spec": Num(0.5, 6.0, "km/h")})
    min_base_stop_mm: float = field(default=200.0, metadata={"spec": Num(100, 600, "mm")})
    min_warn_margin_mm: float = field(default=100.0, metadata={"spec": Num(50, 500, "mm")})


@dataclass(frozen=True)
class SafetyConfig:
    """Installer-level thresholds of the safety rules."""

    overspeed_grace_s: float = field(default=1.0, metadata={"spec": Num(0.1, 2.0, "s")})
    gross_overspeed_factor: float = field(default=1.25, metadata={"spec": Num(1.05, 1.5)})
    overspeed_tolerance_kmh: float = field(default=0.2, metadata={"spec": Num(0.05, 0.5, "km/h")})
    sensor_disagree_mm: float = field(default=150.0, metadata={"spec": Num(30, 500, "mm")})
    obstruction_mm: float = field(default=30.0, metadata={"spec": Num(10, 100, "mm")})
    speed_ramp_kmh_per_s: float = field(default=0.5, metadata={"spec": Num(0.1, 2.0, "km/h/s")})
    warn_slowdown_kmh: float = field(default=0.3, metadata={"spec": Num(0.1, 1.0, "km/h")})
    min_speed_kmh: float = field(default=0.5, metadata={"spec": Num(0.2, 1.5, "km/h")})
    #: The patient's approach speed assumed when it cannot be measured (ISO 13855's walking
    #: approach, K = 1.6 m/s): the stop distance never falls back to the belt's speed alone.
    approach_speed_mps: float = field(default=1.6, metadata={"spec": Num(1.6, 2.5, "m/s")})
    #: How far the sensors reliably see the patient (the VL53L0X: about 800 mm on dark clothing).
    sensor_reach_mm: float = field(default=SENSOR_RELIABLE_RANGE_MM, metadata={"spec": Num(300, 1200, "mm")})


@dataclass(frozen=True)
class WebConfig:
    """The dashboard's listening address and the controller's IPC socket."""

    host: str = field(default="127.0.0.1", metadata={"spec": Text("an address to listen on")})
    port: int = field(default=8080, metadata={"spec": Num(1, 65535, integer=True)})
    ipc_socket: str = field(default="/run/treadmill-safety/control.sock",
                            metadata={"spec": Text("a Unix socket path")})
    #: Group owning the socket (mode 0660) so the dashboard's user may connect; "" keeps the default.
    ipc_group: str = field(default="", metadata={"spec": Text("a group name or \"\"", max_len=32, min_len=0)})
    #: The dashboard's own state: its session secret, the accounts and the audit trail (access.db).
    state_dir: str = field(default="/var/lib/treadmill-dashboard", metadata={"spec": Text("a directory path")})
    #: A login ends after this long without a page opened or a change made (a tablet left logged in).
    session_idle_min: float = field(default=30.0, metadata={"spec": Num(1, 720, "min")})
    #: The dashboard's TLS certificate and private key (PEM paths). Both "" serve plain HTTP,
    #: which only ``make demo`` and the tests do; setting one without the other is an error.
    tls_cert: str = field(default="", metadata={"spec": Text("a PEM certificate path or \"\"", min_len=0)})
    tls_key: str = field(default="", metadata={"spec": Text("a PEM private key path or \"\"", min_len=0)})


@dataclass(frozen=True)
class StorageConfig:
    """Where events, sessions and therapist settings live."""

    state_dir: str = field(default="/var/lib/treadmill-safety", metadata={"spec": Text("a directory path")})
    #: Session timelines older than this are deleted; session summaries are kept.
    sample_retention_days: int = field(default=365, metadata={"spec": Num(7, 3650, "days", integer=True)})


@dataclass(frozen=True)
class SessionsConfig:
    """The therapy-session regimen: timer, progression and timeline sampling."""

    #: The buzzer sounds this long before the planned duration is reached.
    end_warning_s: float = field(default=30.0, metadata={"spec": Num(5, 120, "s")})
    #: A new patient's first suggested session (the regimen starts at about 5 minutes).
    start_duration_min: float = field(default=5.0, metadata={"spec": Num(1, 30, "min")})
    #: How much the suggested duration may grow per week, towards the patient's target.
    weekly_step_min: float = field(default=2.5, metadata={"spec": Num(0.5, 10, "min")})
    #: Timeline samples per second recorded during a session.
    sample_hz: float = field(default=10.0, metadata={"spec": Num(5, 20, "Hz")})


@dataclass(frozen=True)
class DisplayConfig:
    """How the dashboard and the patient display show speeds, and in which language by default."""

    units: str = field(default="km/h", metadata={"spec": Choice(("km/h", "mph"))})
    #: The pages' language until a therapist picks another on the dashboard (kept in the browser).
    language: str = field(default="en", metadata={"spec": Choice(LANGUAGES)})


@dataclass(frozen=True)
class VoiceConfig:
    """The spoken prompts for the patient (the voice service, espeak-ng)."""

    enabled: bool = field(default=True, metadata={"spec": Flag()})
    #: The prompts' language; "" speaks the [display] language.
    language: str = field(default="", metadata={"spec": Choice(("",) + LANGUAGES)})
    #: Loudness in percent of espeak-ng's normal amplitude (100 = its default).
    volume_pct: int = field(default=100, metadata={"spec": Num(10, 200, "%", integer=True)})
    #: Speaking rate: slow and clear for older patients (espeak-ng's default is 175).
    rate_wpm: int = field(default=140, metadata={"spec": Num(80, 260, "words/min", integer=True)})
    #: The ALSA device the prompts play on ("" = the system's default device).
    device: str = field(default="", metadata={"spec": Text("an ALSA device name or \"\"", max_len=64, min_len=0)})


#: A treadmill's name in the clinic record: a short id, like a patient's.
TREADMILL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
CLINIC_SSLMODES = ("verify-full", "verify-ca", "require", "disable")
#: A libpq keyword=value pair, or a URI's user:password@.
_DSN_PASSWORD = re.compile(r"(?:^|\s)password\s*=|^postgres(?:ql)?://[^/@]*:[^/@]*@", re.IGNORECASE)


@dataclass(frozen=True)
class ClinicConfig:
    """The clinic's record in PostgreSQL, shared by its treadmills; treadmill_id "" keeps this Pi on its own.

    The controller keeps writing its own history.db; the replicator (``treadmill-safety
    replicate``) ships it to the server and brings back the clinic's patients. The password
    never sits in the config: ``password_file``, else libpq's own PGPASSWORD or ~/.pgpass.
    """

    #: This treadmill's name in the clinic record ("" = no clinic record: SQLite alone).
    treadmill_id: str = field(default="", metadata={"spec": Text("1 to 32 letters, digits, _ or -, or \"\"",
                                                                 max_len=32, min_len=0)})
    #: A libpq connection string without the password: "host=db.clinic.lan dbname=treadmills user=treadmill-a".
    dsn: str = field(default="", metadata={"spec": Text("a libpq connection string without a password",
                                                        max_len=1000, min_len=0)})
    #: A file holding the password alone (mode 0600/0640), e.g. a systemd credential.
    password_file: str = field(default="", metadata={"spec": Text("a file path or \"\"", min_len=0)})
    sslmode: str = field(default="verify-full", metadata={"spec": Choice(CLINIC_SSLMODES)})
    #: The CA that signed the server's certificate ("" = libpq's default, ~/.postgresql/root.crt).
    sslrootcert: str = field(default="", metadata={"spec": Text("a PEM file path or \"\"", min_len=0)})
    #: A client certificate and its key, where the server asks for one (both or neither).
    sslcert: str = field(default="", metadata={"spec": Text("a PEM file path or \"\"", min_len=0)})
    sslkey: str = field(default="", metadata={"spec": Text("a PEM file path or \"\"", min_len=0)})
    #: This treadmill's own dashboard, linked from the clinic overview ("" = no link).
    dashboard_url: str = field(default="", metadata={"spec": Text("an http(s):// address or \"\"",
                                                                  max_len=200, min_len=0)})
    #: Rows shipped in one transaction at most.
    batch_rows: int = field(default=500, metadata={"spec": Num(10, 5000, "rows", integer=True)})
    connect_timeout_s: float = field(default=5.0, metadata={"spec": Num(1, 30, "s")})

    @property
    def enabled(self) -> bool:
        """True when this treadmill belongs to a clinic record."""
        return bool(self.treadmill_id)


def clinic_errors(clinic: ClinicConfig) -> list[FieldError]:
    """What the field specs cannot say alone: the id's form, a DSN when there is an id, no password in it."""
    errors = []
    if clinic.treadmill_id and not TREADMILL_ID.fullmatch(clinic.treadmill_id):
        errors.append(FieldError("clinic", "treadmill_id", clinic.treadmill_id,
                                 "must be 1 to 32 letters, digits, _ or -, starting with a letter or digit"))
    if clinic.treadmill_id and not clinic.dsn:
        errors.append(FieldError("clinic", "dsn", clinic.dsn, "is required with a treadmill_id: a libpq "
                                 "connection string such as \"host=db.clinic.lan dbname=treadmills user=treadmill-a\""))
    if _DSN_PASSWORD.search(clinic.dsn):
        errors.append(FieldError("clinic", "dsn", "(not shown: it holds a password)",
                                 "must not hold the password: put it in the file [clinic] password_file names, "
                                 "or in PGPASSWORD"))
    if bool(clinic.sslcert) != bool(clinic.sslkey):
        errors += [FieldError("clinic", key, getattr(clinic, key), f"must be set together with [clinic] {other} "
                              "(a client certificate and its key), or both \"\"")
                   for key, other in (("sslcert", "sslkey"), ("sslkey", "sslcert"))]
    if clinic.dashboard_url and not re.fullmatch(r"https?://\S+", clinic.dashboard_url):
        errors.append(FieldError("clinic", "dashboard_url", clinic.dashboard_url,
                                 "must be an http:// or https:// address, or \"\""))
    return errors


@dataclass(frozen=True)
class Config:
    """The whole, validated config."""

    treadmill: TreadmillConfig
    sensors: tuple[SensorConfig, ...]
    gpio: GpioConfig
    i2c: I2cConfig = I2cConfig()
    limits: Limits = Limits()
    ceilings: Ceilings = Ceilings()
    safety: SafetyConfig = SafetyConfig()
    web: WebConfig = WebConfig()
    storage: StorageConfig = StorageConfig()
    sessions: SessionsConfig = SessionsConfig()
    display: DisplayConfig = DisplayConfig()
    voice: VoiceConfig = VoiceConfig()
    clinic: ClinicConfig = ClinicConfig()
    #: Non-fatal findings (printed by check-config), e.g. a ceiling beyond sensor reach.
    warnings: tuple[str, ...] = ()

    @property
    def sensor_period_s(self) -> float:
        """The slowest sensor's period: the detection time in the stop distance."""
        return max(s.period_s for s in self.sensors)

    @property
    def max_mount_offset_mm(self) -> float:
        """The largest offset: the sensor that must see farthest."""
        return max(s.mount_offset_mm for s in self.sensors)


_SECTIONS: dict[str, type] = {
    "treadmill": TreadmillConfig, "gpio": GpioConfig, "i2c": I2cConfig, "limits": Limits,
    "ceilings": Ceilings, "safety": SafetyConfig, "web": WebConfig, "storage": StorageConfig,
    "sessions": SessionsConfig, "display": DisplayConfig, "voice": VoiceConfig,
    "clinic": ClinicConfig,
}
_REQUIRED_SECTIONS = ("treadmill", "sensors", "gpio")


def stop_distance_mm(belt_speed_mps: float, base_stop_mm: float, sensor_period_s: float,
                     reaction_time_s: float, decel_mps2: float, closing_speed_mps: float | None = None) -> float:
    """Stop distance after ISO 13855 (S = K*T + C) with the approach speed of ISO/TS 15066:
    base + v_close*(t_detect + t_react) + v_belt^2/(2*decel).

    ``closing_speed_mps`` is how fast the gap closes; None: the belt's own speed (the patient
    carried). The braking term is the belt's whichever way it runs: while it slows, a patient
    who keeps their cadence closes on the edge by that much.
    """
    v_belt = max(0.0, belt_speed_mps)
    v_close = v_belt if closing_speed_mps is None else max(0.0, closing_speed_mps)
    return base_stop_mm + 1000.0 * (v_close * (sensor_period_s + reaction_time_s) + v_belt * v_belt / (2.0 * decel_mps2))


def _zone_ends_mm(cap_kmh: float, mode: str, base_stop_mm: float, warn_margin_mm: float,
                  treadmill: TreadmillConfig, safety: SafetyConfig, sensor_period_s: float,
                  offset_mm: float) -> tuple[float, float, float]:
    """At full cap: the stop distance of a carried patient, where its warn zone ends and where the stop
    zone of a patient approaching at the assumed approach speed ends (both from the sensor, in mm)."""
    v = cap_kmh / KMH_PER_MPS
    carried = v if treadmill.carries_toward_edge(mode) else 0.0
    stop = stop_distance_mm(v, base_stop_mm, sensor_period_s, treadmill.reaction_time_s, treadmill.decel_mps2,
                            carried)
    approach = stop_distance_mm(v, base_stop_mm, sensor_period_s, treadmill.reaction_time_s, treadmill.decel_mps2,
                                max(carried, safety.approach_speed_mps))
    return stop, stop + warn_margin_mm + offset_mm, approach + offset_mm


def max_reach_cap_kmh(mode: str, base_stop_mm: float, warn_margin_mm: float, treadmill: TreadmillConfig,
                      safety: SafetyConfig, sensor_period_s: float, max_mount_offset_mm: float,
                      at_most_kmh: float) -> float | None:
    """The largest cap of ``mode``, to 0.1 km/h and not above ``at_most_kmh``, whose zones the sensors see
    with these distances (both reach conditions of :func:`reach_errors`); never below [safety]
    min_speed_kmh: None when not even that speed fits. The zones grow with the cap, so the first
    step down that fits is the largest."""
    reach, offset, floor_kmh = safety.sensor_reach_mm, max(0.0, max_mount_offset_mm), safety.min_speed_kmh

    def fits(cap_kmh: float) -> bool:
        _, warn_end, approach_end = _zone_ends_mm(cap_kmh, mode, base_stop_mm, warn_margin_mm, treadmill, safety,
                                                  sensor_period_s, offset)
        return warn_end <= reach and approach_end <= reach

    step = math.floor(at_most_kmh * 10 + 1e-9)
    while step >= 0 and round(step / 10, 1) >= floor_kmh:
        if fits(round(step / 10, 1)):
            return round(step / 10, 1)
        step -= 1
    return floor_kmh if floor_kmh <= at_most_kmh and fits(floor_kmh) else None


def _distance_fix(mode: str, base_stop_mm: float, warn_margin_mm: float, treadmill: TreadmillConfig,
                  safety: SafetyConfig, sensor_period_s: float, offset_mm: float) -> str:
    """What to shorten, and to what (whole mm), when not even the lowest speed fits."""
    floor_kmh, reach = safety.min_speed_kmh, safety.sensor_reach_mm
    _, warn_end, approach_end = _zone_ends_mm(floor_kmh, mode, base_stop_mm, warn_margin_mm, treadmill, safety,
                                              sensor_period_s, offset_mm)
    fixes, room = [], []
    if approach_end > reach:
        room.append(base_stop_mm - math.ceil(approach_end - reach))
        fixes.append(f"the base stop distance to at most {room[-1]:g} mm")
    if warn_end > reach:
        room.append(base_stop_mm + warn_margin_mm - math.ceil(warn_end - reach))
        fixes.append(f"the base stop distance plus the warn margin to at most {room[-1]:g} mm")
    if any(mm <= 0 for mm in room):
        return ("no distance is short enough: the sensors' reach or their mount offset must change "
                "(the installer's settings)")
    return "shorten " + ", and ".join(fixes)


def reach_errors(reverse_cap_kmh: float, forward_cap_kmh: float, base_stop_mm: float,
                 warn_margin_mm: float, treadmill: TreadmillConfig, safety: SafetyConfig, sensor_period_s: float,
                 max_mount_offset_mm: float, section: str = "limits",
                 keys: tuple[str, str] = ("reverse_cap_kmh", "forward_cap_kmh")) -> list[FieldError]:
    """Caps whose zones, at full cap, lie beyond what the sensors reliably see: the warn zone of a
    patient carried by the belt, and the stop zone of one approaching at the assumed approach speed.

    Each message starts with the fix, in words: the largest cap (to 0.1 km/h) these distances allow,
    or, when not even [safety] min_speed_kmh fits, which distance to shorten and by how much; then the
    figures, naming the settings involved."""
    errors = []
    reach = safety.sensor_reach_mm
    offset = max(0.0, max_mount_offset_mm)
    for key, cap_kmh, mode in zip(keys, (reverse_cap_kmh, forward_cap_kmh), ("reverse", "forward")):
        stop, warn_end, approach_end = _zone_ends_mm(cap_kmh, mode, base_stop_mm, warn_margin_mm, treadmill,
                                                     safety, sensor_period_s, offset)
        if warn_end > reach:
            why = (f"at {cap_kmh:g} km/h the warn zone would end {warn_end:.0f} mm from the sensor "
                   f"(stop {stop:.0f} mm + warn margin {warn_margin_mm:.0f} mm + mount offset {offset:.0f} mm), "
                   f"beyond [safety] sensor_reach_mm = {reach:g}")
        elif approach_end > reach:
            why = (f"at {cap_kmh:g} km/h the stop zone for a patient approaching at [safety] approach_speed_mps = "
                   f"{safety.approach_speed_mps:g} m/s would end {approach_end:.0f} mm from the sensor, "
                   f"beyond [safety] sensor_reach_mm = {reach:g}")
        else:
            continue
        best = max_reach_cap_kmh(mode, base_stop_mm, warn_margin_mm, treadmill, safety, sensor_period_s, offset,
                                 cap_kmh)
        if best is not None:
            fix = f"with these distances the {mode} cap can be at most {best:g} km/h"
        else:
            fix = (f"with these distances no {mode} cap fits, not even {safety.min_speed_kmh:g} km/h: "
                   + _distance_fix(mode, base_stop_mm, warn_margin_mm, treadmill, safety, sensor_period_s, offset))
        errors.append(FieldError(section, key, cap_kmh, f"{fix}; {why}"))
    return errors


def limits_reach_errors(limits: Limits, treadmill: TreadmillConfig, safety: SafetyConfig,
                        sensors: tuple[SensorConfig, ...], section: str = "limits") -> list[FieldError]:
    """Refuse limits whose zones the sensors could not see."""
    return reach_errors(limits.reverse_cap_kmh, limits.forward_cap_kmh, limits.base_stop_mm,
                        limits.warn_margin_mm, treadmill, safety, max(s.period_s for s in sensors),
                        max(s.mount_offset_mm for s in sensors), section)


def ceiling_errors(limits: Limits, ceilings: Ceilings, section: str = "limits") -> list[FieldError]:
    """Limits must lie inside the installer's ceilings."""
    checks = (
        ("reverse_cap_kmh", limits.reverse_cap_kmh, "<=", ceilings.max_reverse_cap_kmh, "max_reverse_cap_kmh"),
        ("forward_cap_kmh", limits.forward_cap_kmh, "<=", ceilings.max_forward_cap_kmh, "max_forward_cap_kmh"),
        ("base_stop_mm", limits.base_stop_mm, ">=", ceilings.min_base_stop_mm, "min_base_stop_mm"),
        ("warn_margin_mm", limits.warn_margin_mm, ">=", ceilings.min_warn_margin_mm, "min_warn_margin_mm"),
    )
    errors = []
    for key, value, op, bound, ceiling_key in checks:
        ok = value <= bound if op == "<=" else value >= bound
        if not ok:
            errors.append(FieldError(section, key, value,
                                     f"must be {op} {bound:g} ([ceilings] {ceiling_key})"))
    return errors


def _sensor_errors(raw: list[dict]) -> list[FieldError]:
    """Cross-sensor rules, checked on whatever values are present."""
    errors = []
    # Only values of the field's type can clash (others have their own error); str() of a huge int would raise.
    for key, kind, shown in (("id", str, str), ("i2c_address", int, lambda a: f"0x{a:02x}")):
        values = [v for t in raw if isinstance(v := t.get(key), kind) and not isinstance(v, bool)]
        for dup in sorted({v for v in values if values.count(v) > 1}):
            errors.append(FieldError("sensors", key, shown(dup), "must be unique across [[sensors]]"))
    if len(raw) > 1:
        for i, t in enumerate(raw, start=1):
            if "xshut_pin" not in t:
                errors.append(FieldError(f"sensors #{i}", "xshut_pin", "(missing)",
                                         "is required with two or more sensors: they are addressed one by one at boot"))
    return errors


def _load_sensors(raw: Any, errors: list[FieldError]) -> tuple[SensorConfig, ...] | None:
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
        errors.append(FieldError("sensors", "", raw if not isinstance(raw, list) else f"{len(raw)} entries",
                                 "must be one or more [[sensors]] tables"))
        return None
    sensors = [check_table(SensorConfig, f"sensors #{i}", t, errors) for i, t in enumerate(raw, start=1)]
    errors += _sensor_errors(raw)
    return None if any(s is None for s in sensors) else tuple(sensors)


def _pin_errors(gpio: dict, sensors: list) -> list[FieldError]:
    """Every pin used once only (checked on the raw tables, so it runs beside field errors)."""
    named = [("gpio", k, v) for k, v in gpio.items() if k.endswith("_pin")] if isinstance(gpio, dict) else []
    if isinstance(sensors, list):
        named += [(f"sensors #{i}", key, t.get(key)) for i, t in enumerate(sensors, start=1)
                  if isinstance(t, dict) for key in ("xshut_pin", "interrupt_pin")]
    # Invalid pins are skipped: each has its own error (and an integer too long to print has no name).
    return [FieldError(section, key, pin, f"is already used by [{first[0]}] {first[1]}")
            for (section, key, pin), first in pin_clashes((user, user[2]) for user in named)]


#: Options of earlier releases, refused with what replaced them (then left out of the other checks).
_RETIRED_OPTIONS = {
    # Which way the belt runs in reverse mode: named for what it means now.
    ("treadmill", "reverse_belt"): 'was renamed: write reverse_mode_carries = "away_from_edge" for true, '
                                   '"toward_edge" for false',
    # The decision thread no longer ticks: it wakes for inputs and for the next deadline of a rule.
    ("safety", "tick_hz"): "is no longer used: the decision thread wakes for each input and for the next "
                           "deadline of a rule; remove it (the heartbeat's pace is [gpio] heartbeat_period_ms)",
}


def parse_config(data: dict[str, Any], path: str | None = None) -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    errors: list[FieldError] = []
    for (section, key), message in _RETIRED_OPTIONS.items():
        table = data.get(section)
        if isinstance(table, dict) and key in table:
            errors.append(FieldError(section, key, table[key], message))
            data = {**data, section: {k: v for k, v in table.items() if k != key}}
    for name in data:
        if name not in _SECTIONS and name != "sensors":
            errors.append(FieldError(name, "", "", f"section [{name}] is not valid; sections: "
                                     + ", ".join(sorted([*_SECTIONS, "sensors"]))))
    for name in _REQUIRED_SECTIONS:
        if name not in data:
            errors.append(FieldError(name, "", "(missing)", "this section is required"))
    parts: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        if name in data or name not in _REQUIRED_SECTIONS:
            parts[name] = check_table(cls, name, data.get(name, {}), errors)
    sensors = _load_sensors(data["sensors"], errors) if "sensors" in data else None
    errors += _pin_errors(data.get("gpio", {}), data.get("sensors", []))
    limits, ceilings, treadmill = parts.get("limits"), parts.get("ceilings"), parts.get("treadmill")
    if limits is not None and ceilings is not None:
        errors += ceiling_errors(limits, ceilings)
    if treadmill is not None:
        worst_s = 1.0 / treadmill.poll_hz + treadmill.ack_timeout_s
        if treadmill.can_command and treadmill.link_timeout_s < worst_s:
            errors.append(FieldError("treadmill", "link_timeout_s", treadmill.link_timeout_s,
                                     f"must be at least one poll period plus the ack timeout "
                                     f"({worst_s:.3f} s with poll_hz and ack_timeout_s as set), "
                                     "or a healthy link would trip"))
    gpio = parts.get("gpio")
    if gpio is not None and gpio.heartbeat_period_ms > gpio.watchdog_hold_ms / 2:
        errors.append(FieldError("gpio", "heartbeat_period_ms", data["gpio"].get("heartbeat_period_ms", gpio.heartbeat_period_ms),
                                 f"must be at most {gpio.watchdog_hold_ms / 2:g} ms, half of [gpio] watchdog_hold_ms "
                                 f"({gpio.watchdog_hold_ms:g} ms): "
                                 "one late heartbeat period must not let the watchdog relay drop"))
    safety = parts.get("safety")
    if safety is not None:
        for section, table in (("limits", limits), ("ceilings", ceilings)):
            if table is None:
                continue
            for f in dataclasses.fields(table):
                if f.name.endswith("_cap_kmh") and getattr(table, f.name) < safety.min_speed_kmh:
                    errors.append(FieldError(section, f.name, getattr(table, f.name),
                                             f"must be at least [safety] min_speed_kmh = {safety.min_speed_kmh:g}"))
    web = parts.get("web")
    if web is not None and bool(web.tls_cert) != bool(web.tls_key):
        # Each names both fields: the certificate and its key are one choice.
        errors += [FieldError("web", key, getattr(web, key), f"must be set together with [web] {other} "
                              "(a certificate and its private key), or both \"\" for plain HTTP")
                   for key, other in (("tls_cert", "tls_key"), ("tls_key", "tls_cert"))]
    if parts.get("clinic") is not None:
        errors += clinic_errors(parts["clinic"])
    if treadmill is not None and treadmill.reverse_belt and treadmill.protocol != "woodway":
        errors.append(FieldError("treadmill", "reverse_mode_carries", treadmill.reverse_mode_carries,
                                 "only the woodway dialect can run the belt reversed (its direction digit)"))
    if errors or sensors is None or any(p is None for p in parts.values()):
        if limits is not None and treadmill is not None and safety is not None and sensors:
            errors += limits_reach_errors(limits, treadmill, safety, sensors)
        raise ConfigError(errors, path)
    cfg = Config(sensors=sensors, **parts)
    errors += limits_reach_errors(cfg.limits, cfg.treadmill, cfg.safety, cfg.sensors)
    if errors:
        raise ConfigError(errors, path)
    # A ceiling beyond reach is not dangerous (limits are checked on every change),
    # but the installer should know the dashboard can never use it.
    c = cfg.ceilings
    warnings = tuple(
        f"{e}; the dashboard will refuse caps this high"
        for e in reach_errors(c.max_reverse_cap_kmh, c.max_forward_cap_kmh, c.min_base_stop_mm,
                              c.min_warn_margin_mm, cfg.treadmill, cfg.safety, cfg.sensor_period_s,
                              cfg.max_mount_offset_mm, "ceilings",
                              ("max_reverse_cap_kmh", "max_forward_cap_kmh")))
    return dataclasses.replace(cfg, warnings=warnings)


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML config file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([FieldError("file", "", str(p), f"cannot be read: {exc.strerror or exc}")], str(p)) from exc
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        # tomllib lets ValueError (an integer of over 4300 digits) and RecursionError (deep nesting) through.
        raise ConfigError([FieldError("file", "", str(p), f"is not valid TOML: {exc}")], str(p)) from exc
    return parse_config(data, str(p))

