"""Choose the storage backend for a URI: a local folder, ``file://``, ``s3://`` or ``oss://``.

URIs are parsed and checked here, once, so that a typo fails at startup with a one-line
:class:`~app.errors.ConfigError` instead of deep inside a save.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app.errors import ConfigError
from app.store.base import ObjectStore
from app.store.config import StoreConfig
from app.store.local import LocalStore

__all__ = ["StoreURI", "parse_uri", "open_store", "REMOTE_SCHEMES"]

log = logging.getLogger(__name__)

REMOTE_SCHEMES = ("s3", "oss")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
_FORMS = "a folder (/path or relative), file:///path, s3://bucket/prefix or oss://bucket/prefix"


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI: ``scheme`` is ``file``, ``s3`` or ``oss``."""

    scheme: str
    bucket: str = ""
    prefix: str = ""
    path: Path | None = None


def _bad(uri: str, why: str) -> ConfigError:
    return ConfigError(f"storage URI {uri!r}: {why}", hint=f"use {_FORMS}")


def _check_bucket(uri: str, bucket: str) -> None:
    if not bucket:
        raise _bad(uri, "no bucket name after the scheme")
    if not 3 <= len(bucket) <= 63:
        raise _bad(uri, f"bucket name {bucket!r} must be 3 to 63 characters long")
    if not _BUCKET_RE.match(bucket) or ".." in bucket:
        raise _bad(
            uri,
            f"bucket name {bucket!r} may contain only lowercase letters, digits, '.' and '-', "
            "and must start and end with a letter or digit",
        )


def _parse_remote(uri: str, scheme: str, rest: str) -> StoreURI:
    bucket, _, prefix = rest.partition("/")
    _check_bucket(uri, bucket)
    prefix = prefix.strip("/")
    if any(part in (".", "..") for part in prefix.split("/")) or "//" in prefix:
        raise _bad(uri, "the prefix may not contain '.', '..' or empty segments")
    return StoreURI(scheme=scheme, bucket=bucket, prefix=prefix)


def _parse_file(uri: str) -> StoreURI:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise _bad(uri, f"file:// URIs name no host (got {parts.netloc!r}); write file:///absolute/path")
    if not parts.path:
        raise _bad(uri, "no path after file://")
    return StoreURI(scheme="file", path=Path(unquote(parts.path)))


def parse_uri(uri: str) -> StoreURI:
    """Parse and check ``uri``; raise :class:`ConfigError` naming the URI and the accepted forms."""
    if not isinstance(uri, str) or not uri.strip():
        raise _bad(str(uri), "empty")
    uri = uri.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in unquote(uri)):
        raise _bad(uri, "contains a control character (e.g. a NUL byte or a newline)")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:", uri):
            raise _bad(
                uri, f"malformed or unsupported scheme {uri.split(':', 1)[0] + ':'!r} (expected 'scheme://')"
            )
        try:
            return StoreURI(scheme="file", path=Path(uri).expanduser())
        except RuntimeError:  # "~name" of a user that does not exist
            raise _bad(uri, f"{uri.split('/', 1)[0]!r}: no such user's home folder") from None
    scheme = scheme.lower()
    if scheme == "file":
        return _parse_file(uri)
    if scheme in REMOTE_SCHEMES:
        return _parse_remote(uri, scheme, rest)
    raise _bad(uri, f"unsupported scheme {scheme + '://'!r}")


def open_store(uri: str, config: StoreConfig | None = None) -> ObjectStore:
    """Open the backend for ``uri`` with transfer settings from ``config`` (defaults when None)."""
    parsed = parse_uri(uri)
    cfg = config if config is not None else StoreConfig()
    if parsed.scheme == "file":
        assert parsed.path is not None
        return LocalStore(parsed.path, uri=uri)
    from app.store.s3 import S3Store  # boto3 is imported only when a remote store is used

    return S3Store(parsed.bucket, parsed.prefix, cfg, flavor=parsed.scheme, uri=uri)
