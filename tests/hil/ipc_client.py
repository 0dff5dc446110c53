"""A raw client of the controller's API socket for the HIL tests: JSON lines, any bytes."""

from __future__ import annotations

import json
import socket
from pathlib import Path


class JsonLinesClient:
    """A raw client of the API socket: a request line out, its reply line back; pushes are kept apart."""

    def __init__(self, path: str | Path, timeout_s: float = 5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        try:
            self.sock.connect(str(path))
        except OSError:
            self.sock.close()
            raise
        self.buffer = b""
        self.pushes: list[dict] = []
        self._next_id = 0

    def read(self) -> dict:
        """The next line from the controller, reply or push."""
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            assert chunk, "the controller closed the connection"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def call(self, method: str, params: dict | None = None) -> dict:
        """The whole reply to one request."""
        self._next_id += 1
        request_id = self._next_id
        self.send(json.dumps({"id": request_id, "method": method, "params": params or {}}).encode() + b"\n")
        return self.reply_to(request_id)

    def send(self, data: bytes) -> None:
        """Raw bytes, well formed or not."""
        self.sock.sendall(data)

    def reply_to(self, request_id) -> dict:
        """The reply with this id; pushes met on the way are kept apart."""
        while True:
            message = self.read()
            if "push" in message:
                self.pushes.append(message)
            elif message.get("id") == request_id:
                return message

    def ok(self, method: str, params: dict | None = None):
        """The result of a request that must succeed."""
        reply = self.call(method, params)
        assert reply["ok"] is True, f"{method} {params}: {reply}"
        return reply["result"]

    def refused(self, method: str, params: dict | None = None) -> dict:
        """The error of a request that must be refused."""
        reply = self.call(method, params)
        assert reply["ok"] is False, f"{method} {params} was accepted: {reply}"
        return reply["error"]

    def next_push(self) -> dict:
        """The next pushed status (subscribed connections)."""
        if self.pushes:
            return self.pushes.pop(0)["status"]
        message = self.read()
        assert message.get("push") == "status", message
        return message["status"]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> JsonLinesClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
