"""Storage backends behind one interface, chosen by URI scheme (folder/file://, s3://, oss://)."""

from app.store.base import (
    AccessDeniedError,
    AlreadyExistsError,
    NoSuchBucketError,
    NotFoundError,
    ObjectInfo,
    ObjectStore,
    TransientStorageError,
)

__all__ = [
    "ObjectStore",
    "ObjectInfo",
    "NotFoundError",
    "AccessDeniedError",
    "NoSuchBucketError",
    "TransientStorageError",
    "AlreadyExistsError",
    "open_store",
]


def open_store(uri: str, config=None) -> ObjectStore:  # noqa: ANN001  (StoreConfig | None)
    """Open the store for ``uri``: a local folder, ``file://``, ``s3://bucket/prefix`` or ``oss://...``."""
    from app.store.registry import open_store as _open

    return _open(uri, config)
