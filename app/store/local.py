"""The local-folder backend: keys are files under a root folder, published by atomic rename.

Every write goes to a hidden temporary file in the destination folder, is fsynced, and is then
published with a hard link (refusing to replace an existing key) or ``os.replace`` (overwrite). A crash
therefore leaves either the old object, the new one, or an ignored temporary file — never a torn key.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from app.errors import StorageError
from app.store.base import (
    AccessDeniedError,
    AlreadyExistsError,
    NotFoundError,
    ObjectInfo,
    ObjectStore,
    check_key,
)

__all__ = ["LocalStore", "TEMP_TAG", "is_temp_name"]

log = logging.getLogger(__name__)

#: Marker inside the names of our temporary files; listing skips them.
TEMP_TAG = ".ws-tmp-"


def is_temp_name(name: str) -> bool:
    """True for a temporary file written by this backend (``.<name>.ws-tmp-<hex>``)."""
    return name.startswith(".") and TEMP_TAG in name


def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_TAG}{secrets.token_hex(6)}")


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable; cheap, and skipped where the OS cannot open folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_temp(target: Path, fill) -> Path:  # noqa: ANN001  (fill: Callable[[BinaryIO], None])
    """Write a temporary sibling of ``target`` with ``fill`` and fsync it; return its path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    try:
        with open(tmp, "xb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Give ``tmp`` its final name; without ``overwrite`` never replace an existing file."""
    try:
        if overwrite:
            os.replace(tmp, target)
        else:
            _link_no_replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(target.parent)


def _link_no_replace(tmp: Path, target: Path) -> None:
    try:
        os.link(tmp, target)  # atomic and fails with EEXIST: no check-then-write race
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        # Filesystems without hard links (some FUSE/SMB mounts): check, then rename.
        if target.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(target)) from exc
        os.replace(tmp, target)


class LocalStore(ObjectStore):
    """A folder on this machine (``/path``, ``relative/path`` or ``file:///path``)."""

    def __init__(self, root: Path, uri: str | None = None) -> None:
        self.root = Path(root).absolute()
        self.uri = uri if uri is not None else str(root)

    # -- helpers -------------------------------------------------------------------------------
    def _path(self, key: str, *, follow_last: bool = True) -> Path:
        """The file behind ``key``; a symlink on the way that leads out of the root is refused.

        With ``follow_last=False`` (deleting) only the folders on the way are checked: unlinking a
        symlink removes the link itself, never its target.
        """
        path = self.root.joinpath(*check_key(key).split("/"))
        if not self._inside(path if follow_last else path.parent):
            raise AccessDeniedError(
                f"{self.describe(key)} is a symlink to {path.resolve()}, outside the store root "
                f"{self.root}; not followed",
                hint="replace the link with a regular file or move it away",
            )
        return path

    def _inside(self, path: Path) -> bool:
        """True when ``path``, with every symlink resolved, stays under the (resolved) root."""
        try:
            real, root = path.resolve(), self.root.resolve()
        except (OSError, RuntimeError):  # a symlink loop
            return False
        return real == root or root in real.parents

    def _open_regular(self, path: Path, key: str) -> BinaryIO:
        """Open a regular file for reading; a FIFO, device or socket (which could block forever) is refused."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise AccessDeniedError(
                f"{self.describe(key)} is not a regular file; not read", hint="move it away"
            )
        return os.fdopen(fd, "rb")

    def _size(self, path: Path) -> int:
        """A listed file's size; a symlink leading out of the root reports its own (link) size."""
        return path.stat().st_size if not path.is_symlink() or self._inside(path) else path.lstat().st_size

    @contextlib.contextmanager
    def _translate(self, key: str, action: str) -> Iterator[None]:
        """Turn OS errors into the storage error kinds, naming the URI and what to do."""
        where = self.describe(key)
        try:
            yield
        except StorageError:
            raise
        except FileExistsError as exc:
            raise AlreadyExistsError(
                f"{where} already exists; refusing to overwrite a committed object",
                hint="write a new key or pass overwrite=True",
            ) from exc
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFoundError(
                f"{where} does not exist (cannot {action})", hint="check the URI and key"
            ) from exc
        except PermissionError as exc:
            raise AccessDeniedError(
                f"{where}: permission denied while trying to {action}",
                hint=f"check the owner and mode of {exc.filename or self.root}",
            ) from exc
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise StorageError(
                f"{where}: cannot {action}: {reason}", hint="check the disk and mount"
            ) from exc

    # -- ObjectStore ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return True

    def local_path(self, key: str) -> Path:
        return self._path(key)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        start = self.root
        if "/" in prefix:
            start = self.root.joinpath(*prefix.rsplit("/", 1)[0].split("/"))
        found: list[ObjectInfo] = []
        with self._translate(prefix, "list"):
            if not start.is_dir():
                return []
            for folder, dirs, files in os.walk(start):
                dirs.sort()
                rel = Path(folder).relative_to(self.root).as_posix()
                base = "" if rel == "." else rel + "/"
                for name in files:
                    key = base + name
                    if is_temp_name(name) or not key.startswith(prefix):
                        continue
                    with contextlib.suppress(FileNotFoundError):  # deleted while listing (or dangling)
                        found.append(ObjectInfo(key, self._size(Path(folder) / name)))
        return sorted(found, key=lambda info: info.key)

    def list_folders(self) -> list[str]:
        """Top-level folders, empty ones included (object stores only know folders through keys)."""
        with self._translate("", "list"):
            if not self.root.is_dir():
                return []
            return sorted(entry.name for entry in os.scandir(self.root) if entry.is_dir())

    def remove_empty_folder(self, key: str) -> None:
        """Remove the top-level folder ``key`` if it is empty; a symlink is never followed or removed."""
        path = self.root / check_key(key)
        if path.is_symlink() or not path.is_dir():
            return
        with self._translate(key, "delete"), contextlib.suppress(OSError):
            path.rmdir()  # fails (and is left alone) when a file appeared meanwhile

    def exists(self, key: str) -> bool:
        with self._translate(key, "check"):
            return self._path(key).is_file()

    def upload_file(self, local: Path, key: str, *, overwrite: bool = False) -> None:
        local = Path(local)
        if not local.is_file():
            raise NotFoundError(f"local file {local} does not exist (upload to {self.describe(key)})")
        self._write(key, overwrite, lambda fh: _copy_from(local, fh))

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> None:
        self._write(key, overwrite, lambda fh: fh.write(data))

    def _write(self, key: str, overwrite: bool, fill) -> None:  # noqa: ANN001
        target = self._path(key)
        with self._translate(key, "write"):
            if not overwrite and target.exists():
                raise FileExistsError(errno.EEXIST, "exists", str(target))
            _publish(_write_temp(target, fill), target, overwrite)
        log.debug("wrote %s", self.describe(key))

    def download_file(self, key: str, local: Path) -> None:
        source = self._path(key)
        local = Path(local)
        with self._translate(key, "download"):
            with self._open_regular(source, key) as src:  # opened first so a missing key is NotFound
                tmp = local.with_name(f"{local.name}.part-{secrets.token_hex(6)}")
                local.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open(tmp, "xb") as dst:
                        shutil.copyfileobj(src, dst, 8 << 20)
                    os.replace(tmp, local)
                finally:
                    tmp.unlink(missing_ok=True)

    def get_bytes(self, key: str, *, max_bytes: int | None = None) -> bytes:
        with self._translate(key, "read"):
            with self._open_regular(self._path(key), key) as fh:
                return fh.read() if max_bytes is None else fh.read(max_bytes + 1)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key, follow_last=False)
            with self._translate(key, "delete"):
                path.unlink(missing_ok=True)
            self._prune_empty(path.parent)
        log.debug("deleted %d key(s) under %s", len(keys), self.uri)

    def _prune_empty(self, folder: Path) -> None:
        """Remove folders emptied by a delete, up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


def _copy_from(local: Path, fh) -> None:  # noqa: ANN001
    with open(local, "rb") as src:
        shutil.copyfileobj(src, fh, 8 << 20)
