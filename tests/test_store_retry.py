"""Retries: the deterministic backoff core, and the S3 store behind a fault-injecting proxy.

The proxy sits between boto3 and a real moto_server, so every request, retry and injected fault is
counted on the wire: transient faults are retried and logged, permanent ones are not retried at all.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import EXIT_STORAGE
from app.store import AccessDeniedError, NotFoundError, TransientStorageError, open_store
from app.store.config import StoreConfig
from app.store.retry import RetryPolicy, retry_call
from app.store.s3 import S3Store
from tests.fault_proxy import FaultProxy, error, first_n, reset, slow_down

# -- the deterministic core -------------------------------------------------------------------------


def test_full_jitter_delays_are_capped_exponentials() -> None:
    policy = RetryPolicy(max_attempts=6, base_s=0.5, max_s=3.0)
    assert [policy.cap(a) for a in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.delay(a, rand=lambda: 0.5) for a in range(1, 6)] == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert policy.delay(3, rand=lambda: 0.0) == 0.0  # full jitter reaches down to zero
    assert policy.next_delay(5, rand=lambda: 0.999) == pytest.approx(2.997)
    assert policy.next_delay(6) is None  # six attempts made: budget spent
    assert RetryPolicy(max_attempts=1).next_delay(1) is None


def test_retry_call_retries_transient_only(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    policy = RetryPolicy(max_attempts=5, base_s=1.0, max_s=10.0)
    with caplog.at_level(logging.WARNING):
        result = retry_call(
            flaky,
            policy=policy,
            is_transient=lambda e: isinstance(e, ConnectionError),
            what="s3://b/k",
            sleep=sleeps.append,
            rand=lambda: 0.5,
        )
    assert result == "ok"
    assert sleeps == [0.5, 1.0]
    assert [r.getMessage().split(";")[1].strip() for r in caplog.records] == [
        "attempt 1/5 failed, retrying in 0.50s",
        "attempt 2/5 failed, retrying in 1.00s",
    ]
    assert all("s3://b/k" in r.getMessage() for r in caplog.records)

    def denied() -> None:
        raise PermissionError("no")

    with pytest.raises(PermissionError):
        retry_call(denied, policy=policy, is_transient=lambda e: False, what="x", sleep=sleeps.append)
    assert len(sleeps) == 2  # not retried


def test_retry_call_gives_up_with_transient_error() -> None:
    sleeps: list[float] = []

    def down() -> None:
        raise TimeoutError("timed out")

    with pytest.raises(TransientStorageError, match=r"s3://b/k: still failing after 3 attempts") as info:
        retry_call(
            down,
            policy=RetryPolicy(3, 1.0, 1.0),
            is_transient=lambda e: True,
            what="s3://b/k",
            sleep=sleeps.append,
        )
    assert len(sleeps) == 2
    assert info.value.exit_code == EXIT_STORAGE


# -- the S3 store through the fault proxy -------------------------------------------------------------


@pytest.fixture
def proxy(s3_server: str) -> Iterator[FaultProxy]:
    p = FaultProxy(s3_server).start()
    yield p
    p.stop()


@pytest.fixture
def store(proxy: FaultProxy, s3_bucket: str, s3_store_config: StoreConfig) -> S3Store:
    s3_store_config.endpoint_url = proxy.url
    store = open_store(f"s3://{s3_bucket}/ckpts", s3_store_config)
    assert isinstance(store, S3Store)
    return store


def retry_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "retrying" in r.getMessage()
    ]


def test_slow_down_is_retried_and_logged(
    store: S3Store, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.rule = first_n(2, slow_down(), match=lambda s: s.method == "PUT")
    with caplog.at_level(logging.WARNING):
        store.put_bytes("step-1/meta.json", b"{}")
    assert store.get_bytes("step-1/meta.json") == b"{}"
    assert proxy.count("PUT") == 3
    logs = retry_logs(caplog)
    assert len(logs) == 2
    assert "attempt 1/4" in logs[0] and "attempt 2/4" in logs[1]
    assert all(f"s3://{store.bucket}/ckpts/step-1/meta.json" in m and "503 SlowDown" in m for m in logs)


def test_connection_resets_are_retried(
    store: S3Store, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    store.put_bytes("k", b"payload")
    proxy.rule = first_n(2, reset(), match=lambda s: s.method == "GET")
    with caplog.at_level(logging.WARNING):
        assert store.get_bytes("k") == b"payload"
    assert proxy.count("GET") == 3
    assert len(retry_logs(caplog)) == 2


def test_only_the_failed_part_is_retried(store: S3Store, proxy: FaultProxy, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024))  # 3 parts of 5 MiB
    is_part = lambda s: s.method == "PUT" and "partNumber=2" in s.path  # noqa: E731
    proxy.rule = first_n(2, error(500, "InternalError"), match=is_part)
    store.upload_file(src, "big.bin")
    parts = [s for s in proxy.seen if s.method == "PUT" and "partNumber=" in s.path]
    assert len(parts) == 3 + 2  # parts 1 and 3 once, part 2 three times: the file was not restarted
    out = tmp_path / "back.bin"
    store.download_file("big.bin", out)
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_not_found_is_not_retried(
    store: S3Store, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), pytest.raises(NotFoundError, match="ckpts/missing"):
        store.get_bytes("missing")
    assert proxy.count("GET") == 1
    assert retry_logs(caplog) == []


def test_access_denied_is_not_retried(
    store: S3Store, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.rule = lambda s: error(403, "AccessDenied", "Access Denied")
    with caplog.at_level(logging.WARNING), pytest.raises(AccessDeniedError) as info:
        store.put_bytes("k", b"x")
    assert len(proxy.seen) == 1  # the existence check, refused once, never repeated
    assert f"s3://{store.bucket}/ckpts/k" in str(info.value)
    assert "AWS_ACCESS_KEY_ID" in str(info.value)
    assert retry_logs(caplog) == []


def test_store_down_past_the_budget(
    store: S3Store, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    proxy.rule = lambda s: slow_down()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING), pytest.raises(TransientStorageError) as info:
        store.get_bytes("step-1/model.safetensors")
    assert time.monotonic() - started < 5
    assert proxy.count() == store.cfg.max_attempts == 4
    assert f"s3://{store.bucket}/ckpts/step-1/model.safetensors" in str(info.value)
    assert "after 4 attempts" in str(info.value)
    assert len(retry_logs(caplog)) == 3


def test_unreachable_endpoint_is_transient(s3_store_config: StoreConfig, tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    s3_store_config.endpoint_url = f"http://127.0.0.1:{port}"
    store = open_store("s3://some-bucket/x", s3_store_config)
    with pytest.raises(TransientStorageError, match=r"s3://some-bucket/x/k: still failing after 4 attempts"):
        store.download_file("k", tmp_path / "k")
    assert os.listdir(tmp_path) == []


def test_delete_batches_of_1000(store: S3Store, proxy: FaultProxy) -> None:
    keys = [f"s/{i:05d}" for i in range(1001)]
    store.put_bytes(keys[0], b"x")
    store.put_bytes(keys[-1], b"x")
    before = proxy.count("POST")
    store.delete(keys)
    assert proxy.count("POST") - before == 2
    assert store.list() == []
