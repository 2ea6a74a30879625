"""Fetch an http(s) ``init.from`` file once into a local cache, and hand back its path and sha256.

The cache folder is ``WARMSTART_CACHE`` (default ``$XDG_CACHE_HOME/warmstart/downloads``, else
``~/.cache/warmstart/downloads``). A URL's file there is ``<16 hex of sha256(URL)>-<last path segment>``,
the segment reduced to ``[A-Za-z0-9._-]``: nothing from the URL can climb out of the folder. A file found
there is used without network, so one placed by hand works offline (checked against ``init.sha256``).

The transfer (:mod:`app.checkpoint.http_get`) writes ``<file>.part``, resumes it with an HTTP Range request
when the server and the file's validator allow, fsyncs it and renames it into place, so a reader sees the
whole file or none. A ``fcntl`` lock on ``<file>.lock`` makes concurrent ranks and processes download once:
the others wait and reuse the file. A digest that differs from ``init.sha256`` moves the cached file aside
(``<file>.rejected``) and stops with a :class:`~app.errors.CheckpointError`; an unreachable server, a 404
or retries spent stop with a :class:`~app.errors.StorageError` (exit 3) naming the URL, credentials
redacted, and the cache path where the file can be placed by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from app import cancel
from app.checkpoint.http_get import download
from app.checkpoint.tensorio import sha256_file
from app.errors import CheckpointError, ConfigError, StorageError
from app.redact import redact_url
from app.store.config import StoreConfig

__all__ = [
    "CACHE_ENV",
    "Fetched",
    "is_http",
    "check_http_url",
    "check_sha256",
    "cache_root",
    "cache_path",
    "fetch",
]

log = logging.getLogger(__name__)

#: The environment variable naming the download cache folder.
CACHE_ENV = "WARMSTART_CACHE"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100


@dataclass(frozen=True)
class Fetched:
    """A cached copy of a URL: where it is, its sha256, and whether this call downloaded it."""

    path: Path
    sha256: str
    downloaded: bool


def is_http(uri: str | None) -> bool:
    return bool(uri) and uri.strip().lower().startswith(("http://", "https://"))


def check_http_url(where: str, url: str) -> None:
    """An ``init.from`` URL is ``http(s)://host[:port]/path/to/file``: no fragment, no control characters."""
    try:
        parts = urlsplit(url.strip())
        ok = bool(parts.hostname) and (parts.port is None or 0 < parts.port < 65536)
    except ValueError:  # a bad port, an unclosed "[" (IPv6)
        ok = False
    problem = None if ok else "names no host (or a bad port)"
    if ok and any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in unquote(url.strip())):
        problem = "contains whitespace or a control character"
    elif ok and "#" in url:
        problem = "has a #fragment (a #tag applies to a checkpoint root, not to a downloaded file)"
    elif ok and not parts.path.rsplit("/", 1)[-1]:
        problem = "names no file (no path after the host, or it ends in '/')"
    if problem:
        raise ConfigError(
            f"{where}: {redact_url(url)!r} {problem}",
            hint="write http(s)://host[:port]/path/file, e.g. https://example.com/models/resnet50.pdparams",
        )


def check_sha256(where: str, value: str) -> str:
    """``value`` as 64 lower-case hex digits (upper case accepted), else a ConfigError naming ``where``."""
    digest = value.strip().lower()
    if not _SHA256_RE.match(digest):
        raise ConfigError(
            f"{where}: {value!r} is not a sha256 digest",
            hint="give the 64 hex digits that `sha256sum FILE` prints",
        )
    return digest


def cache_root() -> Path:
    """``WARMSTART_CACHE``, else ``$XDG_CACHE_HOME/warmstart/downloads``, else ``~/.cache/...``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path("~/.cache").expanduser())
    return Path(base).absolute() / "warmstart" / "downloads"


def cache_path(url: str, root: Path | None = None) -> Path:
    """Where ``url``'s file is cached: a hash of the whole URL (without fragment) + a readable name."""
    url = url.strip().split("#", 1)[0]
    key = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    name = _NAME_RE.sub("_", name).lstrip(".")[-MAX_NAME:] or "download"
    return (root or cache_root()) / f"{key}-{name}"


@contextlib.contextmanager
def _locked(dest: Path, shown: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<dest>.lock`` (never deleted: removing a lock file races its users)."""
    lock = dest.with_name(dest.name + ".lock")
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(
            f"cannot open the download lock {lock}: {exc.strerror or exc}",
            hint=f"set {CACHE_ENV} to a writable folder",
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process downloading %s (lock %s)", shown, lock)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _reject(dest: Path, shown: str, digest: str, expected: str) -> CheckpointError:
    aside = dest.with_name(dest.name + ".rejected")
    os.replace(dest, aside)
    return CheckpointError(
        f"{shown} (cached at {dest}) has sha256 {digest}, but init.sha256 pins {expected}; the file was "
        f"not used and was moved to {aside}",
        hint="check init.sha256 and the URL; the next run downloads the file again",
    )


def _cache_dir(dest: Path) -> None:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the download cache folder {dest.parent}: {exc.strerror or exc}",
            hint=f"set {CACHE_ENV} to a writable folder",
        ) from None


def fetch(url: str, store_cfg: StoreConfig | None = None, *, expected_sha256: str | None = None) -> Fetched:
    """The cached file for ``url``: downloaded on first use (under the lock), verified against a pin."""
    cfg = store_cfg if store_cfg is not None else StoreConfig()
    url = url.strip()
    check_http_url("URL", url)
    shown = redact_url(url)
    dest = cache_path(url)
    _cache_dir(dest)
    doing = f"downloading {shown} (what was received stays in {dest}.part; the next run resumes it)"
    with cancel.interruptible(doing), _locked(dest, shown):
        downloaded = not dest.is_file()
        if downloaded:
            log.info("downloading %s to %s", shown, dest)
            download(url, dest, cfg)
        else:
            log.info("using the cached copy of %s: %s", shown, dest)
        digest = sha256_file(dest)
        if expected_sha256 and digest != expected_sha256:
            raise _reject(dest, shown, digest, expected_sha256)
    log.info("%s: sha256 %s", shown, digest)
    return Fetched(dest, digest, downloaded)
