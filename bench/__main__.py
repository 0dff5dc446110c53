"""Run every benchmark (``make bench``); each writes bench/results/NAME.json."""

from __future__ import annotations

from bench import cpu_cost, dashboard, decision_cost, history, serial_poll, trip_latency


def main() -> None:
    decision_cost.main()
    trip_latency.main([])
    cpu_cost.main([])
    serial_poll.main([])
    dashboard.main([])
    history.main([])


if __name__ == "__main__":
    main()
