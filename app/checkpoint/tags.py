"""Named versions: ``<root>/tags/<NAME>.json`` points at a committed step by its manifest's sha256.

Promoting copies no data. Resolving a tag checks that the step's manifest still has the recorded
sha256, so a tag can never silently point at different bytes. Tagged steps are protected from retention.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from app.checkpoint.layout import (
    MANIFEST,
    TAGS_PREFIX,
    CheckpointRef,
    json_bytes,
    sha256_bytes,
    step_key,
    tag_key,
)
from app.checkpoint.lineage import current_user, utc_now
from app.errors import CheckpointError
from app.store.base import AlreadyExistsError, NotFoundError, ObjectStore

__all__ = ["promote", "read_tag", "resolve_tag", "list_tags", "tagged_steps"]

log = logging.getLogger(__name__)


def promote(
    store: ObjectStore, ref: CheckpointRef, name: str, note: str = "", *, force: bool = False
) -> dict[str, Any]:
    """Record ``ref`` as version ``name``. An existing tag is only replaced with ``force``."""
    record = {
        "tag": name,
        "step": ref.step,
        "manifest_sha256": ref.manifest_sha256,
        "uri": ref.uri,
        "user": current_user(),
        "utc_time": utc_now(),
        "note": note,
    }
    key = tag_key(name)
    try:
        store.put_bytes(key, json_bytes(record, f"tag {name}"), overwrite=force)
    except AlreadyExistsError:
        raise CheckpointError(
            f"tag {name!r} already exists at {store.describe(key)}",
            hint="choose another name or pass --force",
        ) from None
    log.info("tagged step %d of %s as %r", ref.step, store.uri, name)
    return record


def read_tag(store: ObjectStore, name: str) -> dict[str, Any]:
    key = tag_key(name)
    try:
        data = store.get_bytes(key)
    except NotFoundError:
        known = ", ".join(list_tags(store)) or "none"
        raise CheckpointError(
            f"no tag {name!r} at {store.describe(key)}", hint=f"known tags: {known}"
        ) from None
    try:
        record = json.loads(data.decode("utf-8"))
        int(record["step"]), str(record["manifest_sha256"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{store.describe(key)} is not a valid tag record: {exc}") from None
    return record


def resolve_tag(store: ObjectStore, name: str) -> CheckpointRef:
    """The checkpoint tag ``name`` points at, after checking its manifest hash still matches."""
    record = read_tag(store, name)
    step = int(record["step"])
    key = step_key(step)
    try:
        data = store.get_bytes(f"{key}/{MANIFEST}")
    except NotFoundError:
        raise CheckpointError(
            f"tag {name!r} points at step {step}, but {store.describe(key)} is not committed (deleted?)"
        ) from None
    found = sha256_bytes(data)
    if found != record["manifest_sha256"]:
        raise CheckpointError(
            f"tag {name!r}: manifest of step {step} has sha256 {found[:12]}…, tag records "
            f"{record['manifest_sha256'][:12]}…",
            hint="the checkpoint was rewritten after promotion; promote it again if intended",
        )
    return CheckpointRef(step, store.describe(key), found, key)


def list_tags(store: ObjectStore) -> list[str]:
    names = [info.key[len(TAGS_PREFIX) :] for info in store.list(TAGS_PREFIX)]
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json") and "/" not in n)


def tagged_steps(store: ObjectStore) -> dict[int, list[str]]:
    """step -> tag names, for every readable tag (unreadable ones are logged and skipped)."""
    out: dict[int, list[str]] = {}
    for name in list_tags(store):
        try:
            out.setdefault(int(read_tag(store, name)["step"]), []).append(name)
        except CheckpointError as exc:
            log.warning("ignoring tag %r: %s", name, exc.message)
    return out
