"""The fault storm (storm.py): at least 500 seeded faults of every kind, each tripping within its deadline.

The seed is printed on failure; ``STORM_SEED=N`` replays one storm, ``STORM_FAULTS=N`` sets its length.
"""

from __future__ import annotations

import os
import random

from tests.reliability.storm import FAULTS, Storm
from tests.reliability.tally import TALLY

N_FAULTS = int(os.environ.get("STORM_FAULTS", "500"))


def test_fault_storm_every_fault_trips_within_its_deadline(tmp_path):
    seed = int(os.environ.get("STORM_SEED", random.SystemRandom().randrange(2**32)))
    print(f"fault storm seed {seed} (replay with STORM_SEED={seed})")
    storm = Storm(seed, N_FAULTS, tmp_path / "state").run()
    summary = storm.summary()
    print(summary)
    TALLY.add("storm: faults injected", summary["faults"])
    TALLY.add("storm: faults tripped", summary["tripped"])
    TALLY.add("storm: faults late during a machine stall", summary["disturbed_by_machine_stalls"])
    TALLY.add("storm: normal run-and-stop cycles", summary["normal_cycles"])
    TALLY.add("crashes", len(storm.escaped))
    storm.check()
    assert summary["faults"] >= N_FAULTS, f"seed {seed}: only {summary['faults']} faults ran"
    assert summary["tripped"] == summary["faults"], f"seed {seed}: {summary}"
    assert {f.name for f in FAULTS} <= set(summary["by_fault"]), f"seed {seed}: a kind of fault never ran"
