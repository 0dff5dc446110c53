"""What accounts and the audit trail cost: a login's password check, and one audit row's write.

- **KDF**: werkzeug's scrypt (n=2**15, r=8, p=1, what ``web/accounts.py`` stores) for a right and a
  wrong password, and for an unknown name (checked against a dummy hash, so it costs the same).
- **Login**: ``POST /login`` through the Flask app (rate limits, session, audit row), against no controller.
- **Audit row**: ``AuditTrail.append`` (one SQLite transaction, synchronous=FULL so each row reaches the
  disk), and the same request path's cost without the row for comparison: a ``POST /api/stop`` to an
  offline controller with and without the after-request hook.
- **Verify**: ``audit verify`` over the rows written.

``python -m bench.access [--logins N] [--rows N]``; results in bench/results/access.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import percentiles, save

PASSWORD = "bench password 1"


def _times_ms(fn, n: int) -> dict[str, float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return percentiles(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=30)
    parser.add_argument("--rows", type=int, default=500)
    args = parser.parse_args(argv)

    from web import create_app
    from web.accounts import AccountStore
    from web.audit import AuditTrail, Entry
    from web.link import EXTENSION_KEY

    with tempfile.TemporaryDirectory(prefix="bench-access-") as tmp:
        state = Path(tmp) / "web"
        store = AccountStore(state)
        store.add("Dana", "therapist", PASSWORD)
        result: dict = {
            "kdf_right_ms": _times_ms(lambda: store.verify("Dana", PASSWORD), args.logins),
            "kdf_wrong_ms": _times_ms(lambda: store.verify("Dana", "wrong password"), args.logins),
            "kdf_unknown_name_ms": _times_ms(lambda: store.verify("Nobody", PASSWORD), args.logins),
        }
        app = create_app(ipc_socket=str(Path(tmp) / "none.sock"), state_dir=str(state),
                         test_config={"LOGIN_RATE_LIMIT": "100000 per minute",
                                      "ACCOUNT_LOGIN_RATE_LIMIT": "100000 per minute"})
        try:
            def login() -> None:
                client = app.test_client()
                token = client.get("/api/session").get_json()["csrf_token"]
                response = client.post("/login", json={"name": "Dana", "password": PASSWORD},
                                       headers={"X-CSRFToken": token})
                assert response.status_code == 200, response.get_json()
            result["login_request_ms"] = _times_ms(login, args.logins)

            trail = AuditTrail(state)
            entry = Entry(actor="Dana", role="therapist", address="192.168.1.20", action="PUT /api/limits",
                          target="/api/limits", outcome=200, detail={"base_stop_mm": 260})
            result["audit_append_ms"] = _times_ms(lambda: trail.append(entry), args.rows)

            client = app.test_client()
            result["stop_request_with_row_ms"] = _times_ms(lambda: client.post("/api/stop"), args.rows)
            from web.audit_api import record
            app.after_request_funcs[None].remove(record)
            result["stop_request_without_row_ms"] = _times_ms(lambda: client.post("/api/stop"), args.rows)
        finally:
            app.extensions[EXTENSION_KEY].close()
        rows = len(trail.rows(limit=1_000_000))
        start = time.perf_counter()
        intact, checked, _ = trail.verify()
        result["verify"] = {"rows": checked, "intact": intact, "ms": (time.perf_counter() - start) * 1000}
        assert intact and checked == rows
    save("access", result)
    for key, value in result.items():
        if isinstance(value, dict) and "median" in value:
            print(f"{key:32s} median {value['median']:7.2f} ms  p99 {value['p99']:7.2f} ms  (n={value['n']})")
    print(f"{'verify':32s} {result['verify']['rows']} rows in {result['verify']['ms']:.1f} ms")
    return result


if __name__ == "__main__":
    main()
