"""Fixtures of the multi-node suite: three test hosts in network namespaces, an S3 server they all reach,
and one uninterrupted two-host run to compare resumed runs with. Skipped (with the reason) without root
or ``ip netns``. The namespaces are removed when the session ends, whatever happened, and leftovers of a
crashed earlier session are removed before new ones are made."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.multinode import netns
from tests.multinode.cluster import AWS_ENV, Job, events, finish, start_moto


@pytest.fixture(scope="session")
def net() -> Iterator[netns.Net]:
    why = netns.available()
    if why:
        pytest.skip(why)
    netns.clean_stale()
    made = netns.create(3)
    try:
        yield made
    finally:
        netns.destroy(made)


@pytest.fixture(scope="session")
def s3(net: netns.Net) -> Iterator[tuple[str, str]]:
    """(endpoint URL on the bridge, bucket name)."""
    import boto3

    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    proc, url = start_moto(net.gateway)
    try:
        bucket = f"mn-{uuid.uuid4().hex[:12]}"
        boto3.session.Session().client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        yield url, bucket
    finally:
        proc.kill()
        proc.wait()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def job_factory(net: netns.Net, s3: tuple[str, str], tmp_path: Path):
    """``job_factory(name, **settings)``: a job with its own checkpoint prefix and folders; every link
    is up again afterwards."""

    def make(name: str, **settings: object) -> Job:
        return Job(net, s3[0], s3[1], tmp_path / name, f"{name}-{uuid.uuid4().hex[:8]}", **settings)

    try:
        yield make
    finally:
        for host in net.hosts:
            netns.subprocess.run(["ip", "link", "set", host.veth, "up"], capture_output=True)


@pytest.fixture(scope="session")
def reference_sha(net: netns.Net, s3: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """``params_sha256`` of one uninterrupted two-host run of the scenarios' settings."""
    job = Job(net, s3[0], s3[1], tmp_path_factory.mktemp("mn_reference"), f"ref-{uuid.uuid4().hex[:8]}")
    launches = job.start(net.hosts[:2])
    codes, hung = finish(launches)
    assert codes == [0, 0] and not hung, launches[0].stderr[-3000:]
    (done,) = events(launches[0].log, "done")
    assert events(launches[1].log, "done")[0]["params_sha256"] == done["params_sha256"]
    return done["params_sha256"]
