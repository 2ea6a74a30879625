"""The ``s3://`` and ``oss://`` backend: boto3 with parallel multipart transfers and per-request retries.

Uploads never replace a committed object unless asked: existence is checked first (HEAD), and the write
itself carries ``If-None-Match: *`` where the server supports it, closing the race between two writers.
Downloads land at ``<local>.part-<random>`` and are renamed only when complete.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager

from app.errors import StorageError
from app.store.base import (
    AlreadyExistsError,
    NoSuchBucketError,
    NotFoundError,
    ObjectInfo,
    ObjectStore,
    check_key,
)
from app.store.config import StoreConfig
from app.store.retry import RetryPolicy
from app.store.s3_client import Flavor, client_kwargs, make_client
from app.store.s3_faults import Kind, classify, install_retry_hook, translate

__all__ = ["S3Store", "transfer_config", "DELETE_BATCH"]

log = logging.getLogger(__name__)

MB = 1024 * 1024
#: DeleteObjects accepts at most 1000 keys per request.
DELETE_BATCH = 1000
_GUARDED_OPS = ("PutObject", "CompleteMultipartUpload")


def transfer_config(cfg: StoreConfig) -> TransferConfig:
    """Multipart settings: parts of ``part_size_mb``, ``max_concurrency`` in flight, classic (non-CRT) client."""
    part = cfg.part_size_mb * MB
    return TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=cfg.max_concurrency,
        use_threads=cfg.max_concurrency > 1,
        preferred_transfer_client="classic",
    )


def _if_none_match(params: dict[str, Any], **_: Any) -> None:
    params["IfNoneMatch"] = "*"


def _is_folder_marker(key: str) -> bool:
    """``step-00000050/``: the zero-byte object consoles create for an empty folder."""
    if not key.endswith("/") or key == "/":
        return False
    try:
        check_key(key[:-1])
    except ValueError:
        return False
    return True


class S3Store(ObjectStore):
    """Objects under ``<flavor>://bucket/prefix`` on AWS S3, OSS, MinIO or any S3-compatible server."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        cfg: StoreConfig | None = None,
        *,
        flavor: Flavor = "s3",
        uri: str | None = None,
    ) -> None:
        self.cfg = cfg if cfg is not None else StoreConfig()
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.flavor = flavor
        self.uri = uri or f"{flavor}://{bucket}/{self.prefix}".rstrip("/")
        self.policy = RetryPolicy(self.cfg.max_attempts, self.cfg.backoff_base_s, self.cfg.backoff_max_s)
        self._kwargs = client_kwargs(flavor, self.cfg)
        self._client = self._new_client()
        self._guarded: Any = None  # the client that adds If-None-Match, made on first use
        self._conditional = self.cfg.conditional_writes
        self._bucket_checked = False

    # -- plumbing ------------------------------------------------------------------------------
    def _new_client(self) -> Any:
        client = make_client(self._kwargs)
        install_retry_hook(client, self.policy, self.flavor)
        return client

    def _guarded_client(self) -> Any:
        if self._guarded is None:
            self._guarded = self._new_client()
            for op in _GUARDED_OPS:
                self._guarded.meta.events.register(f"before-parameter-build.s3.{op}", _if_none_match)
        return self._guarded

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _translate(self, key: str, action: str) -> Iterator[None]:
        where = self.describe(key)
        try:
            yield
        except (StorageError, ValueError):  # ValueError: an invalid key, a caller's bug
            raise
        except Exception as exc:
            error = translate(
                exc, where, bucket=self.bucket, flavor=self.flavor, attempts=self.policy.max_attempts
            )
            if isinstance(error, NotFoundError) and self._bucket_missing():
                error = translate_missing_bucket(self, where)
            log.debug("%s failed on %s: %r", action, where, exc)
            raise error from exc

    def _bucket_missing(self) -> bool:
        """HEAD answers a bare 404 for a missing bucket too; ask once whether the bucket is there."""
        if self._bucket_checked:
            return False
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            return classify(exc) in (Kind.NOT_FOUND, Kind.NO_SUCH_BUCKET)
        self._bucket_checked = True
        return False

    # -- ObjectStore ---------------------------------------------------------------------------
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full = (self.prefix + "/" if self.prefix else "") + prefix  # may be a partial name: "step-"
        skip = len(self.prefix) + 1 if self.prefix else 0
        found: list[ObjectInfo] = []
        with self._translate(prefix, "list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full)
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][skip:]
                    try:  # a key with '..', '//' or '\\' is never listed, so never fetched or deleted
                        check_key(key)
                    except ValueError:
                        if not _is_folder_marker(key):  # markers are reported through list_folders
                            log.warning(
                                "ignoring object %r under %s: not a plain relative key", key, self.uri
                            )
                        continue
                    found.append(ObjectInfo(key, int(item["Size"])))
        return sorted(found, key=lambda info: info.key)

    def list_folders(self) -> list[str]:
        """Top-level "folders", including ones that hold only a folder marker (``step-N/``, as consoles
        create), so an empty step folder is reported on S3 as it is on a local disk."""
        base = self.prefix + "/" if self.prefix else ""
        names: set[str] = set()
        with self._translate("", "list"):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base, Delimiter="/"
            )
            for page in pages:
                names.update(p["Prefix"][len(base) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return sorted(name for name in names if name and "\\" not in name and name not in (".", ".."))

    def remove_empty_folder(self, key: str) -> None:
        """Delete the folder marker ``key/`` when nothing else is under it."""
        marker = self._key(key) + "/"
        with self._translate(key, "delete"):
            found = self._client.list_objects_v2(Bucket=self.bucket, Prefix=marker, MaxKeys=2)
            if [item["Key"] for item in found.get("Contents", [])] == [marker]:
                self._client.delete_object(Bucket=self.bucket, Key=marker)

    def exists(self, key: str) -> bool:
        try:
            with self._translate(key, "check"):
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except NotFoundError:
            return False
        return True

    def _refuse_existing(self, key: str, overwrite: bool) -> Any:
        """The client to upload with: plain for overwrite, else after a HEAD check the guarded one."""
        if overwrite:
            return self._client
        if self.exists(key):
            raise translate_exists(self, key)
        return self._guarded_client() if self._conditional else self._client

    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        local = Path(local)
        if not local.is_file():
            raise NotFoundError(f"local file {local} does not exist (upload to {self.describe(key)})")
        self._with_conditional_fallback(key, overwrite, lambda c: self._transfer_up(c, local, key))
        log.debug("uploaded %s (%d bytes) to %s", local, local.stat().st_size, self.describe(key))

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        def put(client: Any) -> None:
            client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

        self._with_conditional_fallback(key, overwrite, put)

    def _with_conditional_fallback(self, key: str, overwrite: bool, send: Any) -> None:
        client = self._refuse_existing(key, overwrite)
        try:
            with self._translate(key, "upload"):
                send(client)
        except StorageError as exc:
            if client is not self._guarded or classify(exc.__cause__) is not Kind.NOT_IMPLEMENTED:
                raise
            log.warning("%s does not support If-None-Match; relying on the existence check", self.uri)
            self._conditional = False
            with self._translate(key, "upload"):
                send(self._client)

    def _transfer_up(self, client: Any, local: Path, key: str) -> None:
        with create_transfer_manager(client, transfer_config(self.cfg)) as manager:
            manager.upload(str(local), self.bucket, self._key(key)).result()

    def download_file(self, key: str, local: Path) -> None:
        local = Path(local)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f"{local.name}.part-{secrets.token_hex(6)}")
        try:
            with self._translate(key, "download"):
                with create_transfer_manager(self._client, transfer_config(self.cfg)) as manager:
                    manager.download(self.bucket, self._key(key), str(tmp)).result()
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        with self._translate(key, "read"):
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            try:
                return body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            objects = [{"Key": self._key(k)} for k in batch]
            with self._translate(batch[0], "delete"):
                answer = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise StorageError(
                    f"{len(errors)} of {len(batch)} deletes failed under {self.uri}, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message', '')}".rstrip(),
                    hint="check the delete permission (s3:DeleteObject) on the bucket",
                )
        log.debug("deleted %d key(s) under %s", len(keys), self.uri)


def translate_missing_bucket(store: S3Store, where: str) -> StorageError:
    return NoSuchBucketError(
        f"bucket {store.bucket!r} does not exist ({where})",
        hint="create the bucket, or fix the URI or the endpoint (store.endpoint_url)",
    )


def translate_exists(store: S3Store, key: str) -> StorageError:
    return AlreadyExistsError(
        f"{store.describe(key)} already exists; refusing to overwrite a committed object",
        hint="write a new key or pass overwrite=True",
    )
