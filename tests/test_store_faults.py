"""Error classification on real botocore exception objects, for codes a local server cannot produce."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    SSLError,
)

from app.store import (
    AccessDeniedError,
    AlreadyExistsError,
    NoSuchBucketError,
    NotFoundError,
    TransientStorageError,
)
from app.store.s3_faults import Kind, classify, translate


def client_error(code: str, status: int, op: str = "GetObject") -> ClientError:
    body = {
        "Error": {"Code": code, "Message": f"{code} message"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(body, op)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (client_error("NoSuchKey", 404), Kind.NOT_FOUND),
        (client_error("404", 404, "HeadObject"), Kind.NOT_FOUND),
        (client_error("NoSuchBucket", 404), Kind.NO_SUCH_BUCKET),
        (client_error("AccessDenied", 403), Kind.ACCESS_DENIED),
        (client_error("InvalidAccessKeyId", 403), Kind.ACCESS_DENIED),
        (client_error("SignatureDoesNotMatch", 403), Kind.ACCESS_DENIED),
        (client_error("ExpiredToken", 400), Kind.ACCESS_DENIED),
        (client_error("403", 403, "HeadObject"), Kind.ACCESS_DENIED),
        (client_error("SlowDown", 503), Kind.TRANSIENT),
        (client_error("ServiceUnavailable", 503), Kind.TRANSIENT),
        (client_error("InternalError", 500), Kind.TRANSIENT),
        (client_error("RequestTimeout", 400), Kind.TRANSIENT),
        (client_error("Throttling", 400), Kind.TRANSIENT),
        (client_error("TooManyRequests", 429), Kind.TRANSIENT),
        (client_error("BadGateway", 502), Kind.TRANSIENT),
        (client_error("NotImplemented", 501), Kind.NOT_IMPLEMENTED),
        (client_error("PreconditionFailed", 412, "PutObject"), Kind.ALREADY_EXISTS),
        (client_error("InvalidArgument", 400), Kind.OTHER),
        (EndpointConnectionError(endpoint_url="http://x"), Kind.TRANSIENT),
        (ConnectTimeoutError(endpoint_url="http://x"), Kind.TRANSIENT),
        (ReadTimeoutError(endpoint_url="http://x"), Kind.TRANSIENT),
        (ConnectionClosedError(endpoint_url="http://x"), Kind.TRANSIENT),
        (ConnectionResetError(104, "reset"), Kind.TRANSIENT),
        (SSLError(endpoint_url="http://x", error="bad cert"), Kind.OTHER),
        (NoCredentialsError(), Kind.ACCESS_DENIED),
        (ValueError("x"), Kind.OTHER),
    ],
)
def test_classify(exc: BaseException, kind: Kind) -> None:
    assert classify(exc) is kind


@pytest.mark.parametrize(
    ("exc", "cls", "words"),
    [
        (client_error("NoSuchKey", 404), NotFoundError, "s3://b/p/k does not exist"),
        (client_error("NoSuchBucket", 404), NoSuchBucketError, "bucket 'b' does not exist (s3://b/p/k)"),
        (client_error("InvalidAccessKeyId", 403), AccessDeniedError, "or the instance role"),
        (client_error("PreconditionFailed", 412), AlreadyExistsError, "refusing to overwrite"),
        (
            client_error("SlowDown", 503),
            TransientStorageError,
            "still failing after 6 attempts: 503 SlowDown",
        ),
        (NoCredentialsError(), AccessDeniedError, "Unable to locate credentials"),
    ],
)
def test_translate_messages(exc: BaseException, cls: type, words: str) -> None:
    error = translate(exc, "s3://b/p/k", bucket="b", flavor="s3", attempts=6)
    assert isinstance(error, cls)
    assert words in str(error)
    assert error.exit_code == 3


def test_oss_denied_hint_names_oss_variables() -> None:
    error = translate(client_error("AccessDenied", 403), "oss://b/k", bucket="b", flavor="oss", attempts=1)
    assert "OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET" in str(error)
