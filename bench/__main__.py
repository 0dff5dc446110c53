"""Run every benchmark (``make bench``); each writes bench/results/NAME.json.

The order puts the quiet measurements first: the dashboard and reliability runs load the machine.
"""

from __future__ import annotations

from bench import (approach, cpu_cost, dashboard, decision_cost, history, reliability, serial_poll,
                   stop_margin, trip_latency)


def main() -> None:
    decision_cost.main()
    trip_latency.main([])
    cpu_cost.main([])
    serial_poll.main([])
    stop_margin.main([])
    approach.main([])
    history.main([])
    dashboard.main([])
    reliability.main([])


if __name__ == "__main__":
    main()
