"""Wrong credentials against a moto_server that enforces IAM auth: denied, classified, never retried.

moto accepts any credentials by default; with ``INITIAL_NO_AUTH_ACTION_COUNT=N`` it lets the first N
actions through and then checks every request's access key, signature and IAM policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import boto3
import pytest

from app.store import AccessDeniedError, open_store
from app.store.config import StoreConfig
from tests.conftest import start_moto_server, stop_process

BUCKET = "auth-bucket"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[str, dict[str, str]]]:
    """(endpoint, a real IAM key pair without any policy); the bucket exists."""
    # Three free actions: create the user, its access key and the bucket; everything after is checked.
    proc, url = start_moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    try:
        plain = {"endpoint_url": url, "region_name": "us-east-1"}
        creds = {"aws_access_key_id": "boot", "aws_secret_access_key": "boot"}
        iam = boto3.session.Session().client("iam", **plain, **creds)
        iam.create_user(UserName="trainer")
        key = iam.create_access_key(UserName="trainer")["AccessKey"]
        boto3.session.Session().client("s3", **plain, **creds).create_bucket(Bucket=BUCKET)
        yield url, {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        stop_process(proc)


def _store(url: str, monkeypatch: pytest.MonkeyPatch, key_id: str, secret: str):  # noqa: ANN202
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    cfg = StoreConfig(endpoint_url=url, region="us-east-1", addressing_style="path", backoff_base_s=0.01)
    return open_store(f"s3://{BUCKET}/ckpts", cfg)


@pytest.mark.parametrize(
    ("which", "code"),
    [
        ("unknown-key", "InvalidAccessKeyId"),
        ("wrong-secret", "SignatureDoesNotMatch"),
        ("no-policy", "AccessDenied"),
    ],
)
def test_bad_credentials_are_access_denied(
    auth_server: tuple[str, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    which: str,
    code: str,
) -> None:
    url, key = auth_server
    key_id, secret = {
        "unknown-key": ("AKIANOTAREALKEY00000", "nope"),
        "wrong-secret": (key["id"], "not-the-secret"),
        "no-policy": (key["id"], key["secret"]),
    }[which]
    store = _store(url, monkeypatch, key_id, secret)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(AccessDeniedError) as listed:
            store.list()
        with pytest.raises(AccessDeniedError) as put:
            store.put_bytes("step-1/meta.json", b"{}")
    line = str(listed.value)
    assert f"access denied to s3://{BUCKET}/ckpts" in line
    assert code in line
    assert "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY" in line
    assert f"s3://{BUCKET}/ckpts/step-1/meta.json" in str(put.value)
    assert listed.value.exit_code == 3
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # never retried
    assert secret not in caplog.text and secret not in line  # credentials never reach messages or logs
