"""The one small interface every storage backend implements, and the storage error kinds.

Keys are '/'-separated paths relative to the store's root URI (``step-00000100/model.safetensors``).
Backends translate their own failures into the error classes below at this boundary; callers never see
boto3 or OS exceptions. Only :class:`TransientStorageError` is retried (by the backend itself).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from app.errors import StorageError

__all__ = [
    "ObjectInfo",
    "ObjectStore",
    "NotFoundError",
    "AccessDeniedError",
    "NoSuchBucketError",
    "TransientStorageError",
    "AlreadyExistsError",
    "check_key",
]


class NotFoundError(StorageError):
    """The key does not exist."""


class AccessDeniedError(StorageError):
    """Credentials are missing, wrong, or not allowed to do this."""


class NoSuchBucketError(StorageError):
    """The bucket (or local root folder's parent) does not exist."""


class TransientStorageError(StorageError):
    """5xx, throttling, timeouts, resets — raised once the retry budget is exhausted."""


class AlreadyExistsError(StorageError):
    """An upload would overwrite an existing object, which committed data never allows."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid relative '/'-separated key, else raise ``ValueError``.

    Empty segments, ``.``/``..`` and backslashes are refused so that a key can never escape the root of
    a local store and maps to the same object on every backend.
    """
    parts = key.split("/")
    if not key or "\\" in key or any(part in ("", ".", "..") for part in parts):
        raise ValueError(
            f"invalid storage key {key!r}: expected a relative path like 'step-00000100/model.safetensors'"
        )
    return key


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(ABC):
    """A flat key space under one root URI."""

    #: The root URI as the user wrote it (for messages and lineage), without credentials.
    uri: str

    def describe(self, key: str = "") -> str:
        """The full URI of ``key`` (for error messages and logs)."""
        return f"{self.uri.rstrip('/')}/{key}" if key else self.uri

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """All objects whose key starts with ``prefix`` (recursive), sorted by key."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        """Copy a local file to ``key``. Raises :class:`AlreadyExistsError` if it exists and not overwrite."""

    @abstractmethod
    def download_file(self, key: str, local: Path) -> None:
        """Copy ``key`` to ``local`` through a temporary name renamed when complete."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        """The object's bytes; with ``max_bytes``, at most ``max_bytes + 1`` of them (so a caller can
        tell an object that is too large without holding all of it)."""

    @abstractmethod
    def delete(self, keys: list[str]) -> None:
        """Delete these keys; missing keys are ignored."""

    def list_folders(self) -> list[str]:
        """Top-level folder names under the root. Object stores only have keys, so folders are the
        first segments of listed keys; a local store also reports empty folders."""
        return sorted({info.key.split("/", 1)[0] for info in self.list("") if "/" in info.key})

    def remove_empty_folder(self, key: str) -> None:
        """Remove the top-level folder ``key`` if it holds nothing (object stores have no folders)."""
        return None

    @property
    def is_local(self) -> bool:
        """True when keys are plain files on this machine (no download needed to read them)."""
        return False

    def local_path(self, key: str) -> Path:
        """For local stores only: the file behind ``key``."""
        raise NotImplementedError
