"""One HTTP(S) file transfer into ``<dest>.part``: resumed with Range when it can be, size-checked,
fsynced and renamed to ``dest``; dropped connections retried with backoff.

stdlib ``urllib`` only: it follows redirects and honours the standard ``http_proxy`` / ``https_proxy`` /
``no_proxy`` variables as curl and pip do, and reads no other file or variable (no ``.netrc``).
Credentials written in the URL (``https://user:pass@host/...``) are sent as Basic auth to that host only,
never to a redirect target, and never appear in a message or log (:mod:`app.redact`).

Resume: ``<dest>.part.json`` keeps the validator of the partial file (ETag, Last-Modified, total length).
A retry asks for ``Range: bytes=<have>-`` with ``If-Range``; a ``206`` whose ``Content-Range`` starts at
``have`` and whose validator and total match is appended, anything else (``200``: no Range support or a
changed file; a mismatching ``206``; ``416``) restarts from byte 0. The byte count is checked against
``Content-Length`` / the ``Content-Range`` total. Timeouts, resets, short bodies, 408/425/429 and 5xx are
transient (retried per ``store.max_attempts`` / ``backoff_*``); other 4xx stop at once.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from app import __version__
from app.errors import StorageError
from app.redact import redact_url
from app.store.base import AccessDeniedError, NotFoundError, TransientStorageError
from app.store.config import StoreConfig
from app.store.retry import RetryPolicy, retry_call

__all__ = ["download"]

log = logging.getLogger(__name__)

CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_TRANSIENT_CODES = (408, 425, 429)


class _Dropped(Exception):
    """A transient failure of one attempt: the next attempt resumes or restarts."""


@dataclass(frozen=True)
class _Job:
    url: str
    shown: str  # the URL as messages show it (credentials redacted)
    dest: Path
    cfg: StoreConfig

    @property
    def part(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part")

    @property
    def side(self) -> Path:
        return self.dest.with_name(self.dest.name + ".part.json")

    def hint(self) -> str:
        return (
            f"check the URL and the network, or place the file by hand at {self.dest} "
            "to use it without network"
        )

    def discard(self) -> None:
        self.part.unlink(missing_ok=True)
        self.side.unlink(missing_ok=True)


def _split_userinfo(url: str) -> tuple[str, str | None]:
    """``https://u:p@host/x`` -> (``https://host/x``, ``Basic ...``); urllib cannot send userinfo itself."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return urlunsplit(parts._replace(netloc=netloc)), "Basic " + base64.b64encode(pair).decode("ascii")


def _read_side(side: Path) -> dict[str, Any] | None:
    """The saved validator, or None when missing or not what :func:`_start` writes (then: restart)."""
    try:
        data = json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    texts = all(isinstance(data.get(k), str | None) for k in ("etag", "last_modified"))
    total = data.get("total")
    return (
        data
        if texts and (total is None or (isinstance(total, int) and not isinstance(total, bool)))
        else None
    )


def _partial(job: _Job) -> tuple[int, dict[str, Any] | None]:
    """The bytes already in ``.part`` and their validator, or (0, None) after discarding an unusable part."""
    saved = _read_side(job.side) if job.part.exists() else None
    have = job.part.stat().st_size if saved is not None else 0
    total = saved.get("total") if saved else None
    known = saved is not None and any(saved.get(k) for k in ("etag", "last_modified", "total"))
    if have and known and not (isinstance(total, int) and have >= total):
        return have, saved
    job.discard()
    return 0, None


def _request(job: _Job, have: int, saved: dict[str, Any] | None) -> urllib.request.Request:
    url, auth = _split_userinfo(job.url)
    req = urllib.request.Request(
        url, headers={"User-Agent": f"warmstart/{__version__}", "Accept-Encoding": "identity"}
    )
    if auth:
        req.add_unredirected_header("Authorization", auth)
    if have and saved is not None:
        req.add_header("Range", f"bytes={have}-")
        etag = saved.get("etag") or ""
        validator = etag if etag and not etag.startswith("W/") else saved.get("last_modified")
        if validator:  # the server sends the whole file (200) instead if it changed since
            req.add_header("If-Range", validator)
    return req


def _http_error(job: _Job, exc: urllib.error.HTTPError, have: int) -> Exception:
    code, reason = exc.code, exc.reason
    exc.close()
    if code in _TRANSIENT_CODES or code >= 500:
        return _Dropped(f"HTTP {code} {reason}")
    if code == 416 and have:
        job.discard()
        return _Dropped("HTTP 416: the server cannot continue the partial file; restarting")
    kind = NotFoundError if code in (404, 410) else AccessDeniedError if code in (401, 403) else StorageError
    return kind(f"cannot download {job.shown}: HTTP {code} {reason}", hint=job.hint())


def _open(job: _Job, req: urllib.request.Request, have: int) -> http.client.HTTPResponse:
    opener = urllib.request.build_opener()
    try:
        resp = opener.open(req, timeout=job.cfg.connect_timeout_s)
    except urllib.error.HTTPError as exc:
        raise _http_error(job, exc, have) from None
    except urllib.error.URLError as exc:  # DNS, refused, unreachable, TLS
        raise _Dropped(str(exc.reason)) from None
    except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, a bad status line
        raise _Dropped(repr(exc)) from None
    sock = getattr(getattr(resp.fp, "raw", None), "_sock", None)
    if sock is not None:  # connected: from now on the read timeout applies
        sock.settimeout(job.cfg.read_timeout_s)
    return resp


def _int(text: str | None) -> int | None:
    return int(text) if text and text.strip().isdigit() else None


def _resumes(saved: dict[str, Any], resp: http.client.HTTPResponse, have: int) -> int | None:
    """The total size when a 206 continues the saved part of the same file at ``have``, else None."""
    match = _RANGE_RE.match(resp.headers.get("Content-Range") or "")
    if not match or int(match.group(1)) != have or match.group(3) == "*":
        return None
    total = int(match.group(3))
    same = [(saved.get("total"), total), (saved.get("etag"), resp.headers.get("ETag"))]
    same.append((saved.get("last_modified"), resp.headers.get("Last-Modified")))
    return total if all(old is None or new is None or old == new for old, new in same) else None


def _start(
    job: _Job, resp: http.client.HTTPResponse, have: int, saved: dict[str, Any] | None
) -> tuple[int, int | None]:
    """Decide from the answer whether this attempt appends to ``.part`` or restarts; (offset, total)."""
    if resp.status == 206 and have and saved is not None:
        total = _resumes(saved, resp, have)
        if total is not None:
            log.info("resuming the download of %s at byte %d of %d", job.shown, have, total)
            return have, total
        job.discard()
        raise _Dropped("the server's partial answer does not continue the saved part; restarting")
    if resp.status != 200:
        raise _Dropped(f"unexpected HTTP {resp.status} {resp.reason}")
    if have:
        log.info(
            "%s: the server sent the whole file instead of resuming (no Range support, or the file "
            "changed); restarting the download", job.shown,
        )  # fmt: skip
    total = _int(resp.headers.get("Content-Length"))
    side = {
        "etag": resp.headers.get("ETag"),
        "last_modified": resp.headers.get("Last-Modified"),
        "total": total,
    }
    job.side.write_text(json.dumps(side))
    return 0, total


def _copy(job: _Job, resp: http.client.HTTPResponse, offset: int) -> int:
    """Append the body to ``.part`` (from ``offset``); the bytes received stay there for a resume."""
    got = offset
    with open(job.part, "r+b" if offset else "wb") as fh:
        fh.seek(offset)
        fh.truncate()
        try:
            while True:
                try:
                    chunk = resp.read1(CHUNK)  # what has arrived: a cut-short read keeps it
                except (OSError, http.client.HTTPException) as exc:
                    raise _Dropped(f"the connection dropped after {got} bytes ({exc!r})") from None
                if not chunk:
                    return got
                fh.write(chunk)
                fh.flush()  # on disk as it comes: a kill keeps it for the resume
                got += len(chunk)
        finally:
            fh.flush()
            os.fsync(fh.fileno())


def _attempt(job: _Job) -> None:
    have, saved = _partial(job)
    with _open(job, _request(job, have, saved), have) as resp:
        offset, total = _start(job, resp, have, saved)
        got = _copy(job, resp, offset)
    if total is not None and got != total:
        raise _Dropped(f"the connection ended after {got} of {total} bytes (Content-Length says {total})")


def _publish(job: _Job) -> None:
    os.replace(job.part, job.dest)
    job.side.unlink(missing_ok=True)
    fd = os.open(job.dest.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)


def download(url: str, dest: Path, cfg: StoreConfig) -> None:
    """Download ``url`` to ``dest`` (via ``dest.part``); raise StorageError naming the URL and ``dest``."""
    job = _Job(url, redact_url(url), dest, cfg)
    policy = RetryPolicy(cfg.max_attempts, cfg.backoff_base_s, cfg.backoff_max_s)
    try:
        retry_call(
            lambda: _attempt(job),
            policy=policy,
            is_transient=lambda e: isinstance(e, _Dropped),
            what=job.shown,
        )
    except TransientStorageError as exc:
        raise StorageError(f"cannot download {exc.message}", hint=job.hint()) from None
    except OSError as exc:  # the cache folder, not the network: disk full, read-only, permissions
        raise StorageError(
            f"cannot write the download of {job.shown} to {job.part}: {exc.strerror or exc}",
            hint="free space there or set WARMSTART_CACHE to a writable folder",
        ) from None
    _publish(job)
