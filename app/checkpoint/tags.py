"""Named versions: ``<root>/tags/<NAME>.json`` points at a committed step by its manifest's sha256.

Promoting copies no data. Resolving a tag checks that the step's manifest still has the recorded
sha256, so a tag can never silently point at different bytes. Tagged steps are protected from retention.
"""

from __future__ import annotations

import logging
from typing import Any

from app.checkpoint.jsonread import read_json
from app.checkpoint.layout import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    TAGS_PREFIX,
    CheckpointRef,
    json_bytes,
    sha256_bytes,
    step_key,
    tag_key,
)
from app.checkpoint.lineage import current_user, utc_now
from app.checkpoint.schema import check_tag
from app.errors import CheckpointError
from app.store.base import AccessDeniedError, AlreadyExistsError, NotFoundError, ObjectStore

__all__ = ["promote", "read_tag", "resolve_tag", "list_tags", "tagged_steps"]

log = logging.getLogger(__name__)

#: A tag record is a few hundred bytes.
MAX_TAG_BYTES = 64 << 10


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
    """The record of tag ``name``, checked against the tag schema (bounded read; never trusts types)."""
    key = tag_key(name)
    try:
        value = read_json(store, key, max_bytes=MAX_TAG_BYTES)
    except NotFoundError:
        known = ", ".join(list_tags(store)) or "none"
        raise CheckpointError(
            f"no tag {name!r} at {store.describe(key)}", hint=f"known tags: {known}"
        ) from None
    except AccessDeniedError as exc:
        raise CheckpointError(exc.line()) from None
    return check_tag(value, store.describe(key), name)


def resolve_tag(store: ObjectStore, name: str) -> CheckpointRef:
    """The checkpoint tag ``name`` points at, after checking its manifest hash still matches."""
    record = read_tag(store, name)
    step = record["step"]
    key = step_key(step)
    try:
        data = store.get_bytes(f"{key}/{MANIFEST}", max_bytes=MAX_MANIFEST_BYTES)
    except (NotFoundError, AccessDeniedError):
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
            out.setdefault(read_tag(store, name)["step"], []).append(name)
        except CheckpointError as exc:
            log.warning("ignoring tag %r: %s", name, exc.message)
    return out
