"""The serial readers take arbitrary bytes, never raise, and never report a speed that was not framed.

Streams interleave arbitrary bytes, near-miss frames and valid frames whose
speeds are known. What a reader must report is computed from the stream by an
independent reference (regular expressions over the bytes, following the
protocol's rules), never by the code under test: a frame that garbage happens
to contain is a frame too. Each stream also goes in at arbitrary chunk
boundaries, once straight into the framer and once through the real driver on
a pseudo-terminal.
"""

from __future__ import annotations

import os
import re
import select
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import event, example, given, strategies as st

from hardware import BeltReading, LinkFault
from hardware import belt_protocol as proto
from hardware.belt import SpeedSensorBelt, TrackMasterBelt
from hardware.belt_link import GARBAGE_LIMIT_BYTES
from tests.reliability.tally import TALLY, fuzz
from tests.waiting import expect

KIND = "bad inputs: serial bytes streams"
#: The driver's verdict on a stream that garbage or an error code broke.
KNOWN_FAULTS = ("bytes of garbage without a valid frame", "answered B", "sent B", "did not answer")
#: Frame bytes by dialect: D1 then the speed field, and the error answers BD, BE, BF.
FRAME_RE = {"trackmaster": re.compile(rb"\xd1([0-9]{4})"), "woodway": re.compile(rb"\xd1([03][0-9]{3})")}
ERROR_RE = re.compile(rb"[\xbd-\xbf]")
#: A speed-sensor line: an optional sign and digits ('\r' before the newline tolerated), at most 16 bytes.
SENSOR_LINE_RE = re.compile(rb"[+-]?([0-9]+)\r*")
SENSOR_LINE_MAX_BYTES = 16
SENSOR_MAX_MM_S = 10_000


class Recorder:
    """Callbacks for a driver that record everything and never raise into it."""

    def __init__(self) -> None:
        self.readings: list[BeltReading] = []
        self.faults: list[LinkFault] = []
        self.odd: list[str] = []

    def on_reading(self, reading: BeltReading) -> None:
        try:
            assert isinstance(reading, BeltReading) and reading.belt_speed_mps >= 0.0
            self.readings.append(reading)
        except Exception as exc:  # noqa: BLE001 - reported by the test, not thrown into the worker
            self.odd.append(f"reading {reading!r}: {exc!r}")

    def on_fault(self, fault: LinkFault) -> None:
        try:
            assert isinstance(fault, LinkFault) and fault.message
            self.faults.append(fault)
        except Exception as exc:  # noqa: BLE001
            self.odd.append(f"fault {fault!r}: {exc!r}")

    def speeds(self) -> list[float]:
        return [r.belt_speed_mps for r in self.readings]


@dataclass
class Expected:
    """What a correct reader reports for a stream."""

    speeds: list[float] = field(default_factory=list)
    #: Raw speed fields (TrackMaster/Woodway) byte for byte, in stream order.
    fields: list[bytes] = field(default_factory=list)
    garbage_bytes: int = 0
    garbage_lines: int = 0
    faulted: bool = False


def tenths_mph_to_mps(tenths: int) -> float:
    return tenths / 10.0 * 0.44704


def expected_sensor(stream: bytes) -> Expected:
    """Reference reader for the speed-sensor protocol: whole lines only, garbage limited between readings."""
    exp, since_valid = Expected(), 0
    for line in stream.split(b"\n")[:-1]:  # the bytes after the last newline are no line yet
        match = SENSOR_LINE_RE.fullmatch(line)
        if match and len(line) <= SENSOR_LINE_MAX_BYTES and int(match[1]) <= SENSOR_MAX_MM_S:
            exp.speeds.append(int(match[1]) / 1000.0)
            since_valid = 0
            continue
        exp.garbage_lines += 1
        exp.garbage_bytes += len(line) + 1
        since_valid += len(line) + 1
        if since_valid > GARBAGE_LIMIT_BYTES:
            exp.faulted = True
            break
    return exp


def expected_frames(stream: bytes, dialect: str) -> Expected:
    """Reference framer for C1 answers: D1 + a well-formed field; BD/BE/BF or too much garbage end the link.

    The stream ends with a complete frame, so that every byte of it has been looked at.
    """
    assert FRAME_RE[dialect].fullmatch(stream[-5:]), "a stream for the reference ends with a frame"
    exp, pos = Expected(), 0
    for match in FRAME_RE[dialect].finditer(stream):
        gap = stream[pos:match.start()]
        if ERROR_RE.search(gap) or len(gap) > GARBAGE_LIMIT_BYTES:
            exp.faulted = True
            return exp
        exp.garbage_bytes += len(gap)
        exp.fields.append(match[1])
        digits = match[1][1:] if dialect == "woodway" else match[1]
        exp.speeds.append(tenths_mph_to_mps(int(digits)))
        pos = match.end()
    return exp


def is_subsequence(part: list, whole: list) -> bool:
    items = iter(whole)
    return all(any(x == y for y in items) for x in part)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


# ---- strategies -----------------------------------------------------------------------------

garbage = st.binary(max_size=24)
#: Noise without the error codes, so that streams often survive to their end.
quiet_garbage = st.lists(st.integers(0, 255).filter(lambda b: not 0xBD <= b <= 0xBF), max_size=24).map(bytes)

sensor_line = st.builds(
    lambda speed, plus, zeros, cr: (b"-" if speed < 0 else plus) + b"0" * zeros + str(abs(speed)).encode()
    + cr + b"\n",
    st.integers(-SENSOR_MAX_MM_S, SENSOR_MAX_MM_S), st.sampled_from([b"", b"+"]),
    st.integers(0, 14), st.sampled_from([b"", b"\r", b"\r\r"]))
sensor_near_miss = st.builds(
    lambda sign, digits, tail: sign + digits + tail + b"\n",
    st.sampled_from([b"", b"+", b"-", b"--", b"+-", b" ", b"\r"]),
    st.text("0123456789", max_size=20).map(str.encode),
    st.sampled_from([b"", b"\r", b"\r" * 12, b" ", b".5", b"x", b"\x00", b"\n"]))
sensor_stream = st.lists(st.one_of(sensor_line, sensor_line, sensor_near_miss, quiet_garbage, garbage),
                         max_size=14).map(lambda parts: b"".join(parts) + b"\n4321\n")


def frame_strategy(dialect: str) -> st.SearchStrategy[bytes]:
    if dialect == "woodway":
        speed_field = st.builds(lambda d, n: d + b"%03d" % n, st.sampled_from([b"0", b"3"]), st.integers(0, 999))
    else:
        speed_field = st.integers(0, 9999).map(lambda n: b"%04d" % n)
    return speed_field.map(lambda f: bytes([proto.answer_code(proto.ACTUAL_SPEED)]) + f)


def frame_stream(dialect: str) -> st.SearchStrategy[bytes]:
    other_answer = st.builds(lambda code, data: bytes([code]) + data,
                             st.integers(0xB0, 0xDF).filter(lambda c: not 0xBD <= c <= 0xBF),
                             st.binary(max_size=4))
    near_miss = st.builds(lambda data: b"\xd1" + data, st.binary(max_size=5))
    part = st.one_of(frame_strategy(dialect), frame_strategy(dialect), near_miss, other_answer, quiet_garbage,
                     quiet_garbage, garbage)
    return st.builds(lambda parts, last: b"".join(parts) + last, st.lists(part, max_size=12),
                     frame_strategy(dialect))


#: Chunk boundaries (offsets past a stream's end are ignored).
cuts = st.lists(st.integers(0, 400), max_size=24)
#: 15 bytes once its '\r' are stripped, 18 as it arrives: over the 16-byte limit whether or not it is chunked.
LONG_CR_LINE = b"+00000000000012\r\r\r"


# ---- the framers, fed directly ----------------------------------------------------------------


def feed_sensor(chunks: list[bytes]) -> tuple[SpeedSensorBelt, Recorder]:
    """Each chunk into the speed-sensor framer, as the worker does after a read."""
    rec = Recorder()
    sensor = SpeedSensorBelt("(fed directly)", on_reading=rec.on_reading, on_fault=rec.on_fault)
    for i, chunk in enumerate(chunks):
        sensor._feed(chunk, float(i))
    return sensor, rec


def feed_trackmaster(chunks: list[bytes], dialect: str) -> tuple[TrackMasterBelt, list[bytes]]:
    """Each chunk into the C1 answer scan, as one long exchange: every answer found is taken."""
    rec = Recorder()
    belt = TrackMasterBelt("(fed directly)", dialect=dialect, on_reading=rec.on_reading, on_fault=rec.on_fault)
    request = bytes([proto.ACTUAL_SPEED])
    answered: list[bytes] = []
    for chunk in chunks:
        belt._rx += chunk
        while not belt.faulted:
            data = belt._scan_for_answer(proto.answer_code(proto.ACTUAL_SPEED), proto.DATA_LEN, request)
            if data is None or belt.faulted:
                break
            answered.append(data)
        if belt.faulted:
            break
    assert rec.faults == ([belt.last_fault] if belt.faulted else []) and not rec.odd
    return belt, answered


@fuzz(200)
@example(line=LONG_CR_LINE)
@given(line=st.one_of(st.binary(max_size=20), sensor_line, sensor_near_miss).map(lambda b: b.split(b"\n")[0]))
def test_sensor_parse_line_agrees_with_the_reference_on_arbitrary_lines(line: bytes) -> None:
    TALLY.add(KIND)
    try:
        got = [abs(proto.parse_sensor_line(line)) / 1000.0]
    except ValueError:
        got = []
    assert got == expected_sensor(line + b"\n").speeds, line


@pytest.mark.parametrize("dialect", proto.DIALECTS)
@fuzz(100)
@given(data=st.binary(min_size=4, max_size=4))
def test_speed_field_decoding_agrees_with_the_reference(dialect: str, data: bytes) -> None:
    TALLY.add(KIND)
    match = FRAME_RE[dialect].fullmatch(b"\xd1" + data)
    if match is None:
        with pytest.raises(ValueError):
            proto.decode_speed_field(data, dialect)
    else:
        tenths, _ = proto.decode_speed_field(data, dialect)
        assert tenths == int(data[1:] if dialect == "woodway" else data)


@fuzz(150)
@example(stream=LONG_CR_LINE + b"\n4321\n", cuts=[len(LONG_CR_LINE)])
@given(stream=sensor_stream, cuts=cuts)
def test_sensor_framer_reports_exactly_the_framed_lines_at_any_chunking(stream: bytes, cuts: list[int]) -> None:
    TALLY.add(KIND)
    exp = expected_sensor(stream)
    event(f"faulted: {exp.faulted}, readings: {min(len(exp.speeds), 3)}")
    whole, whole_rec = feed_sensor([stream])
    chunked, chunked_rec = feed_sensor(split(stream, cuts))
    for sensor, rec in ((whole, whole_rec), (chunked, chunked_rec)):
        assert rec.speeds() == exp.speeds
        assert not rec.odd
        assert len(rec.faults) == int(exp.faulted) == sensor.stats.faults
        if exp.faulted:
            assert "bytes of garbage without a valid frame" in rec.faults[0].message
        else:
            assert sensor.stats.garbage_bytes == exp.garbage_bytes
    if not exp.faulted:
        assert whole.stats.garbage_lines == exp.garbage_lines
        # An over-long line read in pieces may be counted once per piece.
        assert chunked.stats.garbage_lines >= exp.garbage_lines


@pytest.mark.parametrize("dialect", proto.DIALECTS)
@fuzz(100)
@given(data=st.data(), cuts=cuts)
def test_trackmaster_framer_takes_exactly_the_framed_answers_at_any_chunking(dialect: str, data: st.DataObject,
                                                                            cuts: list[int]) -> None:
    stream = data.draw(frame_stream(dialect), label="stream")
    TALLY.add(KIND)
    exp = expected_frames(stream, dialect)
    event(f"faulted: {exp.faulted}, answers: {min(len(exp.fields), 3)}")
    for chunks in ([stream], split(stream, cuts)):
        belt, answered = feed_trackmaster(chunks, dialect)
        assert answered == exp.fields, chunks
        assert [tenths_mph_to_mps(proto.decode_speed_field(f, dialect)[0]) for f in answered] == exp.speeds
        assert belt.faulted == exp.faulted
        if exp.faulted:
            assert belt.last_fault is not None
            assert any(words in belt.last_fault.message for words in KNOWN_FAULTS)
        else:
            assert belt.stats.garbage_bytes == exp.garbage_bytes


# ---- the real drivers on a pseudo-terminal -----------------------------------------------------


@contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    """A raw pty: the test holds the master, the driver opens the slave by name."""
    master_fd, slave_fd = os.openpty()
    tty.setraw(slave_fd)
    os.set_blocking(master_fd, False)
    try:
        yield master_fd, os.ttyname(slave_fd)
    finally:
        os.close(master_fd)
        os.close(slave_fd)


def write_all(master_fd: int, chunks: list[bytes]) -> None:
    """Each chunk in its own write; the pty buffer (4 KiB) holds far more than one stream."""
    for chunk in chunks:
        assert os.write(master_fd, chunk) == len(chunk)


def assert_worker_alive_unless_faulted(belt: SpeedSensorBelt | TrackMasterBelt) -> None:
    """The worker thread ends only through a latched fault (its flag is set before the thread returns)."""
    assert belt._thread is not None
    assert belt._thread.is_alive() or belt.faulted


def assert_no_exception_escaped(belt: SpeedSensorBelt | TrackMasterBelt, rec: Recorder) -> None:
    """After close(): callbacks saw what they expect, one fault at most, none from the worker's catch-all."""
    assert not rec.odd
    assert all("unexpected error" not in f.message for f in rec.faults), rec.faults
    assert len(rec.faults) == belt.stats.faults <= 1


@fuzz(50)
@given(stream=sensor_stream, cuts=cuts)
def test_speed_sensor_driver_on_a_pty_reports_exactly_the_framed_lines(stream: bytes, cuts: list[int]) -> None:
    TALLY.add(KIND)
    exp = expected_sensor(stream)
    event(f"faulted: {exp.faulted}, readings: {min(len(exp.speeds), 3)}")
    rec = Recorder()
    with pty_pair() as (master_fd, port):
        # A long stale timeout: a stall of the shared test machine must not end the stream early, and only
        # the garbage limit can fault the link within the wait below.
        sensor = SpeedSensorBelt(port, on_reading=rec.on_reading, on_fault=rec.on_fault, stale_timeout_s=5.0)
        try:
            sensor.start()
            write_all(master_fd, split(stream, cuts))
            if exp.faulted:
                expect(lambda: rec.faults, 4.0, "the garbage fault")
                assert "bytes of garbage" in rec.faults[0].message, rec.faults
            else:
                expect(lambda: len(rec.readings) >= len(exp.speeds), 5.0, f"{len(exp.speeds)} readings")
            assert_worker_alive_unless_faulted(sensor)
        finally:
            sensor.close()
    assert_no_exception_escaped(sensor, rec)
    assert rec.speeds() == exp.speeds
    assert sensor.faulted == exp.faulted
    if not exp.faulted:
        assert sensor.stats.garbage_bytes == exp.garbage_bytes


@dataclass
class Reply:
    """What the far end sends after one C1: noise, the answer, and bytes after it (all in chunks)."""

    before: bytes
    frame: bytes
    after: bytes
    cuts: list[int]

    def chunks(self) -> list[bytes]:
        # What follows the answer goes out in the same write as its last byte: it is there before the next poll.
        pieces = split(self.before + self.frame, self.cuts)
        pieces[-1] += self.after
        return pieces


def reply_strategy(dialect: str) -> st.SearchStrategy[Reply]:
    frame = frame_strategy(dialect)
    error = st.integers(0xBD, 0xBF).map(lambda code: bytes([code]))
    before = st.one_of(st.just(b""), quiet_garbage, garbage,
                       st.builds(lambda a, f, b: a + f + b, quiet_garbage, frame, quiet_garbage))
    # After the answer: a duplicate or stale frame, noise, or an error code sent unasked.
    after = st.one_of(st.just(b""), frame, quiet_garbage, st.builds(lambda a, e: a + e, quiet_garbage, error))
    return st.builds(Reply, before, frame, after, st.lists(st.integers(0, 30), max_size=4))


class FarEnd:
    """The treadmill's side of the pty: answers the n-th C1 with the n-th reply, later ones with a plain frame."""

    def __init__(self, master_fd: int, replies: list[Reply], rec: Recorder, last_frame: bytes) -> None:
        self.master_fd, self.replies, self.rec, self.last_frame = master_fd, replies, rec, last_frame
        self.polls = 0
        self.errors: list[OSError] = []
        #: Readings delivered before the poll that followed the last reply: the replies' readings.
        self.readings_after_replies: int | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fuzz-far-end", daemon=True)

    def __enter__(self) -> FarEnd:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def _serve(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self.master_fd], [], [], 0.01)
            if not readable:
                continue
            try:
                received = os.read(self.master_fd, 1024)
            except BlockingIOError:
                continue
            for _ in range(received.count(proto.ACTUAL_SPEED)):
                self.polls += 1
                if self.polls == len(self.replies) + 1:
                    # The driver delivers a reading before it polls again: this count is exact.
                    self.readings_after_replies = len(self.rec.readings)
                    self.done.set()
                reply = self.replies[self.polls - 1].chunks() if self.polls <= len(self.replies) else [self.last_frame]
                try:
                    for chunk in reply:
                        os.write(self.master_fd, chunk)
                except OSError as exc:  # the test reports it; a thread must not die with it
                    self.errors.append(exc)


#: A frame that follows the answer (a duplicate, or a late one) is no answer to the next poll.
FRAME_AFTER_THE_ANSWER = [Reply(b"", b"\xd10000", b"\xd10001", []), Reply(b"", b"\xd10002", b"", [])]


@fuzz(25)
@example(replies=FRAME_AFTER_THE_ANSWER)
@given(replies=st.lists(reply_strategy("trackmaster"), min_size=1, max_size=6))
def test_trackmaster_driver_on_a_pty_reports_only_framed_answers(replies: list[Reply]) -> None:
    check_driver_on_a_pty("trackmaster", replies)


@fuzz(25)
@example(replies=FRAME_AFTER_THE_ANSWER)
@given(replies=st.lists(reply_strategy("woodway"), min_size=1, max_size=6))
def test_woodway_driver_on_a_pty_reports_only_framed_answers(replies: list[Reply]) -> None:
    check_driver_on_a_pty("woodway", replies)


def check_driver_on_a_pty(dialect: str, replies: list[Reply]) -> None:
    """The far end answers the driver's polls with ``replies``; what the driver reports is checked."""
    last_frame = b"\xd10123"  # 12.3 mph in both dialects
    TALLY.add(KIND)
    stream = b"".join(b"".join(r.chunks()) for r in replies)
    occurring = expected_frames_everywhere(stream, dialect)
    rec = Recorder()
    with pty_pair() as (master_fd, port), FarEnd(master_fd, replies, rec, last_frame) as far:
        belt = TrackMasterBelt(port, dialect=dialect, on_reading=rec.on_reading, on_fault=rec.on_fault,
                               poll_hz=200.0, ack_timeout_s=0.4)
        try:
            belt.start()
            expect(lambda: far.done.is_set() or rec.faults, 10.0, "all replies polled, or a fault")
            assert_worker_alive_unless_faulted(belt)
        finally:
            belt.close()
    assert_no_exception_escaped(belt, rec)
    assert not far.errors
    reported = rec.speeds()[:far.readings_after_replies] if far.done.is_set() else rec.speeds()
    # Every reading comes from a well-formed frame in the bytes sent, in their order.
    assert is_subsequence(reported, occurring), (reported, occurring)
    if rec.faults:
        assert any(words in rec.faults[0].message for words in KNOWN_FAULTS), rec.faults[0]
    event(f"faulted: {bool(rec.faults)}, clean: {clean(replies, dialect)}")
    if clean(replies, dialect):
        # Each poll's answer is the frame sent for it: nothing garbage or a stale frame could pass for it.
        assert not rec.faults
        assert reported == [expected_frames(r.frame, dialect).speeds[0] for r in replies]
        assert belt.stats.garbage_bytes == sum(len(r.before) + len(r.after) for r in replies)


def expected_frames_everywhere(stream: bytes, dialect: str) -> list[float]:
    """The speed of every well-formed frame in the stream, in order (frames cannot overlap)."""
    return [tenths_mph_to_mps(int(m[1][1:] if dialect == "woodway" else m[1]))
            for m in FRAME_RE[dialect].finditer(stream)]


def clean(replies: list[Reply], dialect: str) -> bool:
    """No error code, no frame in the noise before an answer, and the garbage limit kept between answers."""
    since_answer = 0
    for reply in replies:
        if ERROR_RE.search(reply.before + reply.after):
            return False
        if len(FRAME_RE[dialect].findall(reply.before + reply.frame)) != 1:
            return False
        if since_answer + len(reply.before) > GARBAGE_LIMIT_BYTES:
            return False
        since_answer = len(reply.after)
    return since_answer <= GARBAGE_LIMIT_BYTES
