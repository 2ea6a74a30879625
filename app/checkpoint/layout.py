"""Names and records of the on-store checkpoint layout: step folders, the manifest, refs, tags.

A checkpoint is the folder ``<root>/step-<N, 8 digits>/``. It exists only once ``manifest.json`` — the
last object written — is there; the manifest lists every other file with its size and sha256.
Everything here is pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from app.checkpoint.jsonread import json_object, parse_json
from app.checkpoint.schema import FILE_NAME_RE, SHA256_RE, need, need_int, need_str
from app.errors import CheckpointError

__all__ = [
    "MANIFEST",
    "TRAINER_STATE",
    "META",
    "STARTED",
    "TAGS_PREFIX",
    "TAG_NAME_HINT",
    "TAG_NAME_RE",
    "TENSOR_SUFFIX",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CheckpointRef",
    "FileEntry",
    "Manifest",
    "step_key",
    "parse_step_key",
    "tag_key",
    "check_tag_name",
    "check_group_name",
    "sha256_bytes",
    "json_bytes",
]

MANIFEST = "manifest.json"
TRAINER_STATE = "trainer_state.json"
META = "meta.json"
#: Written first into a step folder: when the save started (UTC), so gc can age uncommitted leftovers.
STARTED = ".started"
TAGS_PREFIX = "tags/"
TENSOR_SUFFIX = ".safetensors"
FORMAT_NAME = "warmstart-checkpoint"
FORMAT_VERSION = 1

_STEP_RE = re.compile(r"^step-(\d{8,})$")
#: A tag name (also checked when the config loads: ``checkpoint.tag_best``).
TAG_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
TAG_NAME_HINT = "use letters, digits, '.', '_' or '-' (at most 100)"
_NAME_RE = TAG_NAME_RE
_GROUP_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")


def step_key(step: int) -> str:
    """The folder key of ``step``: ``step-00000100``."""
    if step < 0:
        raise CheckpointError(f"checkpoint step must be >= 0, got {step}")
    return f"step-{step:08d}"


def parse_step_key(name: str) -> int | None:
    """The step of a folder name like ``step-00000100``, or None if it is not one."""
    match = _STEP_RE.fullmatch(name)
    return int(match.group(1)) if match else None


def tag_key(name: str) -> str:
    return f"{TAGS_PREFIX}{check_tag_name(name)}.json"


def check_tag_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise CheckpointError(f"invalid tag name {name!r}", hint=TAG_NAME_HINT)
    return name


def check_group_name(name: str) -> str:
    """Tensor group names become file names (``<group>.safetensors``), so keep them plain."""
    if not _GROUP_RE.fullmatch(name):
        raise CheckpointError(
            f"invalid tensor group name {name!r}", hint="use lower-case letters, digits, '_'"
        )
    return name


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def json_bytes(data: Any, what: str) -> bytes:
    """Canonical, human-readable JSON; a value JSON cannot hold is a CheckpointError naming ``what``."""
    try:
        return (json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{what} is not plain JSON data: {exc}", hint="pass lists/dicts/numbers/strings"
        ) from None


@dataclass(frozen=True)
class CheckpointRef:
    """One committed checkpoint: where it is and the sha256 of its manifest (its identity)."""

    step: int
    #: Full URI of the step folder (``s3://bucket/run/step-00000100``).
    uri: str
    manifest_sha256: str
    #: Key prefix of the step folder inside its store ('' when the store is opened at the folder itself).
    key: str = ""

    def file_key(self, name: str) -> str:
        return f"{self.key}/{name}" if self.key else name


@dataclass(frozen=True)
class FileEntry:
    name: str
    size: int
    sha256: str


@dataclass
class Manifest:
    step: int
    created_utc: str
    files: list[FileEntry] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        data = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "step": self.step,
            "created_utc": self.created_utc,
            "files": [{"name": f.name, "size": f.size, "sha256": f.sha256} for f in self.files],
        }
        return json_bytes(data, "manifest")

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def groups(self) -> list[str]:
        return [f.name[: -len(TENSOR_SUFFIX)] for f in self.files if f.name.endswith(TENSOR_SUFFIX)]

    @classmethod
    def parse(cls, data: bytes, where: str) -> Manifest:
        """Parse and check a manifest; anything unexpected is a CheckpointError naming ``where``."""
        raw = json_object(parse_json(data, where, max_bytes=MAX_MANIFEST_BYTES), where)
        if raw.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{where}: format is {_shown(raw.get('format'))}, expected {FORMAT_NAME!r}")
        version = need(raw, "version", where)
        if isinstance(version, bool) or not isinstance(version, int) or version != FORMAT_VERSION:
            raise CheckpointError(
                f"{where}: format version {_shown(version)} is not one this tool reads ({FORMAT_VERSION})",
                hint="a newer warmstart may have written it; it is kept, not deleted",
            )
        step = need_int(need(raw, "step", where), where, "step")
        created = need_str(raw.get("created_utc", ""), where, "created_utc", 64)
        if not created.isprintable():
            raise CheckpointError(f"{where}: created_utc holds control characters")
        listed = need(raw, "files", where)
        if not isinstance(listed, list) or len(listed) > MAX_FILES:
            raise CheckpointError(f"{where}: files must be a list of at most {MAX_FILES} entries")
        files = [_file_entry(item, where) for item in listed]
        names = [f.name for f in files]
        if len(set(names)) != len(names):
            raise CheckpointError(f"{where}: manifest lists a file name twice")
        return cls(step, created, files)


#: A manifest lists a handful of files; 1 MiB and 1000 entries are far beyond anything we write.
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILES = 1000


def _shown(value: Any) -> str:
    return repr(value)[:40]


def _file_entry(item: Any, where: str) -> FileEntry:
    if not isinstance(item, dict) or set(item) != {"name", "size", "sha256"}:
        raise CheckpointError(f"{where}: each file entry must be an object with name, size and sha256")
    name = item["name"]
    if not isinstance(name, str) or not FILE_NAME_RE.fullmatch(name) or name in (MANIFEST, STARTED):
        raise CheckpointError(
            f"{where}: manifest lists an invalid file name {_shown(name)}",
            hint="names are plain file names inside the step folder (letters, digits, '.', '_', '-')",
        )
    size = need_int(item["size"], where, f"size of {name}")
    sha = item["sha256"]
    if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
        raise CheckpointError(f"{where}: sha256 of {name} must be 64 lower-case hex digits")
    return FileEntry(name, size, sha)
