"""Tell S3 failures apart, retry transient ones per request, and translate the rest into store errors.

Retries happen inside botocore's request loop through its ``needs-retry`` event, with our policy
(:mod:`app.store.retry`) instead of botocore's: so one throttled part of a 2 GB multipart upload is
retried alone instead of restarting the whole file, and every retry is logged with the object's URI.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from enum import Enum
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from app.errors import StorageError
from app.store.base import (
    AccessDeniedError,
    AlreadyExistsError,
    NoSuchBucketError,
    NotFoundError,
    TransientStorageError,
)
from app.store.retry import RetryPolicy

__all__ = ["Kind", "classify", "classify_response", "install_retry_hook", "translate", "credentials_hint"]

log = logging.getLogger(__name__)

TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
        "InternalError",
        "ServiceUnavailable",
        "PriorRequestNotComplete",
    }
)
DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
        "403",
        "Forbidden",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchUpload"})
#: Permanent server answers that happen to be 5xx: never retried.
PERMANENT_5XX = frozenset({"NotImplemented", "501"})


class Kind(Enum):
    NOT_FOUND = "not_found"
    NO_SUCH_BUCKET = "no_such_bucket"
    ACCESS_DENIED = "access_denied"
    ALREADY_EXISTS = "already_exists"
    NOT_IMPLEMENTED = "not_implemented"
    TRANSIENT = "transient"
    OTHER = "other"


def classify_response(code: str, status: int) -> Kind:
    """Classify an S3 error by its code and HTTP status (the code wins where both say something)."""
    if code == "NoSuchBucket":
        return Kind.NO_SUCH_BUCKET
    if code in PERMANENT_5XX or status == 501:
        return Kind.NOT_IMPLEMENTED
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return Kind.TRANSIENT
    if code in DENIED_CODES or status == 403:
        return Kind.ACCESS_DENIED
    if code in NOT_FOUND_CODES or status == 404:
        return Kind.NOT_FOUND
    if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
        return Kind.ALREADY_EXISTS
    return Kind.OTHER


def _code_status(exc: ClientError) -> tuple[str, int]:
    error = exc.response.get("Error", {}) or {}
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
    return str(error.get("Code", "")), int(status)


def classify(exc: BaseException) -> Kind:
    """Classify any exception raised by a boto3 call."""
    if isinstance(exc, ClientError):
        return classify_response(*_code_status(exc))
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return Kind.ACCESS_DENIED
    if type(exc).__name__ == "RetriesExceededError":  # s3transfer gave up re-reading a download stream
        return Kind.TRANSIENT
    if isinstance(exc, SSLError):
        return Kind.OTHER  # a certificate problem does not heal by waiting
    if isinstance(exc, HTTPClientError | BotoConnectionError | ConnectionError | TimeoutError):
        return Kind.TRANSIENT  # connect/read timeouts, refused or reset connections
    return Kind.OTHER


def _response_kind(response: Any, caught: BaseException | None) -> tuple[Kind, str]:
    """Classify what botocore hands the needs-retry event: a caught exception or (http, parsed)."""
    if caught is not None:
        return classify(caught), type(caught).__name__
    if not response:
        return Kind.OTHER, ""
    parsed = response[1] or {}
    status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0
    if status < 400:
        return Kind.OTHER, ""
    code = str((parsed.get("Error") or {}).get("Code", ""))
    return classify_response(code, int(status)), f"{status} {code}".strip()


def _request_uri(scheme: str, context: dict[str, Any]) -> str:
    params = context.get("input_params", {}) or {}
    return f"{scheme}://{params.get('Bucket', '?')}/{params.get('Key', params.get('Prefix', ''))}"


def install_retry_hook(
    client: Any,
    policy: RetryPolicy,
    scheme: str,
    rand: Callable[[], float] = random.random,
) -> None:
    """Make ``client`` retry transient failures of each request with ``policy``, logging each retry."""

    def needs_retry(
        response: Any = None,
        attempts: int = 1,
        caught_exception: BaseException | None = None,
        request_dict: dict[str, Any] | None = None,
        operation: Any = None,
        **_: Any,
    ) -> float | None:
        kind, reason = _response_kind(response, caught_exception)
        if kind is not Kind.TRANSIENT:
            return None
        wait = policy.next_delay(attempts, rand)
        uri = _request_uri(scheme, (request_dict or {}).get("context", {}))
        op = getattr(operation, "name", "request")
        if wait is None:
            log.warning(
                "%s: %s failed with %s on attempt %d/%d; giving up", uri, op, reason, attempts, attempts
            )
            return None
        log.warning(
            "%s: %s failed with %s (transient); attempt %d/%d, retrying in %.2fs",
            uri,
            op,
            reason,
            attempts,
            policy.max_attempts,
            wait,
        )
        return wait

    client.meta.events.register("needs-retry.s3", needs_retry, unique_id="warmstart-retry")


def credentials_hint(flavor: str) -> str:
    if flavor == "oss":
        return (
            "check OSS_ACCESS_KEY_ID/OSS_ACCESS_KEY_SECRET (or ALIBABA_CLOUD_ACCESS_KEY_*) and the RAM policy"
        )
    return "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role, and the bucket policy"


def translate(exc: BaseException, where: str, *, bucket: str, flavor: str, attempts: int) -> StorageError:
    """The store error for a failed boto3 call on ``where`` (a full URI), saying what to do."""
    kind = classify(exc)
    detail = _detail(exc)
    if kind is Kind.NO_SUCH_BUCKET:
        return NoSuchBucketError(
            f"bucket {bucket!r} does not exist ({where})",
            hint="create the bucket, or fix the URI or the endpoint (store.endpoint_url)",
        )
    if kind is Kind.NOT_FOUND:
        return NotFoundError(f"{where} does not exist", hint="check the URI and key")
    if kind is Kind.ACCESS_DENIED:
        return AccessDeniedError(f"access denied to {where}: {detail}", hint=credentials_hint(flavor))
    if kind is Kind.ALREADY_EXISTS:
        return AlreadyExistsError(
            f"{where} already exists; refusing to overwrite a committed object",
            hint="write a new key or pass overwrite=True",
        )
    if kind is Kind.TRANSIENT:
        return TransientStorageError(
            f"{where}: still failing after {attempts} attempts: {detail}",
            hint="the store is unreachable, overloaded or throttling; check the endpoint and retry the job later",
        )
    return StorageError(f"{where}: {detail}", hint="see the storage docs (docs/storage.md)")


def _detail(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code, status = _code_status(exc)
        message = (exc.response.get("Error", {}) or {}).get("Message", "")
        return f"{status} {code} {message}".strip()
    if isinstance(exc, BotoCoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
