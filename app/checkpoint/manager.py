"""The trainer's handle on one checkpoint root: save (async), latest, load, protect, retention.

``save()`` takes ownership of the snapshot's arrays: they are marked read-only, so a caller that writes
into one afterwards gets an error instead of silently changing what is saved. Pass arrays the caller
owns: copies made from the parameters with :func:`host_copy`, or buffers filled by the manager's
:attr:`CheckpointManager.buffers` pool (:mod:`app.checkpoint.hostbuf`: allocated once, reused by the
next snapshot only after the save that writes them is over; pass the lease's ``release`` as the
snapshot's ``release``). The trainer state and meta dicts are encoded to JSON right away, so later
changes to those dicts do not leak into the checkpoint either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.checkpoint import catalog, reader, retention
from app.checkpoint.config import CheckpointConfig, check_policy
from app.checkpoint.hostbuf import SnapshotPool
from app.checkpoint.layout import MANIFEST, CheckpointRef, check_group_name, json_bytes, step_key
from app.checkpoint.lineage import with_lineage
from app.checkpoint.reader import LoadedCheckpoint
from app.checkpoint.saver import SaveWorker, default_kept_at
from app.checkpoint.tensorio import host_array
from app.checkpoint.writer import PreparedSave, write_checkpoint
from app.errors import AppError, CheckpointError
from app.store.base import ObjectStore

__all__ = ["Snapshot", "CheckpointManager", "host_copy", "StateCheck"]

log = logging.getLogger(__name__)

#: Called on a verified, loaded checkpoint; raises CheckpointError to have it skipped.
StateCheck = Callable[[LoadedCheckpoint], None]


@dataclass
class Snapshot:
    step: int
    #: group -> name -> array, e.g. ``{"model": {...}, "optimizer": {...}}``; owned by the manager once saved.
    tensors: dict[str, dict[str, np.ndarray]]
    #: Written as ``trainer_state.json`` (plain JSON data).
    state: dict[str, Any] = field(default_factory=dict)
    #: Lineage from the trainer: config, config_hash, metrics, data_source, notes, parent.
    meta: dict[str, Any] = field(default_factory=dict)
    #: Called once the save of these tensors is over (e.g. ``Lease.release`` of reused host buffers).
    release: Callable[[], None] | None = None


def host_copy(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Independent numpy copies of a state dict (paddle Tensors or arrays), safe to hand to ``save``."""
    return {name: host_array(value) for name, value in tensors.items()}


def _take_ownership(tensors: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    owned: dict[str, dict[str, np.ndarray]] = {}
    for group, arrays in tensors.items():
        check_group_name(group)
        owned[group] = {}
        for name, array in arrays.items():
            if not isinstance(array, np.ndarray):
                raise CheckpointError(
                    f"snapshot tensor {group}/{name} is a {type(array).__name__}, not numpy"
                )
            array.flags.writeable = False
            owned[group][name] = array
    return owned


def _once(release: Callable[[], None] | None) -> Callable[[], None]:
    done = False

    def call() -> None:
        nonlocal done
        if release is not None and not done:
            done = True
            release()

    return call


def prepare(snapshot: Snapshot, release: Callable[[], None] | None = None) -> PreparedSave:
    """Everything the worker needs, checked and encoded on the caller's thread (cheap, no tensor copies)."""
    if not snapshot.tensors:
        raise CheckpointError(f"snapshot of step {snapshot.step} holds no tensors")
    meta = with_lineage(snapshot.meta, snapshot.step)
    metrics = dict(meta.get("metrics") or {})
    return PreparedSave(
        step=snapshot.step,
        tensors=_take_ownership(snapshot.tensors),
        state_json=json_bytes(snapshot.state, f"trainer state of step {snapshot.step}"),
        meta_json=json_bytes(meta, f"meta of step {snapshot.step}"),
        metrics=metrics,
        release=release if release is not None else snapshot.release,
    )


class CheckpointManager:
    """Saves to and loads from one store root, applying ``cfg``'s retention after each commit."""

    def __init__(self, store: ObjectStore, cfg: CheckpointConfig, staging_dir: Path) -> None:
        self.store = store
        self.cfg = check_policy(cfg)  # however the policy was built, it is checked like the config
        self.staging_dir = Path(staging_dir)
        self._protected: set[int] = set()
        #: Committed steps that failed verification when loading: re-saving one replaces it.
        self._unusable: set[int] = set()
        kept_at = default_kept_at(store.is_local, store.describe, self.staging_dir)
        #: Reusable host buffers for snapshots (``self.buffers.take(state)``), see app.checkpoint.hostbuf.
        self.buffers = SnapshotPool()
        self._worker = SaveWorker(self._save_and_retain, background=cfg.async_save, kept_at=kept_at)

    # -- reading -------------------------------------------------------------------------------
    def committed_steps(self) -> list[int]:
        return [s.step for s in catalog.committed(self.store)]

    def latest(self) -> CheckpointRef | None:
        """The newest committed checkpoint whose files are all present with the right sizes."""
        return catalog.latest(self.store)

    def load(self, ref: CheckpointRef) -> LoadedCheckpoint:
        """Verify every file's sha256 and read ``ref``; a CheckpointError names a bad file."""
        return reader.load(self.store, ref, self.staging_dir)

    def load_latest(self, check: StateCheck | None = None) -> LoadedCheckpoint | None:
        """Load the newest checkpoint that verifies, warning about and skipping any that do not.

        ``check(loaded)`` may reject a verified checkpoint (e.g. a trainer state a resume cannot use)
        with a CheckpointError; it is then skipped like one whose sha256 does not match. None when
        nothing is committed. When checkpoints are committed but none is usable, a CheckpointError:
        starting over silently would discard the run (and its steps could not be re-saved).
        """
        statuses = catalog.scan(self.store)
        committed = [s.step for s in statuses if s.has_manifest]
        # Committed steps that fail verification may be replaced by a re-save; an unreadable manifest
        # (perhaps a newer tool's) is never replaced.
        self._unusable = {s.step for s in statuses if s.committed and not s.intact}
        while True:
            ref = catalog.latest(self.store, statuses)
            if ref is None:
                break
            try:
                loaded = self.load(ref)
                if check is not None:
                    check(loaded)
                return loaded
            except CheckpointError as exc:
                log.warning(
                    "skipping checkpoint step %d: %s; falling back to the previous one", ref.step, exc.line()
                )
                self._unusable.add(ref.step)
                statuses = [s for s in statuses if s.step < ref.step]
        if committed:
            raise CheckpointError(
                f"none of the {len(committed)} committed checkpoint(s) under {self.store.uri} is usable "
                f"(steps {', '.join(map(str, committed))}; see the warnings above)",
                hint="inspect them with `warmstart ckpt ls URI --verify`; move the bad step folders away "
                "or point checkpoint.uri elsewhere to start over",
            )
        return None

    # -- writing -------------------------------------------------------------------------------
    def save(self, snapshot: Snapshot) -> CheckpointRef | None:
        """Save ``snapshot``: returns at once when async (None), else after the commit (its ref).

        Raises the failure of the previous async save, if it failed. ``snapshot.release`` is called once
        its save is over, or right away when it is not handed over (a failure raised here).
        """
        release = _once(snapshot.release)
        try:
            return self._worker.submit(prepare(snapshot, release))
        except BaseException:
            release()  # not handed over (or already run inline): nothing reads its buffers any more
            raise

    def flush(self) -> CheckpointRef | None:
        """Wait for the save in flight; raise its failure. Returns its ref when one was in flight."""
        return self._worker.wait()

    def check(self) -> None:
        """Raise the failure of a finished background save, without waiting."""
        self._worker.check()

    def protect(self, ref: CheckpointRef) -> None:
        """Never delete ``ref`` (the checkpoint this run resumed from)."""
        self._protected.add(ref.step)

    def close(self) -> None:
        self._worker.close()

    @property
    def in_flight(self) -> int | None:
        return self._worker.in_flight

    # -- retention -----------------------------------------------------------------------------
    def plan_gc(self) -> retention.RetentionPlan:
        in_flight = [s for s in (self._worker.in_flight,) if s is not None]
        return retention.collect(self.store, self.cfg, self._protected, in_flight)

    def gc(self) -> list[int]:
        return retention.apply(self.store, self.plan_gc())

    def _save_and_retain(self, prepared: PreparedSave) -> CheckpointRef:
        if prepared.step in self._unusable:  # re-trained after it failed verification: replace it
            log.warning(
                "replacing checkpoint step %d, which failed verification, with the new save", prepared.step
            )
            self.store.delete([f"{step_key(prepared.step)}/{MANIFEST}"])  # un-commit; leftovers are cleared
            self._unusable.discard(prepared.step)
        ref = write_checkpoint(self.store, prepared, self.staging_dir)
        try:
            plan = retention.collect(self.store, self.cfg, self._protected | {ref.step})
            retention.apply(self.store, plan)
        except Exception as exc:  # noqa: BLE001  (the checkpoint is committed; cleanup failing is not fatal)
            reason = exc.line() if isinstance(exc, AppError) else repr(exc)
            log.warning("retention after step %d failed (checkpoint kept): %s", ref.step, reason)
        return ref
