"""The event log as people read it: one event per action.

The safety core records a person's command (kind "command") and, in the same
decision step, the change it made: a state change (reset, start, stop, mode,
ramp-down) or a limits change (limits, a patient's prescription). Both are kept
in the history for the audit; shown side by side, each action appeared twice.
:func:`one_per_action` shows the change once, with its command folded in.
"""

from __future__ import annotations

from typing import Any, Iterable

#: Kinds of event that record what a command changed.
CHANGE_KINDS = ("state", "limits")


def one_per_action(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events newest first, each accepted command folded into the change it made in the same step.

    A command's change is an event of kind state or limits with the same ``t_mono`` (the core's
    step time) and the same actor; an E-stop's is the trip it caused. The change keeps its id,
    kind and message and gains ``"command": {"code", "message"[, "value"]}``. A command that
    changed no state or limits (a speed, a stop of a standing belt), a refused one, and every
    other event stay as they are. A page cut between a command and its change shows the command.
    """
    rows = list(rows)
    steps: dict[Any, list[int]] = {}
    for i, row in enumerate(rows):
        steps.setdefault(row.get("t_mono"), []).append(i)
    folded = {i for i, row in enumerate(rows)
              if row.get("kind") == "command" and _fold_into_change(rows, i, steps[row.get("t_mono")])}
    return [row for i, row in enumerate(rows) if i not in folded]


def _made_by(change: dict[str, Any], command: dict[str, Any]) -> bool:
    """Whether ``change`` (of the same step) is what ``command`` did: its state or limits change under the same
    actor, or the trip it caused (an E-stop: the trip ``estop_command``, whose message names the actor)."""
    if "command" in change:
        return False
    if change.get("kind") in CHANGE_KINDS:
        return change.get("actor") == command.get("actor")
    return change.get("kind") == "trip" and change.get("code") == f"{command.get('code')}_command"


def _fold_into_change(rows: list[dict[str, Any]], i: int, step: list[int]) -> bool:
    """Fold the command ``rows[i]`` into the change of its own step (``step``: the rows of its t_mono)."""
    row = rows[i]
    for j in sorted((j for j in step if j != i), key=lambda j: abs(j - i)):
        if _made_by(rows[j], row):
            command = {"code": row.get("code"), "message": row.get("message")}
            value = (row.get("figures") or {}).get("value")
            if value is not None:
                command["value"] = value
            rows[j] = {**rows[j], "command": command}
            return True
    return False
