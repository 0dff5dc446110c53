"""Therapy sessions: the timer, the end-of-session ramp-down, the summary and the timeline.

A session belongs to one patient and is counted in walking time: seconds
while the controller drives the belt (RUNNING). Pauses, trips and resets stop
the clock. ``end_warning_s`` before the planned duration the buzzer chimes; at
the planned duration the belt ramps down to a controlled stop (FINISH), never
an emergency stop.

Threads: :class:`SessionTracker` (session_tracker.py) is pure bookkeeping on the
status stream. :class:`SessionRunner` owns one thread fed by a queue: the decision thread
only puts statuses and events on it (never blocks), the IPC threads put
requests and wait for the answer. Every write goes through the history
store's writer thread, so a slow or broken disk never reaches the safety loop.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import sqlite3
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable

from controller.storage import outbox, records
from controller.storage.records import SessionStatus
from controller.therapy import patients
from controller.config import KMH_PER_MPS, LIMIT_TIGHTER_SIGN, TREADMILL_ID, Config, Limits
from controller.fields import Choice, FieldError, Num, Text, check_value
from controller.therapy.prescription import (check_confirm, confirm_message, default_start_speed, describe_loosened,
                                             loosened)
from controller.therapy.progression import pain_trend, sessions_today, suggest_duration
from controller.therapy.tracker import SessionTracker
from controller.safety.inputs import MOVING_MPS
from controller.safety.types import Command, CommandKind, Event, EventKind
from controller.storage.database import StorageError
from controller.storage.store import HistoryStore

log = logging.getLogger(__name__)

#: Walking-time figures are written to the database about this often (crash survival).
PROGRESS_EVERY_S = 1.0
PLANNED_MIN = Num(0.25, 60, "min")
PAIN = Num(0, 10, integer=True)
RETENTION_CHECK_S = 24 * 3600.0
#: After the core refused a waiting prescription (it judged the belt not standing), try again no sooner.
CLINIC_RETRY_S = 1.0
#: A read-only speed link cannot ramp down: a long chime asks the therapist to stop at the console.
CONSOLE_STOP_CHIME_S = (1.0, 0.5, 1.0, 0.5, 1.0)


class SessionError(Exception):
    """A refused request; ``code`` is invalid, conflict, unauthorized, not_found, storage or confirm.

    ``details`` are extra keys of the refusal (``confirm``: ``loosened``, each value the request would loosen).
    """

    def __init__(self, code: str, message: str, errors: list[FieldError] | tuple[FieldError, ...] = (),
                 details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code, self.message, self.errors = code, message, list(errors)
        self.details = dict(details or {})


def _invalid(errors: list[FieldError]) -> SessionError:
    return SessionError("invalid", "; ".join(str(e) for e in errors), errors)


class SessionRunner:
    """Runs sessions beside the control loop; every request is answered from one thread."""

    def __init__(self, cfg: Config, loop: Any, history: HistoryStore, *, wall_clock: Callable[[], float] = time.time,
                 mono_clock: Callable[[], float] = time.monotonic):
        self.cfg, self.loop, self.history = cfg, loop, history
        self.wall_clock, self.mono_clock = wall_clock, mono_clock
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.tracker: SessionTracker | None = None
        #: Published for the status (read by other threads; replaced, never mutated).
        self.snapshot: dict[str, Any] | None = None
        self.selected_patient: str | None = None
        self._last_progress_t = 0.0
        self._next_prune_t = 0.0
        self._stop = False
        #: The chosen patient's looser prescription from the clinic record, waiting for the belt to stand.
        self.clinic_pending: dict[str, Any] | None = None
        self._clinic_retry_t = 0.0

    # ---- lifecycle ------------------------------------------------------------------

    def start(self) -> "SessionRunner":
        """Close sessions a crash left open, then start the thread."""
        self.history.record(records.recover_interrupted)
        self._thread = threading.Thread(target=self._run, name="sessions", daemon=True)
        self._thread.start()
        return self

    def close(self, timeout_s: float = 2.0) -> None:
        """A session still open ends as interrupted, with everything recorded so far. Idempotent."""
        if self._thread is None:
            return
        done: Future = Future()
        self._q.put(("call", self._shutdown, {}, done))
        try:
            done.result(timeout_s)
        except Exception:  # noqa: BLE001 - shutdown goes on
            log.exception("closing the session runner")
        self._thread.join(timeout_s)
        self._thread = None

    # ---- from the decision thread (never blocks) ------------------------------------

    def on_status(self, status: dict[str, Any]) -> None:
        """Every status the loop publishes."""
        self._q.put(("status", status))

    def on_event(self, event: Event) -> None:
        """Every event the core emits."""
        if event.kind in (EventKind.WARN, EventKind.TRIP):
            self._q.put(("event", event))

    # ---- from the IPC threads -------------------------------------------------------

    def request(self, name: str, params: dict[str, Any], timeout_s: float = 5.0) -> Any:
        """Run a session request on the runner's thread and return its result (or raise SessionError)."""
        handler = getattr(self, f"_req_{name}", None)
        if handler is None:
            raise SessionError("invalid", f"unknown session request {name!r}")
        done: Future = Future()
        self._q.put(("call", handler, params, done))
        try:
            return done.result(timeout_s)
        except TimeoutError as exc:
            # Not yet begun: it never will, so a late start cannot move the belt behind the caller's back.
            done.cancel()
            raise SessionError("conflict", "the session runner did not answer in time; "
                               + ("nothing was done" if done.cancelled() else "it may still complete")) from exc

    # ---- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop:
            item = self._q.get()
            try:
                if item[0] == "status":
                    self._on_status(item[1])
                elif item[0] == "event":
                    if self.tracker is not None:
                        self.tracker.on_event(item[1])
                else:
                    _, handler, params, done = item
                    if not done.set_running_or_notify_cancel():
                        continue  # its caller gave up waiting
                    try:
                        done.set_result(handler(params))
                    except SessionError as exc:
                        done.set_exception(exc)
                    except StorageError as exc:
                        done.set_exception(SessionError("storage", f"storage unavailable: {exc}"))
                    except Exception as exc:  # noqa: BLE001 - a bug answers the caller, then is logged below
                        done.set_exception(SessionError("internal", f"internal error: {type(exc).__name__}"))
                        raise
            except Exception:  # noqa: BLE001 - bookkeeping must not die; the safety loop is elsewhere
                log.exception("session bookkeeping failed")

    def _on_status(self, status: dict[str, Any]) -> None:
        now = float(status["t_mono"])
        if now >= self._next_prune_t:
            self._next_prune_t = now + RETENTION_CHECK_S
            cutoff = self.wall_clock() - self.cfg.storage.sample_retention_days * 86400.0
            self.history.record(lambda conn: records.prune_samples(conn, cutoff))
        if self.clinic_pending is not None and _belt_stands(status) and self.mono_clock() >= self._clinic_retry_t:
            self._apply_clinic_prescription(self.clinic_pending)
        tr = self.tracker
        if tr is None:
            return
        for action in tr.feed(status):
            if action == "chime":
                self.loop.chime()
            elif action == "finish":
                self._finish("session timer")
            elif action == "end":
                self._end_session(tr.ended_by)
        if self.tracker is not None and now - self._last_progress_t >= PROGRESS_EVERY_S:
            self._write_progress(now)
        self.snapshot = self.tracker.snapshot() if self.tracker is not None else None

    def _write_progress(self, now: float) -> None:
        tr = self.tracker
        assert tr is not None
        self._last_progress_t = now
        first, rows = tr.take_samples()
        sid, figures = tr.session_id, tr.figures()

        def op(conn):
            if rows:
                records.insert_samples(conn, sid, first, rows)
            records.update_session(conn, sid, **figures)
        self.history.record(op)

    def _finish(self, actor: str) -> None:
        tr = self.tracker
        assert tr is not None
        tr.finishing = True
        reply = self.loop.command(Command(CommandKind.FINISH, actor))
        if not reply.ok:
            log.warning("session %s: ramp-down refused: %s", tr.session_id, reply.message)
            tr.paused_reason = f"stop the belt: {reply.message}"
            self.loop.chime(CONSOLE_STOP_CHIME_S)

    def _end_session(self, ended_by: str | None, status: str | None = None, reason: str | None = None) -> dict:
        tr = self.tracker
        assert tr is not None
        if status is None:
            status = SessionStatus.COMPLETED if tr.completed else SessionStatus.ENDED
        if reason is None:
            reason = "target reached" if status == SessionStatus.COMPLETED else f"ended by {ended_by}"
        first, rows = tr.take_samples()
        sid, figures, ended = tr.session_id, tr.figures(), self.wall_clock()

        def op(conn):
            if rows:
                records.insert_samples(conn, sid, first, rows)
            records.update_session(conn, sid, status=status, ended_wall=ended, end_reason=reason, **figures)
        self.history.record(op)
        log.info("session %s of patient %s %s: %s", sid, tr.patient_id, status, reason)
        self.tracker = None
        self.snapshot = None
        summary = {"session_id": sid, "patient_id": tr.patient_id, "status": status, "end_reason": reason,
                   **figures}
        return summary

    def _shutdown(self, params: dict) -> None:
        if self.tracker is not None:
            self._end_session(None, SessionStatus.INTERRUPTED, "controller stopped")
        self._stop = True

    # ---- requests -------------------------------------------------------------------

    @staticmethod
    def _actor(params: dict[str, Any]) -> tuple[str, bool]:
        actor = params.get("actor")
        if not isinstance(actor, str) or not 0 < len(actor.strip()) <= 80:
            raise _invalid([FieldError("session", "actor", actor, "must be the acting person's name, "
                                       "1 to 80 characters")])
        authorized = params.get("authorized", False)
        if not isinstance(authorized, bool):
            raise _invalid([FieldError("session", "authorized", authorized, "must be true or false")])
        if not authorized:
            raise SessionError("unauthorized", "sessions need a logged-in therapist")
        return actor, authorized

    def _patient(self, patient_id: Any) -> dict[str, Any]:
        errors: list[FieldError] = []
        pid = patients.check_patient_id(patient_id, errors)
        if errors:
            raise _invalid(errors)
        found = self.history.read(lambda conn: records.get_patient(conn, pid))
        if found is None:
            raise SessionError("not_found", f"no patient {pid!r}")
        return found

    @staticmethod
    def _confirm_flag(params: dict[str, Any]) -> bool:
        errors: list[FieldError] = []
        confirm = check_confirm(params, errors)
        if errors:
            raise _invalid(errors)
        return confirm

    def _present(self) -> tuple[Limits, str, str | None]:
        """The limits, mode and state in force now: the core's own (a command's effect is there before the
        next status is published), else the status's."""
        core = getattr(self.loop, "core", None)
        if core is not None:
            return core.limits, core.mode.value, core.state.value
        status = self.loop.status
        present, mode = status.get("limits"), status.get("mode")
        if not isinstance(present, dict) or mode is None:
            raise SessionError("conflict", "the controller has not published its limits yet: try again")
        return Limits(**present), mode, status.get("state")

    def _confirmed(self, patient: dict[str, Any], confirm: bool) -> tuple[bool, bool]:
        """(whether the prescription changes anything, whether the therapist confirmed looser values).

        A prescription that loosens a limit or changes the mode needs ``confirm``: without it the
        request is refused with code "confirm", naming each value; with it the event says so.
        """
        present, mode, state = self._present()
        limits = patients.prescription_limits(patient, self.cfg)
        items = loosened(limits, present, patient["mode"], mode)
        if items and state not in ("STOPPED", "READY"):
            # Refused here, not asked to confirm first: the core would refuse it after the confirmation.
            raise SessionError("conflict", f"patient {patient['patient_id']}'s prescription loosens the present "
                               f"limits ({describe_loosened(items)}): it applies only while the belt stands "
                               "(STOPPED or READY, speed 0)", details={"loosened": items})
        if items and not confirm:
            raise SessionError("confirm", confirm_message(patient["patient_id"], items),
                               details={"loosened": items})
        same = mode == patient["mode"] and present == limits and self.selected_patient == patient["patient_id"]
        return not same, bool(items)

    def _apply(self, patient: dict[str, Any], actor: str, confirmed: bool) -> str:
        limits = patients.prescription_limits(patient, self.cfg)
        value = {"mode": patient["mode"], "patient_id": patient["patient_id"], "confirmed": confirmed,
                 "limits": {"reverse_cap_kmh": limits.reverse_cap_kmh, "forward_cap_kmh": limits.forward_cap_kmh,
                            "base_stop_mm": limits.base_stop_mm, "warn_margin_mm": limits.warn_margin_mm}}
        reply = self.loop.command(Command(CommandKind.APPLY_PRESCRIPTION, actor, True, value))
        if not reply.ok:
            raise SessionError(reply.code, reply.message, reply.errors)
        self.selected_patient = patient["patient_id"]
        return reply.message

    def _req_select(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        confirm = self._confirm_flag(params)
        patient = self._patient(params.get("patient_id"))
        if self.tracker is not None and self.tracker.patient_id != patient["patient_id"]:
            raise SessionError("conflict", f"a session of patient {self.tracker.patient_id} is under way: "
                               "end it before choosing another patient")
        _, confirmed = self._confirmed(patient, confirm)
        return {"message": self._apply(patient, actor, confirmed), "patient_id": patient["patient_id"]}

    def _req_start(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        unknown = sorted(set(params) - {"patient_id", "planned_min", "pain_before", "speed_kmh", "confirm", "actor",
                                        "authorized"})
        errors: list[FieldError] = [FieldError("session", k, params[k], "not a session field; fields: "
                                               "patient_id, planned_min, pain_before, speed_kmh, confirm")
                                    for k in unknown]
        planned = check_value("session", "planned_min", params.get("planned_min"), PLANNED_MIN, errors)
        pain_before = check_value("session", "pain_before", params.get("pain_before"), PAIN, errors)
        speed = params.get("speed_kmh")
        if speed is not None:
            cap = self.cfg.ceilings
            check_value("session", "speed_kmh", speed,
                        Num(self.cfg.safety.min_speed_kmh, max(cap.max_reverse_cap_kmh, cap.max_forward_cap_kmh),
                            "km/h"), errors)
        if errors:
            raise _invalid(errors)
        confirm = self._confirm_flag(params)
        patient = self._patient(params.get("patient_id"))
        if self.tracker is not None:
            raise SessionError("conflict", f"session {self.tracker.session_id} is under way: end it first")
        state = self.loop.status.get("state")
        if state != "READY":
            raise SessionError("conflict", f"a session starts from READY; the controller is {state}"
                               + (": reset it first" if state == "STOPPED" else ""))
        changes, confirmed = self._confirmed(patient, confirm)
        if changes:  # a prescription already in force is not applied (and logged) again
            self._apply(patient, actor, confirmed)
        if speed is not None:
            start_kmh = min(float(speed), float(patient["speed_cap_kmh"]))
        else:
            start_kmh, _ = self._start_speed(patient)
        started = self.wall_clock()
        sid = self.history.call(lambda conn: records.insert_session(
            conn, patient["patient_id"], started, float(planned), patient["mode"], int(pain_before), start_kmh))
        reply = self.loop.command(Command(CommandKind.START, actor, True, start_kmh))
        if not reply.ok:
            self.history.record(lambda conn: records.delete_session(conn, sid))
            raise SessionError(reply.code, reply.message, reply.errors)
        self.tracker = SessionTracker(sid, patient["patient_id"], float(planned) * 60.0, self.mono_clock(),
                                      end_warning_s=self.cfg.sessions.end_warning_s,
                                      sample_hz=self.cfg.sessions.sample_hz, started_wall=started)
        self._last_progress_t = self.mono_clock()
        self.snapshot = self.tracker.snapshot()
        log.info("session %s of patient %s started by %s at %g km/h: %g min planned", sid, patient["patient_id"],
                 actor, start_kmh, planned)
        return {"session": self._summary(sid)}

    def _current(self) -> SessionTracker:
        if self.tracker is None:
            raise SessionError("conflict", "no session is under way")
        return self.tracker

    def _req_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        tr = self._current()
        if tr.finishing:
            raise SessionError("conflict", "the session is ending: the belt is ramping down")
        reply = self.loop.command(Command(CommandKind.STOP, actor))
        if not reply.ok:
            raise SessionError(reply.code, reply.message)
        tr.paused_reason, tr.pause_by = f"paused by {actor}", actor
        self.snapshot = tr.snapshot()
        return {"message": f"paused: {reply.message}", "session": self.snapshot}

    def _req_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        tr = self._current()
        if tr.finishing:
            raise SessionError("conflict", "the session is ending: the belt is ramping down")
        speed_kmh = round(tr.last_target_mps * KMH_PER_MPS, 2) or None
        reply = self.loop.command(Command(CommandKind.START, actor, True, speed_kmh))
        if not reply.ok:
            raise SessionError(reply.code, reply.message)
        return {"message": f"resumed: {reply.message}", "session": tr.snapshot()}

    def _req_end(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        tr = self._current()
        tr.ended_by = actor
        if tr.state in ("RUNNING", "STOPPING") and not tr.finishing:
            self._finish(actor)
            return {"message": "ramping down to a stop; the session ends when the belt stands",
                    "session": tr.snapshot()}
        if tr.finishing:
            return {"message": "the session is already ending", "session": tr.snapshot()}
        summary = self._end_session(actor)
        return {"message": f"session {summary['status']}", "session": summary}

    def _req_pain(self, params: dict[str, Any]) -> dict[str, Any]:
        self._actor(params)
        errors: list[FieldError] = []
        sid = check_value("session", "session_id", params.get("session_id"), Num(1, 1e9, integer=True), errors)
        pain_after = check_value("session", "pain_after", params.get("pain_after"), PAIN, errors)
        if errors:
            raise _invalid(errors)
        if self.tracker is not None and self.tracker.session_id == sid:
            raise SessionError("conflict", "the pain score after a session is recorded once the session has ended")

        def op(conn):
            found = records.get_session(conn, sid)
            if found is None:
                raise LookupError(sid)
            if found["pain_after"] is not None:
                raise ValueError(found["pain_after"])
            records.update_session(conn, sid, pain_after=int(pain_after))
        try:
            self.history.call(op)
        except LookupError:
            raise SessionError("not_found", f"no session {sid}") from None
        except ValueError as exc:
            raise SessionError("conflict", f"session {sid}: the pain score after was already recorded "
                               f"as {exc.args[0]}") from None
        return {"session": self._summary(sid)}

    def _req_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        self._actor(params)
        patient = self._patient(params.get("patient_id"))
        pid = patient["patient_id"]
        if self.cfg.clinic.enabled:
            raise SessionError("conflict", f"patient {pid} belongs to the clinic record, with their sessions on "
                               "every treadmill: a profile is removed there, by the clinic's administrator, "
                               "not from one treadmill")
        if self.tracker is not None and self.tracker.patient_id == pid:
            raise SessionError("conflict", f"patient {pid} is walking a session now: end it first")
        self.history.call(lambda conn: records.delete_patient(conn, pid))
        if self.selected_patient == pid:
            self.selected_patient = None
        return {"deleted": pid}

    def _req_save(self, params: dict[str, Any]) -> dict[str, Any]:
        actor, _ = self._actor(params)
        create = params.get("create")
        if not isinstance(create, bool):
            raise _invalid([FieldError("patient", "create", create, "must be true or false")])
        raw = params.get("patient")
        base_version = None
        if isinstance(raw, dict) and "version" in raw:
            raw = dict(raw)
            base_version = raw.pop("version")
        data, errors = patients.check_patient(raw, self.cfg)
        if base_version is not None and (isinstance(base_version, bool) or not isinstance(base_version, int)
                                         or not 0 <= base_version <= 2**53):
            errors.append(FieldError("patient", "version", base_version, "must be the profile's version as it "
                                     "was read: a whole number from 0"))
        if errors:
            raise _invalid(errors)
        assert data is not None
        wall = self.wall_clock()

        def update(conn):
            if base_version is not None:
                found = records.get_patient(conn, data["patient_id"])
                if found is not None and found["version"] != base_version:
                    raise _StaleEdit(found["version"])
            return records.update_patient(conn, data, wall)
        try:
            if create:
                saved = self.history.call(lambda conn: records.insert_patient(conn, data, wall))
            else:
                saved = self.history.call(update)
        except _StaleEdit as exc:
            raise SessionError("conflict", f"patient {data['patient_id']} was changed in the clinic record "
                               f"(now version {exc.args[0]}) after this form read version {base_version}: "
                               "nothing was saved; open the profile again to see the clinic's values, then "
                               "make your change") from None
        except LookupError:
            raise SessionError("not_found", f"no patient {data['patient_id']!r}") from None
        except sqlite3.IntegrityError:
            raise SessionError("conflict", f"patient id {data['patient_id']!r} is already taken") from None
        message = "saved"
        if self.selected_patient == data["patient_id"] and not create:
            try:
                # Looser values of the chosen patient wait for the therapist to choose them again and confirm.
                _, confirmed = self._confirmed(saved, False)
                message += "; " + self._apply(saved, actor, confirmed)
            except SessionError as exc:
                message += f"; not applied yet: {exc.message}"
        log.info("patient %s %s by %s", data["patient_id"], "created" if create else "updated", actor)
        return {"patient": saved, "message": message}

    # ---- the clinic record (config [clinic]): what the replicator brings back -------------

    def _req_merge(self, params: dict[str, Any]) -> dict[str, Any]:
        """Keep the clinic record's patients and other treadmills' sessions here; note refused edits.

        params: ``patients`` (the clinic's rows, each with ``version`` and ``updated_by``), ``sessions``
        (other treadmills' session summaries), ``refused`` ({"patient_id", "message"}: an edit made here
        that the clinic record refused; its row comes in ``patients`` and replaces the local one), and
        ``cursor`` (the replicator's place in the record, kept in clinic_meta). A patient whose local
        copy has an edit not yet shipped is left as it is: that edit is shipped first, and the clinic
        record accepts or refuses it. A row this treadmill cannot keep is named in ``not_kept``."""
        actor, _ = self._actor(params)
        if not self.cfg.clinic.enabled:
            raise SessionError("conflict", "this treadmill belongs to no clinic record ([clinic] treadmill_id)")
        rows, sessions, refused, accepted, cursor, not_kept, errors = _check_merge(params, self.cfg)
        if errors:
            raise _invalid(errors)
        kept = []
        for row in rows:
            data, problems = patients.check_patient({k: row[k] for k in patients.FIELDS}, self.cfg)
            if problems:
                not_kept.append({"patient_id": row["patient_id"], "message": "; ".join(map(str, problems))})
            else:
                kept.append({**row, **data})
        forced = {r["patient_id"] for r in refused}

        def op(conn):
            changed, skipped = [], []
            for item in accepted:
                # A change of this treadmill's that the clinic took: its copy is now on that version, even
                # when a newer edit waits to be shipped (it is then made on that version, not refused).
                outbox.quietly(conn, lambda c: c.execute("UPDATE patients SET version = ? WHERE patient_id = ? "
                                                         "AND version < ?", (item["version"], item["patient_id"],
                                                                             item["version"])))
            for row in kept:
                pending = conn.execute("SELECT 1 FROM outbox WHERE tbl = 'patients' AND ref = ?",
                                       (row["patient_id"],)).fetchone()
                if pending is not None and row["patient_id"] not in forced:
                    skipped.append(row["patient_id"])
                    continue
                if outbox.quietly(conn, lambda c: records.store_clinic_patient(c, row)) != "same":
                    changed.append(row["patient_id"])
            for session in sessions:
                records.store_clinic_session(conn, session)
            if cursor:
                outbox.set_meta(conn, {"cursor": cursor})
            return changed, skipped
        changed, skipped = self.history.call(op)
        now = self.mono_clock()
        for item in refused:
            self.history.put(Event(now, EventKind.REFUSED, "clinic_conflict",
                                   f"patient {item['patient_id']}: the change made on this treadmill was refused by "
                                   f"the clinic record: {item['message']}; this treadmill now shows the clinic's "
                                   "profile", actor))
        for item in not_kept:
            what = (f"patient {item['patient_id']}" if "patient_id" in item else
                    f"a session of treadmill {item['treadmill_id']}")
            self.history.put(Event(now, EventKind.REFUSED, "clinic_patient" if "patient_id" in item else
                                   "clinic_session", f"{what} from the clinic record is not kept on this "
                                   f"treadmill: {item['message']}", actor))
        if self.selected_patient in changed:
            fresh = next(r for r in kept if r["patient_id"] == self.selected_patient)
            self._apply_clinic_prescription(fresh)
        return {"changed": changed, "skipped": skipped, "sessions": len(sessions), "not_kept": not_kept,
                "pending": self.clinic_pending["patient_id"] if self.clinic_pending else None}

    def _req_cursor(self, params: dict[str, Any]) -> dict[str, Any]:
        self._actor(params)
        return self.history.read(outbox.get_meta).get("cursor") or {}

    def _apply_clinic_prescription(self, patient: dict[str, Any]) -> None:
        """The chosen patient's prescription as the clinic record now has it, by the core's rule: tighter or
        equal at once; looser (or another mode) only while the belt stands. Until then it waits in
        ``clinic_pending``, and whatever of it is tighter (a lower cap beside a shorter stop distance)
        applies at once all the same."""
        if patient["patient_id"] != self.selected_patient:
            self.clinic_pending = None
            return
        present, mode, _ = self._present()
        limits = patients.prescription_limits(patient, self.cfg)
        if mode == patient["mode"] and present == limits:
            self.clinic_pending = None
            return
        items = loosened(limits, present, patient["mode"], mode)
        by = f"clinic record v{patient['version']} ({patient.get('updated_by') or 'another treadmill'})"[:80]
        if items and not _belt_stands(self.loop.status):
            reply = None  # not even asked: the core would refuse it (and its refusal is the same rule)
        else:
            reply = self.loop.command(Command(CommandKind.APPLY_PRESCRIPTION, by, True,
                                              _prescription(patient["patient_id"], patient["mode"], limits)))
        if reply is not None and reply.ok:
            self.clinic_pending = None
            log.info("patient %s: prescription from the %s applied: %s", patient["patient_id"], by, reply.message)
            return
        if not items or (reply is not None and reply.code != "conflict"):
            self.clinic_pending = None
            log.warning("patient %s: prescription from the %s not applied: %s", patient["patient_id"], by,
                        reply.message if reply is not None else "refused")
            return
        if reply is not None:
            self._clinic_retry_t = self.mono_clock() + CLINIC_RETRY_S
        tighter = _tighter_of(present, limits)
        if tighter != present:
            now = self.loop.command(Command(CommandKind.APPLY_PRESCRIPTION, by, True,
                                            _prescription(patient["patient_id"], mode, tighter)))
            if not now.ok:
                log.warning("patient %s: the tighter part of the %s not applied: %s", patient["patient_id"], by,
                            now.message)
        if self.clinic_pending is None or self.clinic_pending["version"] != patient["version"]:
            log.info("patient %s: the %s loosens the limits (%s): it applies once the belt stands",
                     patient["patient_id"], by, describe_loosened(items))
        self.clinic_pending = patient

    # ---- reads (any thread: read-only connections) -------------------------------------

    def _summary(self, sid: int) -> dict[str, Any]:
        found = self.history.read(lambda conn: records.get_session(conn, sid))
        if found is None:
            raise SessionError("not_found", f"no session {sid}")
        return found

    def _start_speed(self, patient: dict[str, Any],
                     history: list[dict[str, Any]] | None = None) -> tuple[float, str]:
        """The speed the patient's next session starts at when none is given, and why (prescription.py)."""
        if history is None:
            history = self._history(patient["patient_id"])
        return default_start_speed(history, patient["mode"], float(patient["speed_cap_kmh"]),
                                   self.cfg.safety.min_speed_kmh)

    def _history(self, patient_id: str) -> list[dict[str, Any]]:
        """The patient's sessions, newest first: on a clinic's treadmill, on every treadmill of the clinic
        (as far as the clinic record has brought them here), each with its ``treadmill_id``."""
        clinic = self.cfg.clinic
        if not clinic.enabled:
            return self.history.read(lambda conn: records.list_sessions(conn, patient_id))
        return self.history.read(lambda conn: records.clinic_history(conn, patient_id, clinic.treadmill_id))

    def patient_page(self, patient_id: Any) -> dict[str, Any]:
        """A patient's profile, sessions, suggestion, pain trend, today's count and next start speed."""
        patient = self._patient(patient_id)
        history = self._history(patient["patient_id"])
        s = self.cfg.sessions
        now = self.wall_clock()
        start_kmh, start_reason = self._start_speed(patient, history)
        return {"patient": patient, "sessions": history,
                "start_speed_kmh": start_kmh, "start_speed_reason": start_reason,
                "suggestion": suggest_duration(history, patient["target_min"], s.start_duration_min,
                                               s.weekly_step_min, now),
                "pain": pain_trend(history),
                "today": {"done": sessions_today(history, now), "per_day": patient["sessions_per_day"]}}

    def session_page(self, session_id: Any) -> dict[str, Any]:
        """A session's summary and the warnings and trips in its span, oldest first."""
        errors: list[FieldError] = []
        sid = check_value("session", "session_id", session_id, Num(1, 1e9, integer=True), errors)
        if errors:
            raise _invalid(errors)
        summary = self._summary(sid)
        until = summary["ended_wall"] or self.wall_clock()
        events = self.history.recent(500, kinds=(EventKind.WARN, EventKind.TRIP), since_wall=summary["started_wall"],
                                   until_wall=until)
        return {"session": summary, "events": list(reversed(events))}



class _StaleEdit(Exception):
    """A profile edit based on a version older than the one stored (the clinic record changed it)."""


def _belt_stands(status: dict[str, Any]) -> bool:
    """STOPPED or READY, the link answering and the belt at rest, as the core judges it: when a looser
    prescription may apply (a belt whose speed is unknown counts as moving)."""
    return (status.get("state") in ("STOPPED", "READY") and status.get("link_ok") is True
            and abs(float(status.get("belt_speed_mps") or 0.0)) < MOVING_MPS)


_WALL = Num(0, 1e11, "s")
_COUNT = Num(0, 1e9, integer=True)
_VERSION = Num(1, 2**53, integer=True)
_CURSOR_KEYS = ("sessions",)
_SESSION_SPECS: dict[str, Any] = {
    "local_id": Num(1, 2**53, integer=True), "status": Choice(tuple(s.value for s in SessionStatus)),
    "started_wall": _WALL, "planned_min": Num(0, 1e4, "min"), "mode": Choice(("reverse", "forward")),
    "duration_s": Num(0, 1e7, "s"), "distance_m": Num(0, 1e8, "m"), "max_kmh": Num(0, 100, "km/h"),
    "warnings": _COUNT, "trips": _COUNT, "pain_before": Num(0, 10, integer=True), "changed": Num(1, 2**62, integer=True),
}
_SESSION_NULLABLE: dict[str, Any] = {
    "ended_wall": _WALL, "closest_mm": Num(0, 1e5, "mm"), "pain_after": Num(0, 10, integer=True),
    "end_reason": Text("a reason", max_len=500), "start_speed_kmh": Num(0, 100, "km/h"),
}


def _check_merge(params: dict[str, Any], cfg: Config) -> tuple[list, list, list, list, dict, list, list[FieldError]]:
    """The parts of a clinic merge: patient rows, sessions, refused edits, accepted versions, the cursor,
    the rows not kept (each named with why), and the errors that refuse the whole merge (its shape)."""
    errors: list[FieldError] = []
    unknown = sorted(set(params) - {"patients", "sessions", "refused", "accepted", "cursor", "actor", "authorized"})
    errors += [FieldError("clinic", k, params[k], "not a field; fields: patients, sessions, refused, accepted, "
                          "cursor") for k in unknown]

    def listed(key: str) -> list:
        value = params.get(key, [])
        if not isinstance(value, list) or len(value) > 5000:
            errors.append(FieldError("clinic", key, value, "must be a list of at most 5000 objects"))
            return []
        bad = [v for v in value if not isinstance(v, dict)]
        if bad:
            errors.append(FieldError("clinic", key, bad[0], "must be a list of objects"))
            return []
        return value

    # A bad row is not kept (and named), the others are: one poisoned row must not hold up the rest.
    not_kept: list[dict[str, Any]] = []
    rows = []
    for i, row in enumerate(listed("patients")):
        section = f"clinic patients[{i}]"
        problems: list[FieldError] = []
        missing = [k for k in (*patients.FIELDS, "version", "created_wall", "updated_wall") if k not in row]
        if missing:
            problems.append(FieldError(section, missing[0], "(missing)", "is required in a clinic patient row"))
        else:
            check_value(section, "version", row["version"], _VERSION, problems)
            check_value(section, "created_wall", row["created_wall"], _WALL, problems)
            check_value(section, "updated_wall", row["updated_wall"], _WALL, problems)
            updated_by = row.get("updated_by", "")
            if not isinstance(updated_by, str) or len(updated_by) > 200:
                problems.append(FieldError(section, "updated_by", updated_by,
                                           "must be text of at most 200 characters"))
        pid = row.get("patient_id")
        if problems:
            not_kept.append({"patient_id": pid if isinstance(pid, str) else repr(pid)[:40],
                             "message": "; ".join(map(str, problems))})
        else:
            rows.append(row)
    sessions = []
    own = cfg.clinic.treadmill_id
    for i, row in enumerate(listed("sessions")):
        section = f"clinic sessions[{i}]"
        problems = []
        tid = row.get("treadmill_id")
        if not isinstance(tid, str) or not TREADMILL_ID.fullmatch(tid) or tid == own:
            problems.append(FieldError(section, "treadmill_id", tid, "must be another treadmill's id"))
        patients.check_patient_id(row.get("patient_id"), problems)
        for key, spec in _SESSION_SPECS.items():
            check_value(section, key, row.get(key), spec, problems)
        for key, spec in _SESSION_NULLABLE.items():
            if row.get(key) is not None:
                check_value(section, key, row[key], spec, problems)
        if problems:
            not_kept.append({"treadmill_id": tid if isinstance(tid, str) else repr(tid)[:40],
                             "message": "; ".join(map(str, problems))})
        else:
            sessions.append({k: row.get(k) for k in records.CLINIC_SESSION_COLUMNS})
    refused = []
    for i, item in enumerate(listed("refused")):
        pid, message = item.get("patient_id"), item.get("message")
        if not isinstance(pid, str) or not isinstance(message, str) or len(message) > 500:
            errors.append(FieldError(f"clinic refused[{i}]", "message", item,
                                     "must be {\"patient_id\", \"message\" (at most 500 characters)}"))
        else:
            refused.append({"patient_id": pid, "message": message})
    accepted = []
    for i, item in enumerate(listed("accepted")):
        pid, version = item.get("patient_id"), item.get("version")
        if not isinstance(pid, str) or _VERSION.check(version) is not None:
            errors.append(FieldError(f"clinic accepted[{i}]", "version", item,
                                     "must be {\"patient_id\", \"version\" (a whole number from 1)}"))
        else:
            accepted.append({"patient_id": pid, "version": int(version)})
    cursor = params.get("cursor", {})
    if not isinstance(cursor, dict) or set(cursor) - set(_CURSOR_KEYS):
        errors.append(FieldError("clinic", "cursor", cursor, "must be an object with " + ", ".join(_CURSOR_KEYS)))
        cursor = {}
    for key, value in cursor.items():
        check_value("clinic", f"cursor.{key}", value, Num(0, 2**62, integer=True), errors)
    return rows, sessions, refused, accepted, cursor, not_kept, errors


def _prescription(patient_id: str, mode: str, limits: Limits) -> dict[str, Any]:
    """APPLY_PRESCRIPTION's value; ``confirmed`` false: nobody at this treadmill confirmed looser values."""
    return {"mode": mode, "patient_id": patient_id, "confirmed": False,
            "limits": {"reverse_cap_kmh": limits.reverse_cap_kmh, "forward_cap_kmh": limits.forward_cap_kmh,
                       "base_stop_mm": limits.base_stop_mm, "warn_margin_mm": limits.warn_margin_mm}}


def _tighter_of(present: Limits, new: Limits) -> Limits:
    """Each limit at the tighter of the two: what of a prescription may apply on a moving belt."""
    values = {key: (min if sign < 0 else max)(getattr(present, key), getattr(new, key))
              for key, sign in LIMIT_TIGHTER_SIGN.items()}
    return dataclasses.replace(present, **values)
