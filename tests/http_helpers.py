"""A loopback HTTP server for download tests: per-path files and failure behaviour, requests recorded."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ETAG = '"v1"'


@dataclass
class Behaviour:
    """How the server answers one path."""

    status: int | None = None  # answer every GET with this error status
    ranges: bool = True  # honour Range (206) or always send the whole file (200)
    drops: list[int] = field(default_factory=list)  # per GET: send only this many body bytes, then close
    always_short: int | None = None  # every GET: send only this many body bytes, then close
    gate: threading.Event | None = None  # hold the body until set
    hold_after: int = 0  # with a gate: send this many body bytes first, then hold the rest until set


@dataclass
class Server:
    port: int
    files: dict[str, bytes] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str, auth: str = "") -> str:
        return f"http://{auth}127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [h for m, p, h in self.requests if m == "GET" and p.split("?")[0] == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002  (quiet)
        pass

    def do_GET(self) -> None:  # noqa: N802
        state = self.server.state  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        with state.lock:
            state.requests.append(("GET", self.path, {k.lower(): v for k, v in self.headers.items()}))
        how = state.behaviour.get(path, Behaviour())
        data = state.files.get(path)
        if how.status or data is None:
            self.send_error(how.status or 404)
            return
        start = 0
        rng = self.headers.get("Range", "")
        if how.ranges and rng.startswith("bytes=") and self.headers.get("If-Range", ETAG) == ETAG:
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", ETAG)
        self.send_header("Last-Modified", "Mon, 30 Nov 2026 10:00:00 GMT")
        self.end_headers()
        body = data[start:]
        if how.gate is not None:
            if how.hold_after:
                self.wfile.write(body[: how.hold_after])
                self.wfile.flush()
                body = body[how.hold_after :]
            how.gate.wait(60)
        cut = how.drops.pop(0) if how.drops else how.always_short
        if cut is None:
            self.wfile.write(body)
            return
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)


def serve() -> Iterator[Server]:
    """Run a server on 127.0.0.1 in a thread until the generator is closed (a pytest fixture body)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    state = Server(httpd.server_address[1])
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        for how in state.behaviour.values():
            if how.gate is not None:
                how.gate.set()
        httpd.shutdown()
        httpd.server_close()
