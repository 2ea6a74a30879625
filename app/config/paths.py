"""The rule for local folders we write to (``run.dir``, a local ``checkpoint.uri``, output folders).

A path is made absolute against the working directory and resolved through symlinks; it is refused when
it is the filesystem root, or at or below a system directory (:data:`SYSTEM_TREES`), or exactly one of
the shared top-level folders in :data:`SYSTEM_DIRS` (a run would scatter ``step-N`` folders and logs
into them). Both the spelled path and the symlink-resolved one are checked, so ``../../etc``,
``file:///etc`` and a link to ``/etc`` are all refused. Documented in docs/config.md.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from app.errors import ConfigError

__all__ = ["SYSTEM_TREES", "SYSTEM_DIRS", "resolve_output_dir", "local_path_of"]

#: Refused together with everything below them: the operating system's own files.
SYSTEM_TREES = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/sbin",
    "/sys",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib32",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/libx32",
    "/usr/sbin",
    "/usr/share",
    "/var/lib/apt",
    "/var/lib/dpkg",
    "/var/lib/rpm",
)
#: Refused themselves (a folder *inside* them is fine: /home/me/runs, /var/lib/jenkins/runs, /tmp/x).
SYSTEM_DIRS = (
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/run",
    "/srv",
    "/tmp",
    "/usr",
    "/usr/local",
    "/var",
    "/var/lib",
)


def local_path_of(uri: str) -> str | None:
    """The local path a store URI or folder names, or None for s3:// / oss:// and other schemes."""
    if "://" not in uri:
        return uri
    if uri.lower().startswith("file://"):
        return unquote(urlsplit(uri).path)
    return None


def _refused(path: str) -> str | None:
    posix = PurePosixPath(path)
    if str(posix) in SYSTEM_DIRS:
        return str(posix)
    for tree in SYSTEM_TREES:
        if posix == PurePosixPath(tree) or PurePosixPath(tree) in posix.parents:
            return tree
    return None


def resolve_output_dir(field: str, path: str) -> Path:
    """``path`` made absolute and checked against the rule; raises ConfigError naming ``field``."""
    if not path.strip() or "\0" in path:
        raise ConfigError(f"{field}: {path!r} is not a usable folder path")
    spelled = os.path.abspath(os.path.expanduser(path))
    resolved = os.path.realpath(spelled)
    for candidate in dict.fromkeys((spelled, resolved)):
        bad = _refused(candidate)
        if bad is not None:
            shown = candidate if candidate == spelled else f"{spelled} (resolves to {candidate})"
            raise ConfigError(
                f"{field}: {path!r} is {shown}, which is the filesystem root or a system directory "
                f"({bad}); refusing to write there",
                hint="use a folder of your own, e.g. runs/<name> or /data/<name> (rule: docs/config.md)",
            )
    return Path(resolved)
