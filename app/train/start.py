"""Assemble a training session: task, model, schedule, optimizer, checkpoints, and the start point.

The start point is decided here (resume > warm start from ``init.from`` > cold start), and everything a
resume needs is restored: model and optimizer tensors (strictly), scheduler state, RNG, data position,
step counter and best metric. :func:`snapshot` is the inverse, used for every save.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
from pathlib import Path

import numpy as np
import paddle

from app import cancel, signals
from app.checkpoint import CheckpointManager, LoadedCheckpoint, Snapshot, open_source
from app.checkpoint.labels import label_record
from app.checkpoint.layout import TRAINER_STATE
from app.checkpoint.schema import check_resume_state
from app.config import config_hash
from app.config.paths import local_path_of, resolve_output_dir
from app.config.schema import Config
from app.config.typed import to_data
from app.errors import CheckpointError
from app.redact import redact_text
from app.schedule import build_schedule, plain_state
from app.store import open_store
from app.tasks.base import build_task
from app.train import amp, peers, rng
from app.train import dist as dist_sync
from app.train.data import make_stream
from app.train.loop import Session
from app.train.preempt import StopRequest
from app.train.runlog import RunLog
from app.train.setup import build_optimizer, check_freeze, init_dist
from app.train.state import load_optimizer, model_tensors, optimizer_tensors
from app.train.warmstart import label_change, load_weights, task_label_space, warm_lr_lint

__all__ = ["prepare", "snapshot", "checkpoint_uri"]

log = logging.getLogger(__name__)


def checkpoint_uri(cfg: Config) -> str:
    return cfg.checkpoint.uri or str(Path(cfg.run.dir) / "checkpoints")


def snapshot(s: Session) -> Snapshot:
    cfg = s.cfg
    state = {
        "step": s.step,
        "epoch": s.stream.epoch,
        "data": s.stream.state(),
        "scheduler": plain_state(s.lr.state_dict(), "scheduler"),
        "rng": rng.capture(),
        "world_size": s.dist.world,
        "micro_batch": cfg.train.batch_size,
        "grad_accum_steps": cfg.train.grad_accum_steps,
        "global_batch": cfg.train.batch_size * cfg.train.grad_accum_steps * s.dist.world,
        "total_steps": s.schedule.total_steps,
        "best": s.best,
        "amp_scaler": plain_state(s.scaler.state_dict(), "amp_scaler") if s.scaler is not None else None,
        "data_seeding": DATA_SEEDING,
    }
    meta = {
        "config": to_data(cfg),
        "config_hash": config_hash(cfg),
        "metrics": dict(s.metrics),
        "data_source": cfg.run.data_source or s.task.data_source,
        "notes": cfg.run.notes,
        "parent": s.parent,
        "init_source": s.init_source,
        "user": getpass.getuser(),
    }
    space = task_label_space(s.task)
    if space is not None:  # what the class layers' rows mean, checked by a later warm start
        meta["label_space"] = label_record(space)
    # Host copies into buffers reused across saves (app.checkpoint.hostbuf), handed back after the save.
    lease = s.mgr.buffers.take(
        {"model": model_tensors(s.net), "optimizer": optimizer_tensors(s.optimizer, s.net)}
    )
    tensors = dict(lease.tensors)
    extra = getattr(s.task, "extra_tensors", None)
    if extra is not None:  # task-owned state, e.g. {"ema": {...}}: saved and restored exactly
        tensors.update(extra())
    return Snapshot(step=s.step, tensors=tensors, state=state, meta=meta, release=lease.release)


def _shown_uri(uri: str) -> str:
    """A local checkpoint folder as its resolved absolute path; a remote URI as written."""
    local = local_path_of(uri)
    return str(resolve_output_dir("checkpoint.uri", local)) if local is not None else uri


def _start_text(cfg: Config, s: Session, kind: str, source: str | None) -> str:
    """``warm_start from URI (sha256 ...)``: the digest of an init.from weights file, e.g. a download."""
    if not source:
        return kind
    digest = (s.init_source or {}).get("sha256") if source == cfg.init.from_ else None
    return f"{kind} from {source}" + (f" (sha256 {digest})" if digest else "")


def _summary(cfg: Config, s: Session, kind: str, source: str | None) -> None:
    sched = s.schedule
    n_params = sum(int(np.prod(p.shape)) for p in s.net.parameters())
    gb = cfg.train.batch_size * cfg.train.grad_accum_steps * s.dist.world
    w = cfg.schedule.warmup
    decay = "stages" if cfg.schedule.stages else cfg.schedule.decay.kind
    run_dir = resolve_output_dir("run.dir", cfg.run.dir)
    for line in (
        f"run {cfg.run.name!r} in {run_dir} (seed {cfg.run.seed}, {s.dist.world} process(es))",
        f"task {cfg.task.kind}: {n_params:,} parameters, {s.task.train_size()} training samples",
        f"batch {cfg.train.batch_size} x accum {cfg.train.grad_accum_steps} x world {s.dist.world} = {gb}; "
        f"{s.stream.micro_batches_per_epoch // cfg.train.grad_accum_steps} steps/epoch",
        f"schedule: {sched.total_steps} steps, base_lr {sched.base_lr:g}, warmup {w.kind} "
        f"{sched.warmup_steps} steps, decay {decay}; optimizer {cfg.optim.name}",
        f"checkpoints: {_shown_uri(s.mgr_uri)}; start: {_start_text(cfg, s, kind, source)}",
    ):
        log.info("%s", redact_text(line))
    for note in sched.notes:
        log.info("schedule: %s", note)
    for warning in sched.warnings:
        log.warning("schedule lint: %s", warning)


def _own_resume_hint(uri: str) -> str:
    """What works when the run's own checkpoint no longer fits the model (init.* never applies to it)."""
    return (
        f"this is the run's own checkpoint in checkpoint.uri {uri}, which is always resumed exactly and "
        "ignores init.*; to train a changed model set a new checkpoint.uri (and warm-start it with "
        f"init.from={uri} init.mode=partial), or move the old step-* folders out of {uri}"
    )


def _load_exact_tensors(s: Session, loaded: LoadedCheckpoint, source: str) -> None:
    # init.from with init.mode=resume honours init.label_check; the run's own checkpoint is always checked
    own = source != s.cfg.init.from_
    labels = (
        label_change(task_label_space(s.task), loaded.meta, source, note_unrecorded=not own)
        if own or s.cfg.init.label_check
        else None
    )
    load_weights(s.net, loaded.tensors["model"], "resume", s.cfg.init, source, labels=labels)
    load_optimizer(s.optimizer, s.net, loaded.tensors.get("optimizer", {}), source)
    load_extra = getattr(s.task, "load_extra_tensors", None)
    if load_extra is not None:
        load_extra({k: v for k, v in loaded.tensors.items() if k not in ("model", "optimizer")}, source)


#: How random augmentation is seeded: 1 = from (run seed, epoch, sample index), whichever process makes
#: the batch. Checkpoints without the key were written before that (augmentation drew from the trainer's
#: global RNG state).
DATA_SEEDING = 1
#: Task kinds whose training batches draw random augmentation.
_AUGMENTING = ("ocr_rec", "detection")


def _note_old_seeding(s: Session, state: dict, source: str) -> None:
    if "data_seeding" not in state and s.cfg.task.kind in _AUGMENTING:
        log.warning(
            "%s was saved by an older warmstart whose augmentation drew from the trainer's RNG state: the "
            "batches from here on are augmented differently than that version would have done (weights, "
            "optimizer, schedule and data position are restored exactly)", source,
        )  # fmt: skip


def _restore_exact(s: Session, loaded: LoadedCheckpoint, source: str, batch_changed: bool) -> None:
    try:
        _load_exact_tensors(s, loaded, source)
    except CheckpointError as exc:
        if source == s.cfg.init.from_:  # init.from with init.mode=resume: its own hint applies
            raise
        raise CheckpointError(exc.message, hint=_own_resume_hint(s.mgr_uri)) from None
    st = loaded.state
    s.step = int(st["step"])
    try:
        if batch_changed:
            for _ in range(s.step):  # the rescaled schedule, fast-forwarded to the same optimizer step
                s.lr.step()
        else:
            s.lr.set_state_dict(st["scheduler"])
        rng.restore(st["rng"])
        s.stream.restore(st["data"])
        amp.restore_scaler(s.scaler, st.get("amp_scaler"), source)
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # the schema passed, this run disagrees
        raise CheckpointError(
            f"{source}/{TRAINER_STATE} cannot be restored into this run: {exc!r}",
            hint="the schedule or AMP settings may differ from the run that saved it; use a new "
            "checkpoint.uri, or move that step folder away",
        ) from None
    _note_old_seeding(s, st, source)
    s.best = dict(st.get("best") or {})
    s.last_saved_step = s.step
    s.parent = source


def _warm_start(s: Session, loaded: LoadedCheckpoint, source: str) -> None:
    init = s.cfg.init
    space = task_label_space(s.task) if init.label_check else None
    labels = label_change(space, loaded.meta, source)
    report = load_weights(s.net, loaded.tensors["model"], init.mode, init, source, labels=labels)
    for line in report.lines():
        log.info("warm start (%s): %s", init.mode, line)
    if s.dist.is_main:
        (Path(s.cfg.run.dir) / "warmstart_report.json").write_text(json.dumps(report.as_dict(), indent=2))
    # full lists: the report file; the event keeps the problems and how many names were paired
    summary = {k: v for k, v in report.as_dict().items() if k not in ("loaded", "mapped")}
    summary["mapped_count"] = len(report.mapped())
    s.runlog.event(
        0, "warm_start", source=source, mode=init.mode, loaded=len(report.loaded), report=summary,
        sha256=(s.init_source or {}).get("sha256"),
    )  # fmt: skip
    lint = warm_lr_lint(s.schedule.base_lr, loaded.meta)
    if lint:
        log.warning("warm-start lint: %s", lint)
    s.parent = source


def _resumable(loaded: LoadedCheckpoint) -> None:
    """Reject a checkpoint an exact resume cannot use (its types were checked when it was read)."""
    check_resume_state(loaded.state, f"{loaded.ref.uri.rstrip('/')}/{TRAINER_STATE}")
    if "model" not in loaded.tensors:
        raise CheckpointError(f"{loaded.ref.uri} holds no model tensors (groups: {sorted(loaded.tensors)})")


def _find_start(
    cfg: Config, mgr: CheckpointManager, run_dir: Path
) -> tuple[str, LoadedCheckpoint | None, str | None]:
    # The newest checkpoint that passes sha256 and whose trainer state an exact resume can use; torn or
    # invalid ones are skipped with a warning.
    loaded = mgr.load_latest(check=_resumable)
    if loaded is not None:
        mgr.protect(loaded.ref)
        return "resume", loaded, loaded.ref.uri
    if cfg.init.from_:
        loaded = open_source(
            cfg.init.from_,
            cfg.store,
            allow_pickle=cfg.init.allow_pickle,
            staging_dir=run_dir / "init",
            sha256=cfg.init.sha256,
            for_init=True,
        )
        kind = "resume" if cfg.init.mode == "resume" else "warm_start"
        if kind == "resume":
            _resumable(loaded)
        return kind, loaded, cfg.init.from_
    return "cold_start", None, None


def init_source_record(loaded: LoadedCheckpoint, source: str, mode: str) -> dict[str, object]:
    """What the lineage keeps of ``init.from``: the URI, and the sha256 of the file (a weights file, e.g. a
    download) or of the manifest (a checkpoint) that was actually loaded."""
    record: dict[str, object] = {"from": source, "mode": mode}
    if loaded.meta.get("source_sha256"):
        record["sha256"] = loaded.meta["source_sha256"]
    elif loaded.ref.manifest_sha256:
        record.update(step=loaded.ref.step, manifest_sha256=loaded.ref.manifest_sha256)
    return record


def _carry_init_source(s: Session, kind: str, loaded: LoadedCheckpoint | None, source: str | None) -> None:
    """Warm start: record init.from; resume of the run's own checkpoint: keep the record it carries."""
    if loaded is None or source is None:
        return
    if source == s.cfg.init.from_:
        s.init_source = init_source_record(loaded, source, s.cfg.init.mode)
    elif kind == "resume" and isinstance(loaded.meta.get("init_source"), dict):
        s.init_source = loaded.meta["init_source"]


def prepare(cfg: Config, stop: StopRequest) -> Session:
    # Joining the group and building the task import toolkits that take SIGTERM (paddlenlp resets it to
    # the default action): hold the signals meanwhile, so one arriving now waits for our handler.
    with signals.held("while building the task"):
        dist = init_dist()
        peers.start(dist, cfg.preempt.peer_timeout_seconds)  # exit 142 if another rank is lost
        run_dir = Path(cfg.run.dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        task = build_task(cfg.task, cfg.run.seed, allow_pickle=cfg.init.allow_pickle)
        rng.seed_all(cfg.run.seed, dist.rank)
        with paddle.utils.unique_name.guard():
            net = task.build_model()
    accum = cfg.train.grad_accum_steps
    stream = make_stream(task, cfg.train.batch_size, cfg.run.seed, dist.world, dist.rank)
    global_batch = cfg.train.batch_size * accum * dist.world
    uri = checkpoint_uri(cfg)
    ck = cfg.checkpoint
    if ck.best_metric is None:  # best-K retention follows the metric the run tracks
        ck = dataclasses.replace(ck, best_metric=cfg.train.metric, best_mode=cfg.train.metric_mode)
    mgr = CheckpointManager(open_store(uri, cfg.store), ck, staging_dir=run_dir / "staging")
    with cancel.stopping_on(lambda: stop.reason if stop.requested else None):
        kind, loaded, source = _find_start(cfg, mgr, run_dir)  # a download stops on a signal
    old_batch = int(loaded.state.get("global_batch") or 0) if kind == "resume" and loaded else 0
    batch_changed = bool(old_batch) and old_batch != global_batch
    built = build_schedule(
        cfg.schedule,
        steps_per_epoch=max(1, stream.micro_batches_per_epoch // accum),  # data.steps_per_epoch's count
        global_batch=global_batch,
        optimizer_name=cfg.optim.name,
        # A configured reference batch already makes the LR a function of the current batch; without
        # one, the checkpoint's batch is the reference, so the LR scales relative to what it was.
        reference_batch=old_batch if batch_changed and cfg.schedule.scaling.reference_batch is None else None,
    )
    check_freeze(cfg.freeze, net, built.total_steps)
    lr = _with_freeze_factors(cfg, built.scheduler)
    optimizer = build_optimizer(cfg.optim, lr, net)  # config errors (optim.no_decay) before any log line
    precision = amp.plan_for(cfg.train.amp)
    s = Session(
        cfg=cfg, task=task, net=net,
        model=dist_sync.data_parallel(net, dist),
        optimizer=optimizer, schedule=built, lr=lr, stream=stream, mgr=mgr,
        runlog=RunLog(
            dist_sync.rank_dir(run_dir, dist), built.total_steps, cfg.train.progress_bar,
            visualdl=cfg.train.visualdl,
        ),  # rank > 0 logs to <run.dir>/rank<N>/log.jsonl
        stop=stop, dist=dist,
        amp_dtype=precision.dtype, scaler=amp.make_scaler(precision),
        build_snapshot=snapshot, mgr_uri=uri,
    )  # fmt: skip
    _carry_init_source(s, kind, loaded, source)
    _summary(cfg, s, kind, source)
    if batch_changed:
        log.warning(
            "global batch changed since the checkpoint: %d -> %d; LR/warmup rescaled by schedule.scaling "
            "(lr_rule=%s, warmup_rule=%s), sample position kept (epoch %s, sample %s of the epoch)",
            old_batch, global_batch, cfg.schedule.scaling.lr_rule, cfg.schedule.scaling.warmup_rule,
            loaded.state.get("data", {}).get("epoch"), loaded.state.get("data", {}).get("samples_in_epoch"),
        )  # fmt: skip
    if kind == "resume":
        _restore_exact(s, loaded, source, batch_changed)
        s.runlog.event(s.step, "resume", source=source, batch_changed=batch_changed)
    elif kind == "warm_start":
        _warm_start(s, loaded, source)
    else:
        s.runlog.event(0, "cold_start")
    if not dist_sync.same_on_all_ranks(s.step, dist):  # e.g. a listing that changed between ranks' reads
        raise CheckpointError(f"rank {dist.rank} starts at step {s.step} but another rank does not")
    return s


def _with_freeze_factors(cfg: Config, scheduler: paddle.optimizer.lr.LRScheduler):
    changes = [(f.until_step, f.lr_factor, f.rewarmup_steps) for f in cfg.freeze]
    if not any(factor != 1.0 or rewarm for _, factor, rewarm in changes):
        return scheduler
    from app.schedule.factor import FactorSchedule

    return FactorSchedule(scheduler, changes)
