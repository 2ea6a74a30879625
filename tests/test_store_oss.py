"""OSS (and S3-compatible) client configuration, checked offline.

The wire check intercepts each request at botocore's ``before-send`` event, after signing, and answers
it locally: it shows the exact URL, headers and signature a real OSS endpoint would receive.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from app.errors import ConfigError
from app.store import open_store
from app.store.config import StoreConfig
from app.store.s3 import S3Store
from app.store.s3_client import client_kwargs, make_client


class _EmptyBody:
    """The raw body of a locally answered request."""

    def stream(self, **_: Any) -> Any:
        return iter([b""])


OSS_ENV = {"OSS_ACCESS_KEY_ID": "oss-id", "OSS_ACCESS_KEY_SECRET": "oss-secret"}


def test_oss_client_from_region() -> None:
    kwargs = client_kwargs("oss", StoreConfig(region="cn-hangzhou", addressing_style="path"), OSS_ENV)
    config = kwargs.pop("config")
    assert kwargs == {
        "service_name": "s3",
        "endpoint_url": "https://oss-cn-hangzhou.aliyuncs.com",
        "region_name": "cn-hangzhou",
        "aws_access_key_id": "oss-id",
        "aws_secret_access_key": "oss-secret",
    }
    assert config.s3 == {"addressing_style": "virtual"}  # forced: OSS refuses path style
    assert config.signature_version == "s3v4"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.retries == {"mode": "standard", "total_max_attempts": 1}


@pytest.mark.parametrize(
    ("cfg", "env", "endpoint", "region"),
    [
        (StoreConfig(), {"OSS_REGION": "cn-beijing"}, "https://oss-cn-beijing.aliyuncs.com", "cn-beijing"),
        (
            StoreConfig(),
            {"OSS_ENDPOINT": "oss-cn-shanghai-internal.aliyuncs.com"},
            "https://oss-cn-shanghai-internal.aliyuncs.com",
            "cn-shanghai",
        ),
        (
            StoreConfig(),
            {"OSS_ENDPOINT": "https://s3.oss-ap-southeast-1.aliyuncs.com"},
            None,
            "ap-southeast-1",
        ),
        (
            StoreConfig(endpoint_url="https://oss-eu-central-1.aliyuncs.com"),
            {"OSS_ENDPOINT": "https://ignored.example"},
            "https://oss-eu-central-1.aliyuncs.com",
            "eu-central-1",
        ),
        (
            StoreConfig(region="cn-qingdao"),
            {"OSS_REGION": "cn-beijing"},
            "https://oss-cn-qingdao.aliyuncs.com",
            None,
        ),
    ],
)
def test_oss_endpoint_resolution(
    cfg: StoreConfig, env: dict[str, str], endpoint: str | None, region: str | None
) -> None:
    kwargs = client_kwargs("oss", cfg, env)
    assert kwargs["endpoint_url"] == (endpoint or env.get("OSS_ENDPOINT"))
    assert kwargs["region_name"] == (region or cfg.region)


def test_oss_credentials_mapping() -> None:
    alibaba = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "a-id",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "a-secret",
        "OSS_REGION": "x1",
    }
    kwargs = client_kwargs("oss", StoreConfig(), alibaba)
    assert (kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"]) == ("a-id", "a-secret")
    both = {**alibaba, **OSS_ENV, "OSS_SESSION_TOKEN": "tok"}
    kwargs = client_kwargs("oss", StoreConfig(), both)
    assert (kwargs["aws_access_key_id"], kwargs["aws_session_token"]) == ("oss-id", "tok")
    half = {"OSS_ACCESS_KEY_ID": "only-id", "OSS_REGION": "x1"}  # incomplete pair: the AWS chain decides
    assert not any(k.startswith("aws_") for k in client_kwargs("oss", StoreConfig(), half))


def test_oss_without_endpoint_or_region_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OSS_ENDPOINT", "OSS_REGION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as info:
        open_store("oss://my-bucket/ckpts", StoreConfig())
    line = str(info.value)
    assert "oss:// needs an endpoint or a region" in line
    assert "OSS_ENDPOINT" in line and "OSS_REGION" in line
    assert info.value.exit_code == 2


def test_s3_checksums_relaxed_only_for_custom_endpoints() -> None:
    aws = client_kwargs("s3", StoreConfig(addressing_style="path"), {})
    assert "endpoint_url" not in aws
    assert aws["config"].request_checksum_calculation is None  # botocore's default on real AWS
    assert aws["config"].s3 == {"addressing_style": "path"}
    minio = client_kwargs("s3", StoreConfig(endpoint_url="http://minio:9000"), {})
    assert minio["endpoint_url"] == "http://minio:9000"
    assert minio["config"].request_checksum_calculation == "when_required"
    via_env = client_kwargs("s3", StoreConfig(), {"AWS_ENDPOINT_URL": "http://minio:9000"})
    assert via_env["config"].response_checksum_validation == "when_required"
    assert not any(k.startswith("aws_") for k in via_env)  # S3 credentials: the SDK chain only


def test_built_client_carries_the_settings() -> None:
    client = make_client(client_kwargs("oss", StoreConfig(region="cn-hangzhou"), OSS_ENV))
    assert client.meta.endpoint_url == "https://oss-cn-hangzhou.aliyuncs.com"
    assert client.meta.region_name == "cn-hangzhou"
    assert client.meta.config.s3["addressing_style"] == "virtual"


def test_oss_requests_on_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSS_ACCESS_KEY_ID", "oss-id")
    monkeypatch.setenv("OSS_ACCESS_KEY_SECRET", "oss-secret")
    monkeypatch.setenv("OSS_REGION", "cn-hangzhou")
    monkeypatch.delenv("OSS_ENDPOINT", raising=False)
    store = open_store("oss://my-bucket/runs/a", StoreConfig())
    assert isinstance(store, S3Store)
    sent: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        missing_key = request.method == "HEAD" and not request.url.endswith(".com/")  # HeadBucket: 200
        return AWSResponse(request.url, 404 if missing_key else 200, {"ETag": '"abc"'}, _EmptyBody())

    for client in (store._client, store._guarded_client()):
        client.meta.events.register("before-send.s3", answer)
    store.put_bytes("x.bin", b"0123456789")
    assert [r.method for r in sent] == ["HEAD", "HEAD", "PUT"]  # object, bucket (once), then the write
    request = sent[-1]
    assert request.url == "https://my-bucket.oss-cn-hangzhou.aliyuncs.com/runs/a/x.bin"
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
    assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=oss-id/")
    assert "/cn-hangzhou/s3/aws4_request" in headers["authorization"]
    assert headers["if-none-match"] == "*"  # the server refuses to replace an object created meanwhile
    assert "aws-chunked" not in headers.get("content-encoding", "")  # what OSS rejects
    assert not any(k.startswith("x-amz-checksum-") or k == "x-amz-sdk-checksum-algorithm" for k in headers)
    assert "oss-secret" not in str(headers)
