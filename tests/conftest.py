"""Shared fixtures: a real S3 server (moto_server) on loopback, fresh buckets, and store URIs per backend.

``store_uri`` is parametrized over every backend, so a test that takes it (or ``open_test_store``) is a
contract test run against the local folder store and the S3 store alike.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.store import ObjectStore, open_store
from app.store.config import StoreConfig

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
#: Variables that would point boto3 at real accounts or other endpoints during tests.
_CLEARED_ENV = (
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto_server(
    extra_env: dict[str, str] | None = None, timeout_s: float = 30.0
) -> tuple[subprocess.Popen, str]:
    """Start ``moto_server`` on a free loopback port and wait until it answers; return (process, URL)."""
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, **(extra_env or {})}
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto_server exited with {proc.returncode} before answering on {url}")
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"moto_server did not answer on {url} within {timeout_s}s")


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """The endpoint URL of a real moto S3 server on loopback, with fake credentials in the environment."""
    saved = {name: os.environ.get(name) for name in (*FAKE_AWS_ENV, *_CLEARED_ENV)}
    for name in _CLEARED_ENV:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENV)
    proc, url = start_moto_server()
    try:
        yield url
    finally:
        stop_process(proc)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@functools.lru_cache(maxsize=4)
def s3_client(endpoint: str):  # noqa: ANN201  (a boto3 S3 client)
    """A plain boto3 client for test setup (creating buckets, reading raw objects)."""
    import boto3

    return boto3.session.Session().client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_server: str) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client(s3_server).create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store_config(s3_server: str) -> StoreConfig:
    """Store settings for the moto server: path addressing, 5 MiB parts, fast retries."""
    return StoreConfig(
        endpoint_url=s3_server,
        region="us-east-1",
        addressing_style="path",
        part_size_mb=5,
        max_concurrency=4,
        max_attempts=4,
        backoff_base_s=0.01,
        backoff_max_s=0.05,
        connect_timeout_s=5.0,
        read_timeout_s=10.0,
    )


@pytest.fixture(params=["local", "s3"])
def store_backend(request: pytest.FixtureRequest) -> str:
    """The backend a contract test runs against: "local" or "s3"."""
    return request.param


@pytest.fixture
def store_uri(store_backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A fresh, empty store root URI for each backend: a tmp folder, or s3://<fresh bucket>/ckpts."""
    if store_backend == "local":
        return str(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return f"s3://{bucket}/ckpts"


@pytest.fixture
def open_test_store(request: pytest.FixtureRequest) -> Callable[[str], ObjectStore]:
    """``open_test_store(uri)``: open_store with the moto settings for s3:// URIs, defaults otherwise."""

    def _open(uri: str) -> ObjectStore:
        if uri.startswith(("s3://", "oss://")):
            return open_store(uri, request.getfixturevalue("s3_store_config"))
        return open_store(uri, None)

    return _open


@pytest.fixture(scope="session")
def two_process_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run folder of one uninterrupted `warmstart launch` of ``LAUNCH_LONG`` (shared: ~20 s)."""
    from tests.signal_helpers import launch_cmd
    from tests.train_helpers import ROOT, clean_env

    root = tmp_path_factory.mktemp("two_process_reference")
    done = subprocess.run(launch_cmd(root / "run", root / "log"), cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run"
