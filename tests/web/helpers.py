"""Small helpers for the dashboard tests: logging in and the CSRF header."""

from __future__ import annotations

from flask.testing import FlaskClient

PASSWORD = "correct horse battery"
THERAPIST = "Dana"


def csrf_headers(client: FlaskClient) -> dict[str, str]:
    """The X-CSRFToken header for this client's session (from GET /api/session)."""
    return {"X-CSRFToken": client.get("/api/session").get_json()["csrf_token"]}


def login(client: FlaskClient, name: str = THERAPIST, password: str = PASSWORD) -> dict[str, str]:
    """Log in; returns the CSRF header valid for the logged-in session."""
    response = client.post("/login", json={"name": name, "password": password}, headers=csrf_headers(client))
    assert response.status_code == 200, response.get_json()
    return {"X-CSRFToken": response.get_json()["csrf_token"]}
