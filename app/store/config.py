"""Typed configuration of object-store transfers (the ``store:`` section). Never holds credentials.

Credentials come only from the environment or the SDK's own chain (see docs/storage.md); there is
deliberately no field for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from app.config.typed import limits
from app.errors import ConfigError
from app.redact import redact_text

__all__ = ["StoreConfig", "check_uri_scheme", "check_endpoint"]

_SCHEMES = ("file://", "s3://", "oss://")


def check_uri_scheme(where: str, uri: str, *, also: str = "") -> None:
    """Catch a wrong scheme when the config loads, not minutes later when a store is opened.

    ``also`` names forms the field accepts besides stores (``init.from``: an http(s) file URL).
    """
    if "://" in uri and not uri.startswith(_SCHEMES):
        forms = "a folder, file://, s3://bucket/prefix" + (
            f", oss://bucket/prefix or {also}" if also else " or oss://bucket/prefix"
        )
        raise ConfigError(f"{where}: {uri!r} has an unsupported scheme (use {forms})")


def check_endpoint(where: str, url: str) -> None:
    """An endpoint is ``http(s)://host[:port][/path]`` or a bare ``host[:port]`` (https is assumed)."""
    full = url if "://" in url else "https://" + url
    try:
        parts = urlsplit(full)
        ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        ok = ok and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:  # e.g. a bad port or an unclosed "[" (IPv6)
        ok = False
    if not ok or any(c.isspace() or ord(c) < 32 for c in url):
        raise ConfigError(
            f"{where}: {redact_text(url)!r} is not an endpoint URL",
            hint="write http(s)://host[:port], e.g. http://127.0.0.1:9000 or https://oss-cn-hangzhou.aliyuncs.com",
        )


#: S3's smallest allowed multipart part (except the last one).
MIN_PART_SIZE_MB = 5
#: S3's largest allowed part (5 GiB).
MAX_PART_SIZE_MB = 5 * 1024
#: Upper bound of every timeout and backoff wait, seconds (an hour): larger ones overflow socket timers.
MAX_WAIT_S = 3600.0


@dataclass
class StoreConfig:
    #: S3-compatible endpoint (MinIO, moto_server, OSS). None = the SDK default (AWS, or AWS_ENDPOINT_URL),
    #: or for oss:// the endpoint from OSS_ENDPOINT / the region.
    endpoint_url: str | None = None
    #: Signing region. None = the SDK chain (AWS_REGION / AWS_DEFAULT_REGION / profile); for oss:// OSS_REGION.
    region: str | None = None
    #: "path" for MinIO/moto on a bare host:port, "virtual" for OSS (forced), "auto" lets botocore decide.
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    #: Multipart part size, and the size above which transfers go multipart (MiB, >= 5); see docs/storage.md.
    part_size_mb: int = field(default=32, metadata=limits(ge=MIN_PART_SIZE_MB, le=MAX_PART_SIZE_MB))
    #: Parts transferred in parallel per file.
    max_concurrency: int = field(default=8, metadata=limits(ge=1, le=256))
    #: Tries per request in all (1 = never retry); only transient errors are retried.
    max_attempts: int = field(default=6, metadata=limits(ge=1, le=100))
    #: Backoff: retry n waits a uniform random time in [0, min(backoff_max_s, backoff_base_s * 2**(n-1))).
    backoff_base_s: float = field(default=0.5, metadata=limits(ge=0, le=MAX_WAIT_S))
    #: Upper bound of one backoff wait, seconds.
    backoff_max_s: float = field(default=20.0, metadata=limits(ge=0, le=MAX_WAIT_S))
    #: Seconds to establish a connection before it counts as a transient failure.
    connect_timeout_s: float = field(default=10.0, metadata=limits(gt=0, le=MAX_WAIT_S))
    #: Seconds without data on an open connection before it counts as a transient failure.
    read_timeout_s: float = field(default=60.0, metadata=limits(gt=0, le=MAX_WAIT_S))
    #: Send ``If-None-Match: *`` on uploads that must not overwrite, so the server itself refuses to
    #: replace an object created concurrently. Switched off automatically if the server answers 501.
    conditional_writes: bool = True

    def validate(self, path: str = "store") -> None:
        if self.endpoint_url is not None:
            check_endpoint(f"{path}.endpoint_url", self.endpoint_url)
        if self.part_size_mb < MIN_PART_SIZE_MB:
            raise ConfigError(
                f"{path}.part_size_mb ({self.part_size_mb}) must be at least {MIN_PART_SIZE_MB}"
            )
        if self.max_concurrency < 1:
            raise ConfigError(f"{path}.max_concurrency ({self.max_concurrency}) must be at least 1")
        if self.max_attempts < 1:
            raise ConfigError(
                f"{path}.max_attempts ({self.max_attempts}) must be at least 1 (1 = no retries)"
            )
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ConfigError(
                f"{path}.backoff_base_s ({self.backoff_base_s}) must be >= 0 and <= "
                f"backoff_max_s ({self.backoff_max_s})"
            )
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigError(f"{path}: connect_timeout_s and read_timeout_s must be positive")
