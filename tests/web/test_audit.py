"""The audit trail: a row naming the account for every state-changing request, anonymous stops by address,
failed logins, no passwords, append-only storage, a hash chain that names the row at fault, the admin's API."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest

from cli.main import main as cli_main
from tests.reliability.http_helpers import body_specs, enumerate_targets
from tests.web.helpers import ADMIN, PASSWORD, THERAPIST, csrf_headers, login
from web.accounts import ACCESS_DB
from web.audit import GENESIS_HASH, AuditTrail, Entry, row_hash

CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def _rows(state_dir, **filters) -> list[dict]:
    return AuditTrail(state_dir).rows(limit=1000, **filters)


def _newest(state_dir) -> dict:
    return _rows(state_dir)[0]


@pytest.fixture
def world(fake):
    """The fake controller READY, with a demo, patient P01 and one ended session."""
    fake.update(state="READY", reasons={}, demo=True)
    with fake.lock:
        fake.therapy.add_patient("P01")
        session_id = fake.therapy.add_session("P01", pain_after=None)["session_id"]
    return session_id


def test_every_state_changing_endpoint_leaves_a_row_naming_the_account(make_app, fake, state_dir, world):
    # One login per endpoint: the login limit is not under test here.
    app = make_app(fake.socket_path, {"LOGIN_RATE_LIMIT": "1000 per minute"})
    specs = body_specs(fake)
    targets = enumerate_targets(app, CHANGING, world)
    endpoints = {t.endpoint for t in targets}
    assert {"api.set_limits", "api.estop", "api.reset", "auth.login", "users.user_add",
            "history.patient_create", "history.session_pain"} <= endpoints
    seen = set()
    for target in targets:
        if target.path_fault or target.url in seen:
            continue
        seen.add(target.url)
        client = app.test_client()
        headers = login(client, ADMIN)
        before = len(_rows(state_dir))
        spec = specs.get(target.endpoint)
        body = dict(spec.valid) if spec else {}
        if target.endpoint == "auth.login":
            body = {"name": ADMIN, "password": PASSWORD}
        response = client.open(target.url, method=target.method, json=body, headers=headers)
        rows = _rows(state_dir)
        assert len(rows) == before + 1, f"{target.method} {target.url}: {len(rows) - before} rows"
        row = rows[0]
        rule = next(r.rule for r in app.url_map.iter_rules() if r.endpoint == target.endpoint)
        assert row["action"] == f"{target.method} {rule}", row
        assert row["target"] == target.url.split("?")[0]
        assert row["outcome"] == response.status_code
        assert (row["actor"], row["role"]) == (ADMIN, "admin"), f"{target.method} {target.url}: {row}"
        assert row["address"] == "127.0.0.1"
        assert PASSWORD not in row["detail"]


def test_a_change_names_the_account_in_the_controllers_event_log_too(clinic, fake, state_dir):
    client, headers = clinic
    assert client.put("/api/limits", json={"base_stop_mm": 260}, headers=headers).status_code == 200
    with fake.lock:
        command = fake.commands[-1]
    assert (command["command"], command["actor"], command["authorized"]) == ("set_limits", THERAPIST, True)
    row = _newest(state_dir)
    assert (row["actor"], row["action"], row["detail"]) == (THERAPIST, "PUT /api/limits", '{"base_stop_mm":260}')


def test_an_anonymous_stop_is_recorded_with_the_client_address(client, fake, state_dir):
    for path in ("/api/estop", "/api/stop"):
        assert client.post(path, environ_base={"REMOTE_ADDR": "192.168.4.21"}).status_code == 200
        row = _newest(state_dir)
        assert (row["actor"], row["role"], row["address"], row["target"], row["outcome"]) == \
            (None, None, "192.168.4.21", path, 200)
    with fake.lock:
        assert fake.commands[-1]["actor"] == "anonymous (192.168.4.21)"


def test_logins_and_failed_logins_are_recorded_without_a_password_or_a_typed_stranger(client, state_dir):
    headers = csrf_headers(client)
    client.post("/login", json={"name": THERAPIST, "password": "wrong guess 1"}, headers=headers)
    failed = _newest(state_dir)
    assert (failed["actor"], failed["outcome"], failed["action"]) == (None, 401, "POST /login")
    assert '"account":"Dana"' in failed["detail"] and "wrong guess" not in failed["detail"]
    client.post("/login", json={"name": "my password 123", "password": "x"}, headers=headers)
    stranger = _newest(state_dir)
    # A name no account has might be a password typed into the wrong field: not kept.
    assert "my password" not in stranger["detail"] and '"account":null' in stranger["detail"]
    login(client)
    ok = _newest(state_dir)
    assert (ok["actor"], ok["role"], ok["outcome"]) == (THERAPIST, "therapist", 200)
    assert PASSWORD not in ok["detail"]


def test_account_changes_are_recorded_with_passwords_removed(admin_client, state_dir):
    headers = csrf_headers(admin_client)
    assert admin_client.post("/api/users", json={"name": "Cleo", "role": "therapist", "password": "cleo secret 1"},
                             headers=headers).status_code == 201
    row = _newest(state_dir)
    assert (row["actor"], row["action"], row["target"]) == (ADMIN, "POST /api/users", "/api/users")
    assert '"name":"Cleo"' in row["detail"] and "cleo secret" not in row["detail"] and "(removed)" in row["detail"]
    assert admin_client.patch("/api/users/Cleo", json={"enabled": False}, headers=headers).status_code == 200
    assert _newest(state_dir)["target"] == "/api/users/Cleo"


def test_the_trail_is_append_only(state_dir, admin_client):
    admin_client.post("/api/stop")
    with sqlite3.connect(state_dir / ACCESS_DB) as conn:
        for sql in ("UPDATE audit SET actor = 'someone else'", "DELETE FROM audit"):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                conn.execute(sql)
    assert AuditTrail(state_dir).verify()[0] is True


def _tamper(state_dir, sql: str, *args) -> None:
    """What someone with the file could do: drop the guard, change rows, put it back."""
    conn = sqlite3.connect(state_dir / ACCESS_DB)
    with conn:
        conn.execute("DROP TRIGGER audit_no_update")
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute(sql, args)
    conn.close()


def _five_rows(state_dir) -> AuditTrail:
    trail = AuditTrail(state_dir)
    for n in range(5):
        trail.append(Entry(actor=THERAPIST, role="therapist", address="10.0.0.2", action="PUT /api/limits",
                           target="/api/limits", outcome=200, detail={"base_stop_mm": 250 + n}))
    return trail


def test_changing_one_row_makes_verify_fail_naming_that_row(state_dir, capsys):
    trail = _five_rows(state_dir)
    assert trail.verify() == (True, 5, f"5 rows, chain intact; newest row 5, hash {_newest(state_dir)['hash']}")
    assert cli_main(["audit", "verify", "--config", "systemd/config.example.toml", "--state-dir",
                     str(state_dir)]) == 0
    _tamper(state_dir, "UPDATE audit SET actor = ? WHERE id = 3", "Someone")
    intact, checked, message = trail.verify()
    assert (intact, checked) == (False, 2)
    assert message.startswith("row 3: its contents do not match its hash")
    assert cli_main(["audit", "verify", "--config", "systemd/config.example.toml", "--state-dir",
                     str(state_dir)]) == 1
    assert "row 3" in capsys.readouterr().err


def test_a_row_rewritten_with_a_fresh_hash_breaks_the_link_to_the_next(state_dir):
    trail = _five_rows(state_dir)
    row = next(r for r in _rows(state_dir) if r["id"] == 2)
    row["actor"] = "Someone"
    _tamper(state_dir, "UPDATE audit SET actor = ?, hash = ? WHERE id = 2", "Someone", row_hash(row["prev_hash"], row))
    intact, _, message = trail.verify()
    assert not intact and message.startswith("row 3: its prev_hash does not match row 2's hash")


def test_a_removed_row_is_named(state_dir):
    trail = _five_rows(state_dir)
    _tamper(state_dir, "DELETE FROM audit WHERE id = 4")
    intact, _, message = trail.verify()
    assert not intact and message.startswith("row 4: missing")


def test_the_chain_starts_from_the_genesis_hash_and_links_every_row(state_dir):
    _five_rows(state_dir)
    rows = sorted(_rows(state_dir), key=lambda r: r["id"])
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for before, after in zip(rows, rows[1:]):
        assert after["prev_hash"] == before["hash"]
    assert all(r["hash"] == row_hash(r["prev_hash"], r) for r in rows)


def test_the_api_filters_by_account_and_time_and_the_csv_has_the_same_rows(admin_client, state_dir):
    trail = AuditTrail(state_dir)
    for n, (who, wall) in enumerate([(THERAPIST, 1_800_000_000), ("Eli", 1_800_000_100), (THERAPIST, 1_800_000_200)]):
        trail.append(Entry(actor=who, role="therapist", address="10.0.0.3", action="POST /api/reset",
                           target="/api/reset", outcome=200, detail=None), wall=wall)
    body = admin_client.get("/api/audit?user=dana&since=2027-01-15T08:00:00Z&until=2027-01-15T08:03:30Z").get_json()
    assert [(r["actor"], r["time"]) for r in body["rows"]] == [
        (THERAPIST, "2027-01-15T08:03:20.000000Z"), (THERAPIST, "2027-01-15T08:00:00.000000Z")]
    text = admin_client.get("/api/audit.csv?user=Eli").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [r["actor"] for r in table] == ["Eli"] and table[0]["time"] == "2027-01-15T08:01:40.000000Z"
    assert admin_client.get("/api/audit/verify").get_json()["intact"] is True


@pytest.mark.parametrize("query, field", [("since=yesterday", "since"), ("until=2026-13-01", "until"),
                                          ("limit=0", "limit"), ("limit=5001", "limit"), ("before_id=-1", "before_id"),
                                          (f"before_id={2 ** 70}", "before_id"),
                                          ("since=9999-12-31T23:59:59-14:00", "since"),
                                          ("until=0001-01-01T00:00:00%2B14:00", "until")])
def test_a_bad_filter_is_400_naming_it(admin_client, query, field):
    response = admin_client.get(f"/api/audit?{query}")
    assert response.status_code == 400
    assert [e["field"] for e in response.get_json()["errors"]] == [field]


@pytest.mark.parametrize("body", [{"name": "my secret passphrase", "password": ""},
                                  {"name": "my secret passphrase " * 3, "password": "x"}])
def test_a_login_refused_for_its_shape_keeps_no_typed_name(client, state_dir, body):
    assert client.post("/login", json=body, headers=csrf_headers(client)).status_code == 400
    row = _newest(state_dir)
    assert (row["action"], row["outcome"], row["actor"]) == ("POST /login", 400, None)
    assert "passphrase" not in row["detail"]


def test_a_login_refused_by_the_rate_limit_keeps_no_typed_name(client, state_dir):
    headers = csrf_headers(client)
    for _ in range(5):
        client.post("/login", json={"name": "Nobody", "password": "guess guess"}, headers=headers)
    assert client.post("/login", json={"name": "my secret passphrase", "password": "x"},
                       headers=headers).status_code == 429
    row = _newest(state_dir)
    assert row["outcome"] == 429 and "passphrase" not in row["detail"]


def test_a_logged_in_stop_still_stops_when_the_accounts_cannot_be_read(therapist_client, fake, state_dir):
    (state_dir / ACCESS_DB).write_bytes(b"not a database at all, " * 100)
    response = therapist_client.post("/api/stop")
    assert response.status_code == 200
    with fake.lock:
        command = fake.commands[-1]
    # The accounts being unreadable, the stop is sent as an anonymous one (anyone may stop).
    assert command["command"] == "stop" and command["actor"].startswith("anonymous")
