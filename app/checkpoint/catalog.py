"""What a checkpoint root holds: each step folder's state, and the "latest" rule.

A step is *committed* when its ``manifest.json`` exists and parses; it is *intact* when every file the
manifest lists is present with the listed size. A step whose manifest exists but cannot be read
(corrupt, an unknown format version, the wrong JSON type, a link out of the root) is *unusable*: it is
shown, skipped on resume and never deleted automatically; only a folder with no manifest at all can be a
leftover. An empty step folder is reported like any other folder without a manifest. "Latest" is the
highest committed, intact step — never chosen by modification time. A torn or corrupted newer step is
skipped with a warning naming the step and what is wrong. Hashes are checked on load (see
:mod:`app.checkpoint.reader`), which is where a flipped byte is caught.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from app.checkpoint.layout import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    STARTED,
    CheckpointRef,
    Manifest,
    parse_step_key,
    sha256_bytes,
)
from app.errors import CheckpointError
from app.store.base import AccessDeniedError, NotFoundError, ObjectInfo, ObjectStore

__all__ = ["StepStatus", "scan", "latest", "committed", "describe_problem"]

log = logging.getLogger(__name__)


@dataclass
class StepStatus:
    step: int
    key: str
    objects: list[ObjectInfo] = field(default_factory=list)
    manifest: Manifest | None = None
    ref: CheckpointRef | None = None
    #: None when committed and intact; otherwise what is wrong ("manifest.json missing", ...).
    problem: str | None = None
    #: A manifest.json object exists (readable or not).
    has_manifest: bool = False

    @property
    def committed(self) -> bool:
        return self.manifest is not None

    @property
    def unusable(self) -> bool:
        """A manifest exists but cannot be read: kept, never deleted automatically."""
        return self.has_manifest and self.manifest is None

    @property
    def intact(self) -> bool:
        return self.committed and self.problem is None

    @property
    def size(self) -> int:
        return sum(info.size for info in self.objects)


def _group(objects: list[ObjectInfo]) -> dict[int, tuple[str, list[ObjectInfo]]]:
    groups: dict[int, tuple[str, list[ObjectInfo]]] = {}
    for info in objects:
        folder, sep, _ = info.key.partition("/")
        step = parse_step_key(folder) if sep else None
        if step is not None:
            groups.setdefault(step, (folder, []))[1].append(info)
    return groups


def describe_problem(manifest: Manifest, objects: list[ObjectInfo]) -> str | None:
    """Compare a manifest with a listing: the first missing or wrong-sized file, or None."""
    sizes = {info.key.rsplit("/", 1)[-1]: info.size for info in objects}
    for entry in manifest.files:
        if entry.name not in sizes:
            return f"{entry.name} missing"
        if sizes[entry.name] != entry.size:
            return f"{entry.name} is {sizes[entry.name]} bytes, manifest says {entry.size}"
    return None


def _status(store: ObjectStore, step: int, key: str, objects: list[ObjectInfo]) -> StepStatus:
    status = StepStatus(step, key, objects)
    names = {info.key.rsplit("/", 1)[-1] for info in objects}
    if MANIFEST not in names:
        status.problem = f"{MANIFEST} missing (not committed)"
        if not objects:
            status.problem = f"empty folder, {status.problem}"
        elif STARTED in names:
            status.problem += ", save started"
        return status
    status.has_manifest = True
    try:
        data = store.get_bytes(f"{key}/{MANIFEST}", max_bytes=MAX_MANIFEST_BYTES)
        status.manifest = Manifest.parse(data, store.describe(f"{key}/{MANIFEST}"))
    except NotFoundError:  # deleted between list and read
        status.has_manifest = False
        status.problem = f"{MANIFEST} missing (not committed)"
        return status
    except (CheckpointError, AccessDeniedError) as exc:  # kept: it may be a newer tool's checkpoint
        status.problem = exc.message
        return status
    status.ref = CheckpointRef(step, store.describe(key), sha256_bytes(data), key)
    if status.manifest.step != step:
        status.problem = f"manifest says step {status.manifest.step}, folder is step {step}"
    else:
        status.problem = describe_problem(status.manifest, objects)
    return status


def scan(store: ObjectStore) -> list[StepStatus]:
    """Every step folder under the store's root, oldest first (reads each manifest; no hashing)."""
    groups = _group(store.list(""))
    for folder in store.list_folders():  # empty step folders are reported too
        step = parse_step_key(folder)
        if step is not None and step not in groups:
            groups[step] = (folder, [])
    return [_status(store, step, key, objs) for step, (key, objs) in sorted(groups.items())]


def committed(store: ObjectStore) -> list[StepStatus]:
    """Committed step folders (manifest present and readable), oldest first; intact or not."""
    return [s for s in scan(store) if s.committed]


def latest(store: ObjectStore, statuses: list[StepStatus] | None = None) -> CheckpointRef | None:
    """The newest committed, intact checkpoint; newer torn ones are skipped with a warning."""
    for status in reversed(statuses if statuses is not None else scan(store)):
        if status.intact:
            return status.ref
        log.warning(
            "skipping checkpoint step %d at %s: %s; falling back to the previous one",
            status.step,
            store.describe(status.key),
            f"{status.problem} (unusable, kept)" if status.unusable else status.problem,
        )
    return None
