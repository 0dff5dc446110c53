"""Import rules of web/ (the dashboard never reaches hardware, and takes from the controller only
what both processes share) and JSON answers for routing errors."""

from __future__ import annotations

import ast
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
#: The config, the CSV layouts shared with the export command, the one atomic file writer of both
#: processes, the reading of the dashboard's certificate it shares with the doctor, and the socket's
#: client side that every client of the controller shares (ipc_client.py); nothing else
#: of the controller (its rules stay in the controller, which is asked).
ALLOWED_MODULES = ("controller.config", "controller.storage.export_formats", "controller.files",
                   "controller.certificate", "controller.ipc_client")


def _imports(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_web_never_imports_hardware_and_takes_only_the_shared_modules_from_controller():
    offending = []
    for path in sorted(WEB.rglob("*.py")):
        for module, name in _imports(path):
            top = module.split(".")[0]
            if top == "hardware" or (top == "controller" and module not in ALLOWED_MODULES):
                offending.append(f"{path.name}: {module} {name}".strip())
    assert offending == []


def test_a_wrong_method_is_a_json_405_with_allow(client):
    response = client.get("/api/estop")
    assert response.status_code == 405
    assert response.get_json()["ok"] is False
    assert "POST" in response.headers["Allow"]


def test_an_unknown_path_is_a_json_404(client):
    response = client.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"
