"""Run every benchmark (``make bench``); each writes bench/results/NAME.json.

The order puts the quiet measurements first: the dashboard and reliability runs load the machine.
The Pi-sized budget comes last: it confines the controller to a slice of one core (bench/cpu_slice.py).
"""

from __future__ import annotations

from bench import (access, approach, clinic, cpu_cost, dashboard, decision_cost, history, patient_display, pi_budget,
                   reliability, sensor_phase, serial_poll, stop_margin, tls, trip_latency, voice, wake_floor)


def main() -> None:
    decision_cost.main()
    trip_latency.main([])
    trip_latency.main(["--in-phase", "--trips", "300"])
    sensor_phase.main([])
    cpu_cost.main([])
    wake_floor.main([])
    serial_poll.main([])
    stop_margin.main([])
    approach.main([])
    voice.main([])
    history.main([])
    tls.main([])
    access.main([])
    dashboard.main([])
    patient_display.main([])
    clinic.main([])
    reliability.main([])
    pi_budget.main([])


if __name__ == "__main__":
    main()
