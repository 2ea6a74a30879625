"""Spot-notice watchers against a local HTTP server that answers in each provider's metadata format."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.config.schema import SpotConfig
from app.errors import ConfigError
from app.train import spot
from app.train.spot import SpotWatcher, make_probe, start_spot_watcher

INTERVAL = 0.05
AWS_ACTION = {"action": "terminate", "time": "2026-11-23T20:02:00Z"}
ALIBABA_TIME = "2026-11-23T20:00:00Z"


@dataclass
class FakeMetadata:
    """What the fake metadata service answers; ``notice_after`` = polls answered "no notice" first."""

    provider: str
    notice_after: int | None = None
    #: Override every answer to the poll path with this (status, body), e.g. a permanent 403.
    force: tuple[int, str] | None = None
    #: aws: tokens issued so far are revoked after this many polls (a 401 forces a refresh).
    revoke_tokens_after: int | None = None
    polls: int = 0
    tokens: list[str] = field(default_factory=list)
    valid_tokens: set[str] = field(default_factory=set)
    token_ttls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def noticed(self) -> bool:
        return self.notice_after is not None and self.polls > self.notice_after


POLL_PATHS = {
    "aws": "/latest/meta-data/spot/instance-action",
    "gcp": "/computeMetadata/v1/instance/preempted",
    "alibaba": "/latest/meta-data/instance/spot/termination-time",
}


def _make_handler(state: FakeMetadata) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            if state.provider != "aws" or self.path != "/latest/api/token":
                return self._send(405, "method not allowed")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
            if not ttl:
                return self._send(400, "missing ttl")
            with state.lock:
                token = f"token-{len(state.tokens)}"
                state.tokens.append(token)
                state.valid_tokens.add(token)
                state.token_ttls.append(ttl)
            self._send(200, token)

        def do_GET(self) -> None:
            if self.path != POLL_PATHS[state.provider]:
                return self._send(404, "not found")
            denied = self._check_headers()
            if denied:
                return self._send(*denied)
            with state.lock:
                state.polls += 1
                self._maybe_revoke()
                if state.force is not None:
                    return self._send(*state.force)
                noticed = state.noticed()
            self._send(*self._answer(noticed))

        def _check_headers(self) -> tuple[int, str] | None:
            if state.provider == "aws":
                if self.headers.get("X-aws-ec2-metadata-token") not in state.valid_tokens:
                    return 401, "unauthorized"
            if state.provider == "gcp" and self.headers.get("Metadata-Flavor") != "Google":
                return 403, "missing Metadata-Flavor: Google"
            return None

        def _maybe_revoke(self) -> None:
            if state.revoke_tokens_after is not None and state.polls == state.revoke_tokens_after:
                state.valid_tokens.clear()

        def _answer(self, noticed: bool) -> tuple[int, str]:
            if state.provider == "aws":
                return (200, json.dumps(AWS_ACTION)) if noticed else (404, "Not Found")
            if state.provider == "gcp":
                return 200, "TRUE" if noticed else "FALSE"
            return (200, ALIBABA_TIME) if noticed else (404, "Not Found")

    return Handler


@pytest.fixture
def metadata_server() -> Iterator:
    servers: list[ThreadingHTTPServer] = []

    def start(state: FakeMetadata) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.event = threading.Event()

    def __call__(self, reason: str) -> None:
        self.calls.append(reason)
        self.event.set()


def _watch(provider: str, endpoint: str, recorder: Recorder) -> SpotWatcher:
    cfg = SpotConfig(provider=provider, endpoint=endpoint, interval_s=INTERVAL)
    watcher = start_spot_watcher(cfg, recorder)
    assert watcher is not None
    return watcher


@pytest.mark.parametrize(
    "provider, expected",
    [
        ("aws", ["terminate", "2026-11-23T20:02:00Z"]),
        ("gcp", ["preempted"]),
        ("alibaba", ["2026-11-23T20:00:00Z"]),
    ],
)
def test_notice_after_some_polls_fires_once(metadata_server, provider: str, expected: list[str]) -> None:
    state = FakeMetadata(provider, notice_after=3)
    recorder = Recorder()
    watcher = _watch(provider, metadata_server(state), recorder)
    assert recorder.event.wait(5), "no notice seen"
    watcher.join(1)
    assert not watcher.is_alive()
    time.sleep(3 * INTERVAL)  # would poll and fire again if the watcher kept going
    assert len(recorder.calls) == 1
    assert all(part in recorder.calls[0] for part in expected), recorder.calls[0]
    assert state.polls == 4  # three "no notice" answers, then the notice, then nothing
    assert watcher.notice == recorder.calls[0]


def test_aws_token_requested_once_with_ttl_header(metadata_server) -> None:
    state = FakeMetadata("aws", notice_after=5)
    recorder = Recorder()
    _watch("aws", metadata_server(state), recorder)
    assert recorder.event.wait(5)
    assert state.tokens == ["token-0"]
    assert state.token_ttls == ["21600"]


def test_aws_token_refreshed_on_401(metadata_server) -> None:
    state = FakeMetadata("aws", notice_after=6, revoke_tokens_after=2)
    recorder = Recorder()
    _watch("aws", metadata_server(state), recorder)
    assert recorder.event.wait(5)
    assert state.tokens == ["token-0", "token-1"]
    assert "terminate" in recorder.calls[0]


def test_aws_token_refreshed_when_expired(metadata_server, monkeypatch) -> None:
    state = FakeMetadata("aws")
    probe = make_probe("aws", metadata_server(state))
    assert probe.check() is None
    assert probe.check() is None
    assert state.tokens == ["token-0"]
    monkeypatch.setattr(spot, "AWS_TOKEN_TTL_S", 0)  # the next token is already past its deadline
    probe._token_deadline = 0.0
    assert probe.check() is None
    assert probe.check() is None
    assert state.tokens == ["token-0", "token-1", "token-2"]


@pytest.mark.parametrize("provider", ["aws", "gcp", "alibaba"])
def test_no_notice_never_calls_and_stop_is_prompt(metadata_server, provider: str) -> None:
    state = FakeMetadata(provider, notice_after=None)
    recorder = Recorder()
    cfg = SpotConfig(provider=provider, endpoint=metadata_server(state), interval_s=10.0)
    watcher = start_spot_watcher(cfg, recorder)
    assert watcher is not None
    deadline = time.monotonic() + 5
    while state.polls < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    watcher.stop()
    assert not watcher.is_alive()
    assert time.monotonic() - started < 1.0  # a 10 s interval, yet stop() returns at once
    assert recorder.calls == []
    assert state.polls == 1


def test_no_notice_with_fast_polling(metadata_server) -> None:
    state = FakeMetadata("gcp", notice_after=None)
    recorder = Recorder()
    watcher = _watch("gcp", metadata_server(state), recorder)
    time.sleep(0.4)
    watcher.stop()
    assert not watcher.is_alive()
    assert state.polls >= 3
    assert recorder.calls == []


def test_gcp_without_flavor_header_is_rejected_by_server(metadata_server) -> None:
    """The fake service really enforces the header: a request without it gets 403."""
    state = FakeMetadata("gcp", notice_after=0)
    base = metadata_server(state)
    status, _ = spot._request("GET", base + POLL_PATHS["gcp"], {}, 2.0)
    assert status == 403
    assert make_probe("gcp", base).check() is not None  # the probe sends Metadata-Flavor: Google


@pytest.mark.parametrize(
    "provider, force",
    [
        ("aws", (403, "forbidden")),
        ("aws", (200, "<html>captive portal</html>")),
        ("gcp", (403, "missing Metadata-Flavor: Google")),
        ("gcp", (200, "maybe")),
        ("alibaba", (500, "oops")),
        ("alibaba", (200, "soon")),
    ],
)
def test_unexpected_answers_never_fire_and_warn_once(metadata_server, caplog, provider, force) -> None:
    state = FakeMetadata(provider, notice_after=0, force=force)
    recorder = Recorder()
    with caplog.at_level("DEBUG", logger="app.train.spot"):
        watcher = _watch(provider, metadata_server(state), recorder)
        deadline = time.monotonic() + 5
        while state.polls < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.is_alive()  # keeps polling
        watcher.stop()
    assert recorder.calls == []
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


def test_unreachable_endpoint_logs_debug_once_and_keeps_polling(caplog) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    recorder = Recorder()
    with caplog.at_level("DEBUG", logger="app.train.spot"):
        watcher = _watch("alibaba", f"http://127.0.0.1:{port}", recorder)
        deadline = time.monotonic() + 5
        while watcher.polls < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watcher.is_alive()
        watcher.stop()
    records = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(records) == 1
    assert records[0].levelname == "DEBUG"
    assert recorder.calls == []


def test_callback_error_is_logged_not_raised(metadata_server, caplog) -> None:
    state = FakeMetadata("gcp", notice_after=0)

    def boom(reason: str) -> None:
        raise RuntimeError("callback failed")

    with caplog.at_level("ERROR", logger="app.train.spot"):
        watcher = _watch("gcp", metadata_server(state), boom)  # type: ignore[arg-type]
        watcher.join(5)
    assert not watcher.is_alive()
    assert any("callback failed" in r.getMessage() for r in caplog.records)


def test_provider_none_starts_nothing() -> None:
    assert start_spot_watcher(SpotConfig(provider="none"), Recorder()) is None


def test_default_endpoints_and_bad_interval() -> None:
    assert make_probe("aws").base == "http://169.254.169.254"
    assert make_probe("gcp").base == "http://metadata.google.internal"
    assert make_probe("alibaba").base == "http://100.100.100.200"
    assert make_probe("gcp", "http://example.test:8080/").base == "http://example.test:8080"
    with pytest.raises(ConfigError, match="preempt.spot.interval_s"):
        start_spot_watcher(SpotConfig(provider="gcp", interval_s=0), Recorder())
