"""The clinic record: trip latency beside the replicator, replication lag, and the drain of a long backlog.

A throw-away PostgreSQL server (sim/postgres.py: TLS, scram, on this machine) stands in for the
clinic's. Three measurements:

  trips      trip latency (bench/trip_latency.py's trips: sample->relay, crossing->relay) of a
             treadmill in this process whose replicator runs as its own process, first with the
             server up, then with the server stopped (the replicator failing and backing off);
  lag        three treadmills (controller and replicator processes each) walk a session at the
             default 10 samples a second at once; each sample's lag is from the moment it was
             taken on the treadmill (session start + t_s, wall clock) to its arrival on the server
             (received_at, the same machine's clock). It includes the controller's own one-second
             batching of samples into history.db;
  drain      a treadmill's history.db holding a 30-minute session's backlog (10 Hz samples, the
             session row changed every second, warnings), written while no replicator ran; the
             time from its replicator's start until the outbox is empty and the server has it all.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import tempfile
import time
from pathlib import Path

from bench.common import percentiles, save
from bench.trip_latency import measure
from controller.safety.types import Event, EventKind
from controller.storage import records
from controller.storage.store import HistoryStore
from sim.bench import SimBench, sim_config, wait_until
from sim.clinic import ClinicTreadmill, spawn_replicator, write_config
from sim.postgres import PostgresServer

PATIENT = {"patient_id": "P-1", "display_name": "A.B.", "notes": "", "mode": "reverse", "speed_cap_kmh": 1.5,
           "base_stop_mm": 250, "warn_margin_mm": 200, "target_min": 30, "sessions_per_day": 2}
THERAPIST = {"actor": "bench", "authorized": True}


def _ms(stats: dict) -> dict:
    return {k: (round(v * 1000, 1) if k != "n" else v) for k, v in stats.items()}


def trips(server: PostgresServer, work: Path, n: int) -> dict:
    """Trip latency with the replicator running, the server up and then down."""
    server.create_database("bench_trips")
    clinic = server.clinic_config("bench_trips", "T")
    state = work / "T" / "state"
    cfg = dataclasses.replace(sim_config(state), clinic=clinic)
    socket = work / "T" / "t.sock"
    out = {}
    with SimBench(cfg, state_dir=state, start_gap_mm=600, ipc_socket=socket) as bench:
        config = write_config(work / "T" / "config.toml", state_dir=state, ipc_socket=socket,
                              web_state_dir=work / "T" / "web", clinic=clinic)
        with open(work / "T" / "replicator.log", "ab") as log:
            replicator = spawn_replicator(config, log, max_backoff_s=30.0)
            try:
                if not wait_until(lambda: bench.controller.ipc.status()["clinic"]["connected"], 30.0, 0.1):
                    raise RuntimeError("the replicator did not connect")
                out["server_up"] = measure(bench, n)
                server.stop()
                wait_until(lambda: not bench.controller.ipc.status()["clinic"]["connected"], 15.0, 0.1)
                out["server_down"] = measure(bench, n)
                out["server_down"]["outbox_rows_at_end"] = bench.controller.ipc.status()["storage"]["outbox"]
            finally:
                if not server.running:
                    server.start()
                replicator.terminate()
                replicator.wait(10)
    return out


def lag(server: PostgresServer, work: Path, treadmills: int, seconds: float) -> dict:
    """Per-sample lag, taken on a treadmill -> on the server, with ``treadmills`` walking at once."""
    server.create_database("bench_lag")
    nodes = []
    try:
        for i in range(treadmills):
            nodes.append(ClinicTreadmill(work / f"L{i}", server.clinic_config("bench_lag", f"L{i}"),
                                         max_backoff_s=2.0).start())
        nodes[0].call("patient_save", {"patient": PATIENT, "create": True, **THERAPIST})
        for node in nodes:
            if not wait_until(lambda node=node: any(p["patient_id"] == "P-1"
                                                    for p in node.call("patients")["patients"]), 30.0, 0.2):
                raise RuntimeError(f"{node.treadmill_id}: the patient did not arrive\n{node.log()}")
            if not node.reset():
                raise RuntimeError(f"{node.treadmill_id}: no reset: {node.status()['reasons']}")
        for node in nodes:
            node.call("session_start", {"patient_id": "P-1", "planned_min": 30, "pain_before": 1, "speed_kmh": 1.0,
                                        **THERAPIST})
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            time.sleep(1.0)
        for node in nodes:
            node.call("session_end", THERAPIST)
        if not wait_until(lambda: all(node.status()["session"] is None for node in nodes), 20.0, 0.2):
            raise RuntimeError("a session did not end")
        if not wait_until(lambda: all(node.status()["storage"]["outbox"] == 0 for node in nodes), 60.0, 0.2):
            raise RuntimeError("the backlog did not drain")
        with server.admin_connect("bench_lag") as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM sa.received_at) - (se.started_wall + sa.t_s) FROM samples sa "
                "JOIN sessions se ON se.treadmill_id = sa.treadmill_id AND se.local_id = sa.session_local_id"
            ).fetchall()
            per = conn.execute("SELECT treadmill_id, count(*) FROM samples GROUP BY treadmill_id "
                               "ORDER BY treadmill_id").fetchall()
        lags = [r[0] for r in rows]
        result = _ms(percentiles(lags))
        result["p95"] = round(sorted(lags)[int(0.95 * (len(lags) - 1))] * 1000, 1)
        return {"treadmills": treadmills, "walked_s": seconds, "samples_per_treadmill": dict(per),
                "sample_hz": 10, "lag_ms": result}
    finally:
        for node in nodes:
            node.stop()


def backlog(state: Path, minutes: float, hz: float = 10.0) -> dict:
    """history.db with a walked session's records as the controller writes them (outbox on)."""
    store = HistoryStore(state, clinic=True)
    store.start()
    try:
        store.call(lambda conn: records.insert_patient(conn, PATIENT, time.time()))
        started = time.time() - minutes * 60
        sid = store.call(lambda conn: records.insert_session(conn, "P-1", started, minutes, "reverse", 1, 1.0))
        seconds = int(minutes * 60)
        per_s = int(hz)
        for s in range(seconds):
            rows = [(s + i / hz, 700.0, 1.0, "RUNNING", False, 250.0, 450.0) for i in range(per_s)]

            def op(conn, s=s, rows=rows):
                records.insert_samples(conn, sid, s * per_s, rows)
                records.update_session(conn, sid, duration_s=float(s + 1), distance_m=(s + 1) * 0.28,
                                       max_kmh=1.0, closest_mm=700.0)
            store.record(op)
            if s % 60 == 30:
                store.put(Event(time.monotonic(), EventKind.WARN, "warn_zone", "patient in the warn zone", ""))
        store.record(lambda conn: records.update_session(conn, sid, status="completed", ended_wall=time.time(),
                                                         end_reason="target reached"))
        assert store.flush(120.0)
        return {"samples": seconds * per_s, "outbox_rows": store.outbox[0]}
    finally:
        store.close()


def drain(server: PostgresServer, work: Path, minutes: float) -> dict:
    """Time to ship a ``minutes``-long session's backlog once the replicator starts."""
    server.create_database("bench_drain")
    clinic = server.clinic_config("bench_drain", "D")
    made = backlog(work / "D" / "state", minutes)
    node = ClinicTreadmill(work / "D", clinic, replicate=False, max_backoff_s=2.0).start()
    try:
        start = time.monotonic()
        node.start_replicator()
        if not wait_until(lambda: node.status()["storage"]["outbox"] == 0, 600.0, 0.05):
            raise RuntimeError(f"not drained in 10 minutes\n{node.log()}")
        drained = time.monotonic() - start
        with server.admin_connect("bench_drain") as conn:
            shipped = conn.execute("SELECT count(*) FROM samples").fetchone()[0]
        if shipped != made["samples"]:
            raise RuntimeError(f"{shipped} samples on the server, {made['samples']} made")
        return {"minutes": minutes, **made, "batch_rows": clinic.batch_rows, "drain_s": round(drained, 2),
                "rows_per_s": round(made["outbox_rows"] / drained)}
    finally:
        node.stop()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trips", type=int, default=300, help="trips with the server up, and as many down")
    parser.add_argument("--treadmills", type=int, default=3)
    parser.add_argument("--walk-s", type=float, default=60.0, help="how long the treadmills walk for the lag")
    parser.add_argument("--backlog-min", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="bench-clinic-") as tmp:
        work = Path(tmp)
        server = PostgresServer().start()
        try:
            result = {"trips": trips(server, work, args.trips),
                      "lag": lag(server, work, args.treadmills, args.walk_s),
                      "drain": drain(server, work, args.backlog_min)}
        finally:
            server.close()
    path = save("clinic", result)
    for phase in ("server_up", "server_down"):
        r = result["trips"][phase]
        s, c = r["sample_to_relay"], r["crossing_to_relay"]
        print(f"trips, replicator running, {phase.replace('_', ' ')}: {r['trips']} trips, missed {r['missed']}; "
              f"sample->relay median {s['median']:.2f} ms, p99 {s['p99']:.2f} ms, max {s['max']:.2f} ms; "
              f"crossing->relay median {c['median']:.1f} ms, p99 {c['p99']:.1f} ms, max {c['max']:.1f} ms")
    lag_ms = result["lag"]["lag_ms"]
    print(f"replication lag, {args.treadmills} treadmills at 10 Hz for {args.walk_s:g} s: median "
          f"{lag_ms['median']} ms, p95 {lag_ms['p95']} ms, p99 {lag_ms['p99']} ms, max {lag_ms['max']} ms "
          f"({lag_ms['n']} samples)")
    d = result["drain"]
    print(f"drain of a {d['minutes']:g}-minute backlog ({d['samples']} samples, {d['outbox_rows']} outbox rows): "
          f"{d['drain_s']} s ({d['rows_per_s']} rows/s, batches of {d['batch_rows']}) -> {path}")
    return result


if __name__ == "__main__":
    main()
