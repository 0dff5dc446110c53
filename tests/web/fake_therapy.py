"""The fake controller's patients and therapy sessions, kept in memory.

Every value is checked by the controller's own rules on the fake's config: a
profile by controller.therapy.patients, planned minutes and pain by the session
runner's scales, and the suggestion, pain trend and today's count come from
controller.therapy.progression. It refuses as the controller does
(unauthorized, not_found, conflict, storage) and moves the fake's status along:
the selected patient, the session's phase and timer, the belt state.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import TYPE_CHECKING, Any, Callable

from controller.config import KMH_PER_MPS, Limits
from controller.fields import FieldError, Num, check_value
from controller.ipc import RequestError
from controller.storage.export_formats import SAMPLE_COLUMNS
from controller.therapy import patients
from controller.therapy.prescription import check_confirm, confirm_message, default_start_speed, describe_loosened, loosened
from controller.therapy.progression import pain_flag, pain_trend, sessions_today, suggest_duration
from controller.therapy.runner import PAIN, PLANNED_MIN

if TYPE_CHECKING:  # pragma: no cover
    from tests.web.fake_controller import FakeController

#: The ranges the controller gives inline where it reads a session id or a page of samples
#: (controller/ipc.py, controller/therapy/runner.py).
SESSION_ID = Num(1, 1e9, integer=True)
SAMPLES_OFFSET = Num(0, 1e9, integer=True)
SAMPLES_LIMIT = Num(1, 5000, integer=True)


def invalid(errors: list[FieldError]) -> RequestError:
    """The controller's "invalid" refusal: every error's text, and each as ``FieldError.as_dict``."""
    return RequestError("invalid", "; ".join(map(str, errors)), [e.as_dict() for e in errors])


class FakeTherapy:
    """Patients, sessions and samples of one FakeController; every method runs under its lock."""

    def __init__(self, fake: FakeController):
        self.fake = fake
        self.patients: dict[str, dict[str, Any]] = {}
        self.sessions: dict[int, dict[str, Any]] = {}
        self.samples: dict[int, list[list[Any]]] = {}
        self.storage_fault: str | None = None
        self._next_session_id = 1

    # ---- the IPC contract ------------------------------------------------------------

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """IPC method name → handler."""
        return {"patients": self.m_patients, "patient": self.m_patient, "patient_save": self.m_patient_save,
                "patient_delete": self.m_patient_delete, "patient_select": self.m_patient_select,
                "session_start": self.m_session_start, "session_pause": self.m_session_pause,
                "session_resume": self.m_session_resume, "session_end": self.m_session_end,
                "session_pain": self.m_session_pain, "session": self.m_session,
                "session_samples": self.m_session_samples}

    def fields(self) -> dict[str, dict[str, Any]]:
        """The allowed values of each profile field, as the controller describes them for its config."""
        return patients.describe_fields(self.fake.config())

    def m_patients(self, params: dict[str, Any]) -> dict[str, Any]:
        """Every profile, sorted by id, and the allowed values of each field."""
        return {"patients": [copy.deepcopy(self.patients[k]) for k in sorted(self.patients)],
                "fields": self.fields()}

    def m_patient(self, params: dict[str, Any]) -> dict[str, Any]:
        """One profile with its sessions (newest first), the suggestion, the pain trend and today's count."""
        patient = self._patient(params.get("patient_id"))
        sessions = self._sessions_of(patient["patient_id"])
        cfg = self.fake.config()
        regimen, now = cfg.sessions, time.time()
        start_kmh, start_reason = default_start_speed(sessions, patient["mode"], patient["speed_cap_kmh"],
                                                      cfg.safety.min_speed_kmh)
        return {"patient": copy.deepcopy(patient), "sessions": copy.deepcopy(sessions),
                "start_speed_kmh": start_kmh, "start_speed_reason": start_reason,
                "suggestion": suggest_duration(sessions, patient["target_min"], regimen.start_duration_min,
                                               regimen.weekly_step_min, now),
                "pain": pain_trend(sessions),
                "today": {"done": sessions_today(sessions, now), "per_day": patient["sessions_per_day"]}}

    def m_patient_save(self, params: dict[str, Any]) -> dict[str, Any]:
        """Create or replace a profile, checked as the controller checks it."""
        self._authority(params, "saving a patient")
        profile, errors = patients.check_patient(params.get("patient"), self.fake.config())
        if errors:
            raise invalid(errors)
        pid, create = profile["patient_id"], params.get("create")
        if create and pid in self.patients:
            raise RequestError("conflict", f"patient {pid} exists already; choose another id")
        if not create and pid not in self.patients:
            raise RequestError("not_found", f"no patient {pid}")
        self._writable()
        now = time.time()
        profile["created_wall"] = now if create else self.patients[pid]["created_wall"]
        profile["updated_wall"] = now
        self.patients[pid] = profile
        return {"patient": copy.deepcopy(profile)}

    def m_patient_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        """Delete a profile with its sessions and samples (refused during its active session)."""
        self._authority(params, "deleting a patient")
        pid = self._patient(params.get("patient_id"))["patient_id"]
        active = self._active()
        if active is not None and active["patient_id"] == pid:
            raise RequestError("conflict", f"patient {pid} is in session {active['session_id']}; end it first")
        self._writable()
        del self.patients[pid]
        for sid in [s for s, row in self.sessions.items() if row["patient_id"] == pid]:
            del self.sessions[sid]
            self.samples.pop(sid, None)
        if self.fake.status.get("selected_patient") == pid:
            self.fake.status["selected_patient"] = None
            self.fake._bump()
        return {"deleted": pid}

    def m_patient_select(self, params: dict[str, Any]) -> dict[str, Any]:
        """Apply the patient's prescription to the status."""
        self._authority(params, "choosing a patient")
        confirm = self._confirm_flag(params)
        patient = self._patient(params.get("patient_id"))
        self._select(patient, confirm)
        self.fake._bump()
        return {"message": f"patient {patient['patient_id']} chosen: {patient['mode']} walking, cap "
                           f"{patient['speed_cap_kmh']:g} km/h", "patient_id": patient["patient_id"]}

    def m_session_start(self, params: dict[str, Any]) -> dict[str, Any]:
        """Start a session: the runner's scales, then the patient, then the state."""
        self._authority(params, "starting a session")
        cfg, errors = self.fake.config(), []
        planned = check_value("session", "planned_min", params.get("planned_min"), PLANNED_MIN, errors)
        pain_before = check_value("session", "pain_before", params.get("pain_before"), PAIN, errors)
        speed_kmh = params.get("speed_kmh")
        if speed_kmh is not None:
            # The session runner's start speed: any the installer allows; the patient's cap limits it after.
            ceiling = max(cfg.ceilings.max_reverse_cap_kmh, cfg.ceilings.max_forward_cap_kmh)
            check_value("session", "speed_kmh", speed_kmh, Num(cfg.safety.min_speed_kmh, ceiling, "km/h"), errors)
        if errors:
            raise invalid(errors)
        confirm = self._confirm_flag(params)
        patient = self._patient(params.get("patient_id"))
        active = self._active()
        if active is not None:
            raise RequestError("conflict", f"session {active['session_id']} is still active; end it first")
        if self.fake.status["state"] != "READY":
            raise RequestError("conflict", f"a session starts from READY; the controller is "
                                           f"{self.fake.status['state']}")
        self._select(patient, confirm)
        cap = patient["speed_cap_kmh"]
        if speed_kmh is None:
            start_kmh, _ = default_start_speed(self._sessions_of(patient["patient_id"]), patient["mode"], cap,
                                               cfg.safety.min_speed_kmh)
        else:
            start_kmh = min(speed_kmh, cap)
        row = self.add_session(patient["patient_id"], status="active", ended_wall=None, planned_min=planned,
                               pain_before=pain_before, pain_after=None, end_reason="", duration_s=0.0,
                               distance_m=0.0, mean_kmh=0.0, max_kmh=0.0, closest_mm=None,
                               start_speed_kmh=start_kmh)
        self.fake._set_state("RUNNING")
        self.fake.status["target_mps"] = start_kmh / KMH_PER_MPS
        self.fake.status["session"] = self._status_session(row, "walking")
        self.fake._bump()
        return {"session": copy.deepcopy(row)}

    def m_session_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        """Pause the active session (the belt stops)."""
        self._authority(params, "pausing a session")
        row = self._need_active()
        if self.fake.status["session"]["phase"] == "paused":
            raise RequestError("conflict", f"session {row['session_id']} is paused already")
        self.fake._set_state("READY")
        self.fake.status["session"].update(phase="paused", paused_reason=f"paused by {params['actor']}")
        self.fake._bump()
        return {"message": "paused: stopping", "session": copy.deepcopy(self.fake.status["session"])}

    def m_session_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        """Resume the paused session."""
        self._authority(params, "resuming a session")
        row = self._need_active()
        if self.fake.status["session"]["phase"] != "paused":
            raise RequestError("conflict", f"session {row['session_id']} is not paused")
        self.fake._set_state("RUNNING")
        self.fake.status["session"].update(phase="walking", paused_reason=None)
        self.fake._bump()
        return {"message": "resumed: running", "session": copy.deepcopy(self.fake.status["session"])}

    def m_session_end(self, params: dict[str, Any]) -> dict[str, Any]:
        """A moving belt ramps down first (phase "finishing": finish() ends it); a standing one ends at once."""
        self._authority(params, "ending a session")
        row = self._need_active()
        live = self.fake.status["session"]
        if live["phase"] == "finishing":
            return {"message": "the session is already ending", "session": copy.deepcopy(live)}
        if self.fake.status["state"] == "RUNNING":
            live["phase"] = "finishing"
            self.fake._bump()
            return {"message": "ramping down to a stop; the session ends when the belt stands",
                    "session": copy.deepcopy(live)}
        self.finish(row["session_id"], "ended", f"ended by {params['actor']}")
        return {"message": f"session {row['status']}", "session": copy.deepcopy(row)}

    def m_session_pain(self, params: dict[str, Any]) -> dict[str, Any]:
        """Record the pain after an ended session, once."""
        self._authority(params, "recording pain")
        errors: list[FieldError] = []
        check_value("session", "session_id", params.get("session_id"), SESSION_ID, errors)
        pain_after = check_value("session", "pain_after", params.get("pain_after"), PAIN, errors)
        if errors:
            raise invalid(errors)
        row = self._session(params["session_id"])
        if row["status"] == "active":
            raise RequestError("conflict", f"session {row['session_id']} is still running; record pain after "
                                           "its end")
        if row["pain_after"] is not None:
            raise RequestError("conflict", f"pain after session {row['session_id']} is recorded already "
                                           f"({row['pain_after']})")
        self._writable()
        row.update(pain_after=pain_after, pain_flag=pain_flag(row["pain_before"], pain_after))
        return {"session": copy.deepcopy(row)}

    def m_session(self, params: dict[str, Any]) -> dict[str, Any]:
        """One session's summary and its warn and trip events, oldest first."""
        row = self._session(params.get("session_id"))
        end = row["ended_wall"] if row["ended_wall"] is not None else float("inf")
        events = [e for e in reversed(self.fake.events)
                  if e["kind"] in ("warn", "trip") and row["started_wall"] <= e["wall_time"] <= end]
        return {"session": copy.deepcopy(row), "events": copy.deepcopy(events)}

    def m_session_samples(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of a session's timeline."""
        errors: list[FieldError] = []
        check_value("session", "session_id", params.get("session_id"), SESSION_ID, errors)
        offset = check_value("session", "offset", params.get("offset", 0), SAMPLES_OFFSET, errors)
        limit = check_value("session", "limit", params.get("limit", 5000), SAMPLES_LIMIT, errors)
        if errors:
            raise invalid(errors)
        row = self._session(params["session_id"])
        rows = self.samples.get(row["session_id"], [])
        page = rows[offset:offset + limit]
        after = offset + len(page)
        return {"columns": list(SAMPLE_COLUMNS), "rows": copy.deepcopy(page), "total": len(rows),
                "next_offset": after if after < len(rows) else None}

    # ---- test set-up -------------------------------------------------------------------

    def add_patient(self, patient_id: str = "P01", **fields: Any) -> dict[str, Any]:
        """Store a valid profile (fields override the defaults)."""
        now = time.time()
        profile = {"patient_id": patient_id, "display_name": "A.B.", "notes": "", "mode": "reverse",
                   "speed_cap_kmh": 1.5, "base_stop_mm": 300.0, "warn_margin_mm": 200.0, "target_min": 20.0,
                   "sessions_per_day": 2, "created_wall": now, "updated_wall": now}
        profile.update(fields)
        self.patients[patient_id] = profile
        return profile

    def add_session(self, patient_id: str, **fields: Any) -> dict[str, Any]:
        """Store a session summary (fields override a completed 10-minute session's)."""
        sid = self._next_session_id
        self._next_session_id += 1
        started = fields.pop("started_wall", time.time())
        row = {"session_id": sid, "patient_id": patient_id, "status": "completed", "started_wall": started,
               "ended_wall": started + 600.0, "planned_min": 10.0,
               "mode": self.patients.get(patient_id, {}).get("mode", "reverse"), "duration_s": 600.0,
               "distance_m": 250.0, "mean_kmh": 1.5, "max_kmh": 1.8, "warnings": 0, "trips": 0,
               "closest_mm": 420.0, "pain_before": 4, "pain_after": 3, "pain_flag": False,
               "end_reason": "target reached", "start_speed_kmh": None}
        row.update(fields)
        self.sessions[sid] = row
        return row

    def finish(self, session_id: int, status: str = "completed", reason: str = "target reached") -> None:
        """End the active session as the controller would (target reached, ended, interrupted)."""
        row = self.sessions[session_id]
        row.update(status=status, ended_wall=time.time(), end_reason=reason)
        self.fake._set_state("READY")
        self.fake.status["session"] = None
        self.fake._bump()

    # ---- helpers -------------------------------------------------------------------------

    @staticmethod
    def _authority(params: dict[str, Any], what: str) -> None:
        if params.get("authorized") is not True:
            raise RequestError("unauthorized", f"{what} needs a logged-in therapist")

    @staticmethod
    def _confirm_flag(params: dict[str, Any]) -> bool:
        errors: list[FieldError] = []
        confirm = check_confirm(params, errors)
        if errors:
            raise invalid(errors)
        return confirm

    def _writable(self) -> None:
        if self.storage_fault:
            raise RequestError("storage", self.storage_fault)

    def _patient(self, pid: Any) -> dict[str, Any]:
        errors: list[FieldError] = []
        patients.check_patient_id(pid, errors)
        if errors:
            raise invalid(errors)
        if pid not in self.patients:
            raise RequestError("not_found", f"no patient {pid}")
        return self.patients[pid]

    def _session(self, sid: Any) -> dict[str, Any]:
        errors: list[FieldError] = []
        check_value("session", "session_id", sid, SESSION_ID, errors)
        if errors:
            raise invalid(errors)
        if sid not in self.sessions:
            raise RequestError("not_found", f"no session {sid}")
        return self.sessions[sid]

    def _sessions_of(self, pid: str) -> list[dict[str, Any]]:
        rows = [s for s in self.sessions.values() if s["patient_id"] == pid]
        return sorted(rows, key=lambda s: (s["started_wall"], s["session_id"]), reverse=True)

    def _active(self) -> dict[str, Any] | None:
        return next((s for s in self.sessions.values() if s["status"] == "active"), None)

    def _need_active(self) -> dict[str, Any]:
        row = self._active()
        if row is None or self.fake.status.get("session") is None:
            raise RequestError("conflict", "no session is running")
        return row

    def _select(self, patient: dict[str, Any], confirm: bool) -> None:
        """The patient's prescription as the controller applies it (controller/therapy/prescription.py):
        looser values or another mode only standing, and only with ``confirm``."""
        status = self.fake.status
        new = patients.prescription_limits(patient, self.fake.config())
        items = loosened(new, Limits(**status["limits"]), patient["mode"], status["mode"])
        if items and status["state"] not in ("STOPPED", "READY"):
            raise RequestError("conflict", f"patient {patient['patient_id']}'s prescription loosens the present "
                               f"limits ({describe_loosened(items)}): it applies only while the belt stands "
                               "(STOPPED or READY, speed 0)", details={"loosened": items})
        if items and not confirm:
            raise RequestError("confirm", confirm_message(patient["patient_id"], items), details={"loosened": items})
        status.update(mode=patient["mode"], limits=dataclasses.asdict(new), selected_patient=patient["patient_id"])

    def _status_session(self, row: dict[str, Any], phase: str) -> dict[str, Any]:
        planned_s = row["planned_min"] * 60.0
        return {"session_id": row["session_id"], "patient_id": row["patient_id"], "phase": phase,
                "elapsed_s": 0.0, "planned_s": planned_s, "remaining_s": planned_s, "end_warning": False,
                "paused_reason": None}
