"""The main job: pick the start point, train with the schedule, checkpoint, and stop cleanly on preemption.

``train(cfg)`` returns 0 when the run finished and published its final checkpoint; it raises
:class:`app.errors.Preempted` (exit 143) after a stop request was honoured with a committed checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import paddle

from app.checkpoint import CheckpointManager, catalog
from app.checkpoint.tags import promote
from app.config.schema import Config
from app.errors import Preempted, PreemptedBeforeStart, TaskError
from app.schedule import BuiltSchedule
from app.tasks.base import Task
from app.train import amp, dist, peers, rng
from app.train.batches import BatchSource, InProcess, open_batches
from app.train.data import DataStream, PlannedStream
from app.train.lossmeter import LossWindow, NonFinite
from app.train.preempt import StopRequest
from app.train.runlog import RunLog
from app.train.setup import Dist, apply_freeze, trainable_names

__all__ = ["Session", "run_loop"]

log = logging.getLogger(__name__)


@dataclass
class Session:
    """Everything the loop reads and advances; built by :mod:`app.train.start`."""

    cfg: Config
    task: Task
    net: paddle.nn.Layer  # the model (unwrapped)
    model: paddle.nn.Layer  # what forward runs through (DataParallel in multi-process runs)
    optimizer: paddle.optimizer.Optimizer
    schedule: BuiltSchedule
    lr: paddle.optimizer.lr.LRScheduler  # the scheduler the optimizer steps (may wrap schedule's)
    stream: DataStream | PlannedStream  # PlannedStream: the task's own batch plan (Task.epoch_batches)
    mgr: CheckpointManager
    runlog: RunLog
    stop: StopRequest
    dist: Dist
    amp_dtype: str | None = None
    scaler: Any = None
    step: int = 0
    last_saved_step: int = -1
    best: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    parent: str | None = None
    init_source: dict[str, Any] | None = None  # lineage: what init.from loaded (URI, sha256), kept on resume
    build_snapshot: Any = None  # callable(session) -> Snapshot; set by app.train.start
    mgr_uri: str = ""
    trainable: frozenset[str] | None = None  # parameters freeze stages may toggle (set at the first step)
    batches: BatchSource | None = None  # set by run_loop (worker pool or in-process); in-process if unset
    window: LossWindow = field(default_factory=LossWindow)  # this log window's losses, on the device


def check_finite(s: Session, bad: NonFinite | None = None) -> None:
    """Stop (exit 5) if a loss since the last check was not finite, on this rank or another (a collective:
    every rank calls it at the same point). ``bad``: what :meth:`LossWindow.read` already found."""
    if bad is None:
        bad = s.window.all_finite()
    if not dist.any_rank(bad is not None, s.dist):
        return
    hint = "lower schedule.base_lr, lengthen schedule.warmup, or set optim.grad_clip_norm"
    if bad is None:
        raise TaskError(
            f"loss is not finite on another rank (stopped at step {s.step}, nothing saved)", hint=hint
        )
    raise TaskError(
        f"loss is {bad.value} at step {bad.step} (lr {bad.lr:.3g}); stopped at step {s.step} before "
        "saving or evaluating any update made since",
        hint=hint,
    )


def _micro_step(s: Session, accum: int) -> paddle.Tensor:
    if s.batches is None:
        s.batches = InProcess(s.task, s.stream)
    batch = s.task.to_batch(s.batches.next())
    if s.amp_dtype is None:
        loss = s.task.loss(s.model, batch)
    else:
        with paddle.amp.auto_cast(dtype=s.amp_dtype):
            loss = s.task.loss(s.model, batch)
    s.window.add(loss, s.step, s.lr.get_lr())  # stays on the device: no host sync here (lossmeter.py)
    scaled = loss / accum if accum > 1 else loss
    if s.scaler is not None:
        s.scaler.scale(scaled).backward()
    else:
        scaled.backward()
    return loss


def train_step(s: Session) -> paddle.Tensor:
    """One optimizer step over ``grad_accum_steps`` micro-batches; returns the mean micro-batch loss as a
    device tensor (reading it is a host sync; the loop reads losses only at log steps)."""
    accum = s.cfg.train.grad_accum_steps
    rng.seed_for_step(s.cfg.run.seed, s.step, s.dist.rank)
    boundary = s.trainable is None or any(f.until_step == s.step for f in s.cfg.freeze)
    unfrozen = []
    if s.cfg.freeze and boundary:  # the frozen set changes only at the session start and at until_step
        if s.trainable is None:
            s.trainable = trainable_names(s.net)
        unfrozen = apply_freeze(s.cfg.freeze, s.net, s.step, s.trainable)
    if unfrozen:
        log.info("unfroze %d parameter tensors at step %d: %s", len(unfrozen), s.step, ", ".join(unfrozen))
        s.runlog.event(s.step, "unfreeze", parameters=unfrozen)
    losses = [_micro_step(s, accum) for _ in range(accum)]
    if s.scaler is not None:  # fp16: a step with non-finite gradients is skipped and the scale halved
        s.scaler.step(s.optimizer)
        amp.update_scaler(s.scaler, s.step + 1)
    else:
        s.optimizer.step()
    s.optimizer.clear_grad()
    s.lr.step()
    s.step += 1
    after_step = getattr(s.task, "after_step", None)
    if after_step is not None:  # e.g. an EMA update of the weights
        after_step(s.net, s.step)
    return losses[0].detach() if accum == 1 else paddle.add_n([x.detach() for x in losses]) / accum


def evaluate(s: Session) -> bool:
    """Run the task's evaluation, log it, update best tracking; True when this is a new best."""
    check_finite(s)  # never evaluate (or save as best) weights a non-finite loss has updated
    s.model.eval()
    try:
        metrics = s.task.evaluate(s.net)
    finally:
        s.model.train()
    s.metrics = metrics
    s.runlog.eval(s.step, s.stream.epoch, metrics)
    name, mode = s.cfg.train.metric, s.cfg.train.metric_mode
    if name not in metrics:
        raise TaskError(f"train.metric {name!r} is not reported by the task (it reports {sorted(metrics)})")
    value = metrics[name]
    old = s.best.get("value")
    if old is None or (value > old if mode == "max" else value < old):
        s.best = {"metric": name, "value": value, "step": s.step}
        return True
    return False


def save(s: Session, *, sync: bool, reason: str) -> None:
    if s.step == s.last_saved_step:
        return
    check_finite(s)  # never checkpoint an update made from a non-finite loss
    if s.dist.is_main:
        snap = s.build_snapshot(s)
        s.mgr.save(snap)
        if sync:
            s.mgr.flush()
        s.runlog.event(s.step, "checkpoint", reason=reason, sync=sync)
    # the others wait here, not in a gloo collective that gives up after 30 s
    dist.barrier(s.dist, best_effort=reason == "preempted")
    peers.note_commit(s.step)
    s.parent = s.mgr.store.describe(f"step-{s.step:08d}")  # lineage: the next checkpoint's parent URI
    s.last_saved_step = s.step


def _due(s: Session, last_save_time: float) -> bool:
    ck = s.cfg.checkpoint
    if ck.every_steps and s.step % ck.every_steps == 0:
        return True
    return bool(ck.every_minutes and time.monotonic() - last_save_time >= 60 * ck.every_minutes)


def _preempt(s: Session, first_step: int) -> None:
    if s.step == first_step:  # asked to stop during start-up: nothing trained in this process
        s.runlog.event(s.step, "preempted", reason=s.stop.reason, saved=False)
        raise PreemptedBeforeStart(s.stop.reason)
    t0 = time.monotonic()
    s.runlog.event(s.step, "preempted", reason=s.stop.reason)
    save(s, sync=True, reason="preempted")
    s.mgr.flush()
    dist.barrier(s.dist, best_effort=True)  # no rank exits (143 ends the launch) before rank 0 committed
    peers.stop()  # every rank is leaving now: the others' exits are not lost peers
    took = time.monotonic() - t0
    budget = s.cfg.preempt.grace_seconds
    if took > budget:
        log.warning("preemption save took %.1fs, over preempt.grace_seconds=%.0fs", took, budget)
    raise Preempted(
        f"stopped at step {s.step} ({s.stop.reason}); checkpoint step-{s.step:08d} committed "
        f"in {took:.1f}s (budget {budget:.0f}s). Run the same command again to resume."
    )


def tag_best(s: Session) -> None:
    """Point ``checkpoint.tag_best`` at the committed step with the best metric (rank 0, after the last save).

    The best step was saved when it was evaluated (a new best triggers a save), so it is committed unless
    retention or a user removed it since; then the tag is left alone and a warning says why.
    """
    name, step = s.cfg.checkpoint.tag_best, s.best.get("step")
    if not name or step is None or not s.dist.is_main:
        return
    ref = next((st.ref for st in catalog.committed(s.mgr.store) if st.step == step and st.intact), None)
    if ref is None:
        log.warning(
            "checkpoint.tag_best: best step %d is not a committed checkpoint; tag %r unchanged", step, name
        )
        return
    promote(s.mgr.store, ref, name, f"best {s.best.get('metric')}={s.best.get('value')}", force=True)
    s.runlog.event(s.step, "tagged", tag=name, best=s.best)


def _log_window(s: Session, lr_used: float, samples: int) -> None:
    """The log step: the window's mean loss (one device read), checked finite, to the JSON log and bar."""
    mean, bad = s.window.read()
    check_finite(s, bad)
    loss_mean = dist.mean_over_ranks(mean, s.dist)
    s.runlog.train(s.step, s.stream.epoch, lr_used, loss_mean, samples)
    s.runlog.progress(s.step, loss_mean)


def run_loop(s: Session) -> int:
    """Train to the end (or a stop request); data workers (``train.data_workers``) live as long as this."""
    s.batches, workers = open_batches(s.task, s.stream, s.cfg.train, s.dist.world)
    if workers:
        log.info("data workers: %d (pids %s), %d batches ahead each", workers,
                 ", ".join(map(str, s.batches.pids)), s.cfg.train.prefetch)  # fmt: skip
    try:
        return _run(s)
    finally:
        s.batches.close()  # prefetched, unconsumed batches are dropped; the position counts consumed ones
        s.batches = None


def _run(s: Session) -> int:
    total = s.schedule.total_steps
    cfg = s.cfg
    s.model.train()
    s.runlog.start(s.step)
    last_save_time = time.monotonic()
    interval_samples = 0
    first_step = s.step
    while s.step < total:
        s.stop.keep_sources()  # a library may have taken SIGTERM back (app/signals.py)
        if dist.stop_agreed(s.stop, s.dist):
            _preempt(s, first_step)
        lr_used = s.lr.get_lr()
        consumed = s.stream.consumed
        train_step(s)
        interval_samples += s.stream.consumed - consumed  # a task's own plan may vary the batch size
        if s.step % cfg.train.log_every_steps == 0 or s.step == total:
            _log_window(s, lr_used, interval_samples)
            interval_samples = 0
        else:
            s.runlog.progress(s.step)
        new_best = False
        if cfg.train.eval_every_steps and s.step % cfg.train.eval_every_steps == 0 and s.step < total:
            new_best = evaluate(s)
        if s.step < total and (dist.any_rank(_due(s, last_save_time), s.dist) or new_best):
            save(s, sync=not cfg.checkpoint.async_save, reason="best" if new_best else "interval")
            last_save_time = time.monotonic()
    if dist.stop_agreed(s.stop, s.dist):
        _preempt(s, first_step)
    evaluate(s)
    save(s, sync=True, reason="final")
    s.mgr.flush()
    tag_best(s)
    dist.barrier(s.dist)
    digest = dist.check_replicas(s.net, s.dist)
    peers.stop()
    extra = {"params_sha256": digest} if digest else {}
    s.runlog.event(s.step, "done", metrics=s.metrics, best=s.best, **extra)
    return 0
