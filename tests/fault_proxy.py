"""A fault-injecting HTTP proxy on loopback, in front of a real S3 server, for retry tests.

Each request is counted and passed to ``rule(request) -> Fault | None``; ``None`` forwards it unchanged,
a :class:`Fault` answers with an S3-style error document or resets the connection instead.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["Seen", "Fault", "FaultProxy", "first_n", "slow_down", "reset", "error"]

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it (``path`` includes the query string)."""

    method: str
    path: str


@dataclass(frozen=True)
class Fault:
    """``status`` 0 means reset the TCP connection without answering."""

    status: int = 0
    code: str = ""
    message: str = ""


def slow_down() -> Fault:
    return Fault(503, "SlowDown", "Please reduce your request rate.")


def reset() -> Fault:
    return Fault(0)


def error(status: int, code: str, message: str = "injected") -> Fault:
    return Fault(status, code, message)


Rule = Callable[[Seen], "Fault | None"]


def first_n(n: int, fault: Fault, match: Callable[[Seen], bool] = lambda s: True) -> Rule:
    """A rule that injects ``fault`` into the first ``n`` requests that ``match``."""
    left = [n]
    lock = threading.Lock()

    def rule(seen: Seen) -> Fault | None:
        if not match(seen):
            return None
        with lock:
            if left[0] <= 0:
                return None
            left[0] -= 1
            return fault

    return rule


@dataclass
class FaultProxy:
    upstream: str
    rule: Rule = lambda seen: None
    seen: list[Seen] = field(default_factory=list)
    injected: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        parts = urlsplit(self.upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if method is None or s.method == method)

    def _decide(self, seen: Seen) -> Fault | None:
        with self._lock:
            self.seen.append(seen)
        fault = self.rule(seen)
        if fault is not None:
            with self._lock:
                self.injected.append(seen)
        return fault

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            conn.request(
                method, path, body=body if body or method in ("PUT", "POST") else None, headers=headers
            )
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


def _error_body(fault: Fault) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{fault.code}</Code><Message>{fault.message}</Message>"
        "<RequestId>fault-proxy</RequestId></Error>"
    ).encode()


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (quiet)
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault = proxy._decide(Seen(self.command, self.path))
            if fault is not None and fault.status == 0:
                self._reset()
                return
            if fault is not None:
                payload = _error_body(fault)
                self._reply(fault.status, [("Content-Type", "application/xml")], payload)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
            if length:
                headers["Content-Length"] = str(length)
            status, answer_headers, payload = proxy._forward(self.command, self.path, headers, body)
            size = dict((k.lower(), v) for k, v in answer_headers).get("content-length", str(len(payload)))
            kept = [(k, v) for k, v in answer_headers if k.lower() not in _HOP_HEADERS]
            self._reply(status, kept, payload, size if self.command == "HEAD" else None)

        def _reply(
            self, status: int, headers: list[tuple[str, str]], payload: bytes, size: str | None = None
        ) -> None:
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", size if size is not None else str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

    return Handler
