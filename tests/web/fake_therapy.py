"""The fake controller's patients and therapy sessions, kept in memory (SPEC issue 6, "IPC methods").

Checks every field as the controller does (errors ``[patient] key`` with the
allowed range), refuses as it does (unauthorized, not_found, conflict,
storage), and moves the fake's status along: the selected patient, the
session's phase and timer, the belt state.
"""

from __future__ import annotations

import copy
import time
from typing import TYPE_CHECKING, Any, Callable

from tests.web.fake_checks import PATIENT_ID, Refusal, field_error, invalid, num_check, check_patient

if TYPE_CHECKING:  # pragma: no cover
    from tests.web.fake_controller import FakeController

SAMPLE_COLUMNS = ["t_s", "gap_mm", "belt_kmh", "state", "warning"]
MAX_SAMPLES_PAGE = 5000
START_DURATION_MIN = 5.0
WEEKLY_STEP_MIN = 2.5


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
        """The allowed values of each profile field, from the fake's ceilings (as describe_fields)."""
        c = self.fake.status["ceilings"]
        return {
            "patient_id": {"pattern": PATIENT_ID.pattern, "max_len": 16},
            "display_name": {"min_len": 1, "max_len": 40},
            "notes": {"min_len": 0, "max_len": 2000},
            "mode": {"choices": ["reverse", "forward"]},
            "speed_cap_kmh": {"min": 0.5, "max": max(c["max_reverse_cap_kmh"], c["max_forward_cap_kmh"]),
                              "unit": "km/h", "integer": False},
            "base_stop_mm": {"min": c["min_base_stop_mm"], "max": 600, "unit": "mm", "integer": False},
            "warn_margin_mm": {"min": c["min_warn_margin_mm"], "max": 500, "unit": "mm", "integer": False},
            "target_min": {"min": 1, "max": 60, "unit": "min", "integer": False},
            "sessions_per_day": {"min": 1, "max": 4, "unit": "", "integer": True},
        }

    def m_patients(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"patients": [copy.deepcopy(self.patients[k]) for k in sorted(self.patients)],
                "fields": self.fields()}

    def m_patient(self, params: dict[str, Any]) -> dict[str, Any]:
        patient = self._patient(params.get("patient_id"))
        sessions = self._sessions_of(patient["patient_id"])
        return {"patient": copy.deepcopy(patient), "sessions": copy.deepcopy(sessions),
                "suggestion": self._suggestion(patient, sessions), "pain": self._pain(sessions),
                "today": self._today(patient, sessions)}

    def m_patient_save(self, params: dict[str, Any]) -> dict[str, Any]:
        self._authority(params, "saving a patient")
        data, create = params.get("patient"), params.get("create")
        if not isinstance(create, bool):
            raise invalid([field_error("patient_save", "create", create, "must be true or false")])
        profile = check_patient(data, self.fields(), self.fake.status["ceilings"])
        pid = profile["patient_id"]
        if create and pid in self.patients:
            raise Refusal("conflict", f"patient {pid} exists already; choose another id")
        if not create and pid not in self.patients:
            raise Refusal("not_found", f"no patient {pid}")
        self._writable()
        now = time.time()
        profile["created_wall"] = now if create else self.patients[pid]["created_wall"]
        profile["updated_wall"] = now
        self.patients[pid] = profile
        return {"patient": copy.deepcopy(profile)}

    def m_patient_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        self._authority(params, "deleting a patient")
        pid = self._patient(params.get("patient_id"))["patient_id"]
        active = self._active()
        if active is not None and active["patient_id"] == pid:
            raise Refusal("conflict", f"patient {pid} is in session {active['session_id']}; end it first")
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
        self._authority(params, "choosing a patient")
        patient = self._patient(params.get("patient_id"))
        self._select(patient)
        self.fake._bump()
        return {"message": f"patient {patient['patient_id']} chosen: {patient['mode']} walking, cap "
                           f"{patient['speed_cap_kmh']:g} km/h", "patient_id": patient["patient_id"]}

    def m_session_start(self, params: dict[str, Any]) -> dict[str, Any]:
        self._authority(params, "starting a session")
        errors = []
        checks = (("planned_min", num_check(0.25, 60, "min")), ("pain_before", num_check(0, 10, integer=True)))
        for key, check in checks:
            reason = check(params.get(key))
            if reason:
                errors.append(field_error("session", key, params.get(key), reason))
        if errors:
            raise invalid(errors)
        patient = self._patient(params.get("patient_id"))
        speed_kmh = params.get("speed_kmh")
        if speed_kmh is not None:
            reason = num_check(0.5, patient["speed_cap_kmh"], "km/h")(speed_kmh)
            if reason:
                raise invalid([field_error("session", "speed_kmh", speed_kmh, reason + " (the patient's cap)")])
        active = self._active()
        if active is not None:
            raise Refusal("conflict", f"session {active['session_id']} is still active; end it first")
        if self.fake.status["state"] != "READY":
            raise Refusal("conflict", "a session starts from READY; the controller is "
                                      f"{self.fake.status['state']}")
        self._select(patient)
        row = self.add_session(patient["patient_id"], status="active", ended_wall=None,
                               planned_min=params["planned_min"], pain_before=int(params["pain_before"]),
                               pain_after=None, end_reason="", duration_s=0.0, distance_m=0.0, mean_kmh=0.0,
                               max_kmh=0.0, closest_mm=None)
        self.fake._set_state("RUNNING")
        self.fake.status["target_mps"] = (speed_kmh or 0.5) / 3.6
        self.fake.status["session"] = self._status_session(row, "walking")
        self.fake._bump()
        return {"session": copy.deepcopy(row)}

    def m_session_pause(self, params: dict[str, Any]) -> dict[str, Any]:
        self._authority(params, "pausing a session")
        row = self._need_active()
        if self.fake.status["session"]["phase"] == "paused":
            raise Refusal("conflict", f"session {row['session_id']} is paused already")
        self.fake._set_state("READY")
        self.fake.status["session"].update(phase="paused", paused_reason=f"paused by {params['actor']}")
        self.fake._bump()
        return {"message": "paused: stopping", "session": copy.deepcopy(self.fake.status["session"])}

    def m_session_resume(self, params: dict[str, Any]) -> dict[str, Any]:
        self._authority(params, "resuming a session")
        row = self._need_active()
        if self.fake.status["session"]["phase"] != "paused":
            raise Refusal("conflict", f"session {row['session_id']} is not paused")
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
        self._authority(params, "recording pain")
        reason = num_check(0, 10, integer=True)(params.get("pain_after"))
        if reason:
            raise invalid([field_error("session", "pain_after", params.get("pain_after"), reason)])
        row = self._session(params.get("session_id"))
        if row["status"] == "active":
            raise Refusal("conflict", f"session {row['session_id']} is still running; record pain after its end")
        if row["pain_after"] is not None:
            raise Refusal("conflict", f"pain after session {row['session_id']} is recorded already "
                                       f"({row['pain_after']})")
        self._writable()
        row["pain_after"] = int(params["pain_after"])
        row["pain_flag"] = row["pain_after"] > row["pain_before"]
        return {"session": copy.deepcopy(row)}

    def m_session(self, params: dict[str, Any]) -> dict[str, Any]:
        row = self._session(params.get("session_id"))
        end = row["ended_wall"] if row["ended_wall"] is not None else float("inf")
        events = [e for e in reversed(self.fake.events)
                  if e["kind"] in ("warn", "trip") and row["started_wall"] <= e["wall_time"] <= end]
        return {"session": copy.deepcopy(row), "events": copy.deepcopy(events)}

    def m_session_samples(self, params: dict[str, Any]) -> dict[str, Any]:
        offset, limit = params.get("offset", 0), params.get("limit", MAX_SAMPLES_PAGE)
        errors = []
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            errors.append(field_error("session_samples", "offset", offset, "must be a whole number from 0"))
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_SAMPLES_PAGE:
            errors.append(field_error("session_samples", "limit", limit,
                                       f"must be a whole number from 1 to {MAX_SAMPLES_PAGE}"))
        if errors:
            raise invalid(errors)
        row = self._session(params.get("session_id"))
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
               "end_reason": "target reached"}
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

    def _authority(self, params: dict[str, Any], what: str) -> None:
        actor = params.get("actor")
        if not isinstance(actor, str) or not 0 < len(actor.strip()) <= 80:
            raise Refusal("invalid", f"[request] actor = {actor!r}: must be 1 to 80 characters")
        if params.get("authorized") is not True:
            raise Refusal("unauthorized", f"{what} needs a logged-in therapist")

    def _writable(self) -> None:
        if self.storage_fault:
            raise Refusal("storage", self.storage_fault)

    def _patient(self, pid: Any) -> dict[str, Any]:
        if not isinstance(pid, str) or not PATIENT_ID.fullmatch(pid):
            raise invalid([field_error("patient", "patient_id", pid, "must be 1 to 16 letters, digits, _ or -")])
        if pid not in self.patients:
            raise Refusal("not_found", f"no patient {pid}")
        return self.patients[pid]

    def _session(self, sid: Any) -> dict[str, Any]:
        if not isinstance(sid, int) or isinstance(sid, bool) or sid < 1:
            raise invalid([field_error("session", "session_id", sid, "must be a whole number from 1")])
        if sid not in self.sessions:
            raise Refusal("not_found", f"no session {sid}")
        return self.sessions[sid]

    def _sessions_of(self, pid: str) -> list[dict[str, Any]]:
        rows = [s for s in self.sessions.values() if s["patient_id"] == pid]
        return sorted(rows, key=lambda s: (s["started_wall"], s["session_id"]), reverse=True)

    def _active(self) -> dict[str, Any] | None:
        return next((s for s in self.sessions.values() if s["status"] == "active"), None)

    def _need_active(self) -> dict[str, Any]:
        row = self._active()
        if row is None or self.fake.status.get("session") is None:
            raise Refusal("conflict", "no session is running")
        return row

    def _select(self, patient: dict[str, Any]) -> None:
        status = self.fake.status
        if status["state"] == "RUNNING" and status["mode"] != patient["mode"]:
            raise Refusal("conflict", "the mode changes only while the belt stands (STOPPED or READY)")
        status["mode"] = patient["mode"]
        status["limits"][f"{patient['mode']}_cap_kmh"] = patient["speed_cap_kmh"]
        status["selected_patient"] = patient["patient_id"]

    def _status_session(self, row: dict[str, Any], phase: str) -> dict[str, Any]:
        planned_s = row["planned_min"] * 60.0
        return {"session_id": row["session_id"], "patient_id": row["patient_id"], "phase": phase,
                "elapsed_s": 0.0, "planned_s": planned_s, "remaining_s": planned_s, "end_warning": False,
                "paused_reason": None}

    def _suggestion(self, patient: dict[str, Any], sessions: list[dict[str, Any]]) -> dict[str, Any]:
        done = [s for s in sessions if s["status"] != "active"]
        if not done:
            return {"duration_min": START_DURATION_MIN, "reason": "first session"}
        step = min(patient["target_min"], done[0]["planned_min"] + WEEKLY_STEP_MIN / 2)
        return {"duration_min": step, "reason": f"last session {done[0]['planned_min']:g} min went well"}

    @staticmethod
    def _pain(sessions: list[dict[str, Any]]) -> dict[str, Any]:
        scored = [s for s in sessions if s["pain_after"] is not None][:2]
        if len(scored) == 2 and all(s["pain_flag"] for s in scored):
            return {"worsening": True, "message": "pain rose after each of the last 2 sessions"}
        return {"worsening": False, "message": None}

    @staticmethod
    def _today(patient: dict[str, Any], sessions: list[dict[str, Any]]) -> dict[str, Any]:
        midnight = time.mktime(time.localtime()[:3] + (0, 0, 0, 0, 0, -1))
        done = sum(1 for s in sessions if s["started_wall"] >= midnight and s["status"] != "active")
        return {"done": done, "per_day": patient["sessions_per_day"]}
