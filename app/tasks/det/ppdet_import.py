"""Continue a run started with PaddleDetection's own trainer: its save becomes one committed step.

``warmstart ckpt import output/<cfg>/model_final.pdparams DEST --config run.yaml --allow-pickle`` reads
ppdet's ``.pdparams`` + ``.pdopt`` (+ ``.pdema``), builds the session ``warmstart train`` would build
from ``run.yaml`` (the same ppdet config, so the same model, optimizer and schedule), puts ppdet's state
into it and saves it with the trainer's own snapshot code, so the result is a checkpoint an exact resume
takes like any other. What ppdet's ``load_weight(..., optimizer, ema)`` would restore is restored:

* weights: ``.pdema`` when ppdet's EMA was on (ppdet saves the EMA weights as ``.pdparams`` and the trained
  ones as ``.pdema``), else ``.pdparams``; every tensor must match the model (names and shapes);
* optimizer accumulators: mapped from Paddle's generated names to our structured names through the model
  built as ppdet builds it (``create(architecture)`` in a fresh name scope, as in ``tools/train.py``), each
  checked against the optimizer this config builds;
* the EMA (``use_ema``): ppdet's ``ModelEMA.resume(<.pdparams>, step)`` — the state is the saved EMA
  weights, its step the scheduler's step;
* the position: step = ``LR_Scheduler.last_epoch``, epoch = ``last_epoch``; the LR our schedule gives at
  that step must equal the ``last_lr`` ppdet saved, or nothing is written.

Nothing is written to the store until every check passed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.checkpoint.layout import CheckpointRef
from app.checkpoint.manager import prepare as prepare_save
from app.checkpoint.writer import write_checkpoint
from app.config import config_hash
from app.config.schema import Config, InitConfig
from app.config.typed import to_data
from app.errors import CheckpointError, ConfigError
from app.store.base import ObjectStore
from app.tasks.det.ppdet_output import PpdetOutput, find_files, read_output, split_accumulator

if TYPE_CHECKING:
    from app.train.loop import Session

__all__ = ["import_ppdet_run"]

log = logging.getLogger(__name__)

#: Relative LR difference above which our schedule is not ppdet's at the imported step.
LR_TOLERANCE = 1e-9


def _session_config(cfg: Config, staging: Path) -> Config:
    """The user's config with its outputs moved into ``staging`` and no ``init.from``: a cold session."""
    return dataclasses.replace(
        cfg,
        run=dataclasses.replace(cfg.run, dir=str(staging / "run")),
        checkpoint=dataclasses.replace(cfg.checkpoint, uri=str(staging / "session"), async_save=False),
        init=InitConfig(allow_pickle=cfg.init.allow_pickle),
    )


def _model_weights(out: PpdetOutput, use_ema: bool, sources: dict[str, str]) -> tuple[dict, str]:
    if out.ema_model is None:
        if use_ema:
            log.warning(
                "%s: the config uses EMA (use_ema) but there is no .pdema beside it: the EMA starts over, "
                "as ppdet's own resume would", sources[".pdparams"],
            )  # fmt: skip
        return out.params, sources[".pdparams"]
    if not use_ema:
        raise CheckpointError(
            f"{sources['.pdema']} exists, so {sources['.pdparams']} holds EMA weights, but the config has no "
            "use_ema",
            hint="set use_ema: true in the ppdet config, as in the run that wrote these files",
        )
    return out.ema_model, sources[".pdema"]


def _optimizer_arrays(s: Session, out: PpdetOutput, source: str) -> dict[str, np.ndarray]:
    """``<structured name>/<kind>`` arrays from ppdet's generated accumulator names."""
    struct = {p.name: n for n, p in s.net.named_parameters()}
    arrays: dict[str, np.ndarray] = {}
    unknown = []
    for key, value in out.accumulators.items():
        split = split_accumulator(key, list(struct))
        if split is None:
            unknown.append(key)
            continue
        arrays[f"{struct[split[0]]}/{split[1]}"] = value
    if unknown or not arrays:
        shown = ", ".join(sorted(unknown)[:5]) or "(no accumulators)"
        raise CheckpointError(
            f"{source}: optimizer state for parameters this model does not have: {shown} (this model's "
            f"parameters are named {', '.join(sorted(struct)[:3])}, ...)",
            hint="the .pdopt must come from a ppdet run of the same config (architecture and sizes)",
        )
    return arrays


def _check_position(s: Session, out: PpdetOutput, source: str) -> None:
    per_epoch = max(1, s.stream.micro_batches_per_epoch // s.cfg.train.grad_accum_steps)
    if out.steps != out.epochs * per_epoch:
        raise CheckpointError(
            f"{source}: ppdet took {out.steps} steps in {out.epochs} epochs, but this config makes "
            f"{per_epoch} steps per epoch ({s.task.train_size()} images, train.batch_size "
            f"{s.cfg.train.batch_size}): the LR and data position would not continue where ppdet stopped",
            hint="use ppdet's TrainReader.batch_size x its number of GPUs and the same data set",
        )
    if out.steps > s.schedule.total_steps:
        raise CheckpointError(
            f"{source}: ppdet took {out.steps} steps, more than this schedule's {s.schedule.total_steps}",
            hint="the run is already over; import the weights alone (without --config) to fine-tune them",
        )


def _advance(s: Session, out: PpdetOutput, source: str) -> None:
    """Put the session at ppdet's step: schedule fast-forwarded, data at the start of the next epoch."""
    for _ in range(out.steps):
        s.lr.step()
    ours = float(s.lr.get_lr())
    # past its last step ppdet's PiecewiseDecay repeats its last value and ours gives the end LR: a run
    # imported at its very end trains no further step, so there is no LR to agree on
    ended = out.steps == s.schedule.total_steps
    if (
        out.last_lr is not None
        and not ended
        and not math.isclose(ours, out.last_lr, rel_tol=LR_TOLERANCE, abs_tol=1e-15)
    ):
        raise CheckpointError(
            f"{source}: ppdet's scheduler saved LR {out.last_lr:.10g} for step {out.steps}, this config's "
            f"schedule gives {ours:.10g}",
            hint="let the ppdet LearningRate block fill schedule.* (remove schedule.* from the Warmstart "
            "config) and use ppdet's batch size and data",
        )
    s.step = out.steps
    s.stream.restore({"epoch": out.epochs, "samples_in_epoch": 0})
    s.task.batches_seen = out.steps * s.cfg.train.grad_accum_steps
    s.last_saved_step = -1


def _ema_arrays(s: Session, out: PpdetOutput) -> dict[str, np.ndarray]:
    """ppdet's ``ModelEMA.resume(<.pdparams>, step)``, in our Ema's saved form."""
    ema = s.task.ema.ema
    # missing or mis-shaped tensors are reported by Ema.load, naming the file
    arrays = {k: out.params[k] for k in ema.state_dict if k not in ema.ema_black_list and k in out.params}
    n = out.steps
    if ema.ema_decay_type == "threshold":
        decay = min(ema.decay, n / (9 + n)) if n else 0.0
    elif ema.ema_decay_type == "exponential":
        decay = ema.decay * (1 - math.exp(-n / 2000))
    else:
        decay = ema.decay
    arrays["@step"] = np.array(n, dtype=np.int64)
    arrays["@decay"] = np.array(decay, dtype=np.float64)  # the last update's decay, as ppdet computed it
    return arrays


def _restore(s: Session, out: PpdetOutput, sources: dict[str, str]) -> None:
    from app.train.state import load_optimizer
    from app.train.warmstart import load_weights

    weights, weights_src = _model_weights(out, s.task.ema is not None, sources)
    load_weights(s.net, weights, "resume", s.cfg.init, weights_src)
    load_optimizer(s.optimizer, s.net, _optimizer_arrays(s, out, sources[".pdopt"]), sources[".pdopt"])
    _check_position(s, out, sources[".pdopt"])
    _advance(s, out, sources[".pdopt"])
    if s.task.ema is not None and out.ema_model is not None:
        s.task.ema.load(_ema_arrays(s, out), sources[".pdparams"])


def _session(cfg: Config, staging: Path) -> Session:
    from app.train.preempt import StopRequest
    from app.train.start import prepare

    # the throw-away session's own JSON lines (a cold-start event) are not this command's output
    with contextlib.redirect_stdout(io.StringIO()):
        return prepare(_session_config(cfg, staging), StopRequest())


def _check_empty(store: ObjectStore) -> None:
    """The run continues from DEST's newest step, so DEST must hold no other run's checkpoints."""
    from app.checkpoint import catalog

    steps = [st.step for st in catalog.scan(store) if st.has_manifest]
    if steps:
        raise CheckpointError(
            f"{store.uri} already holds committed checkpoints (steps {', '.join(map(str, steps[:5]))}): "
            "`train` would continue from the newest of them, not from the imported ppdet run",
            hint="import into a new, empty checkpoint root",
        )


def import_ppdet_run(
    src: str, cfg: Config, store: ObjectStore, staging: Path, *, allow_pickle: bool
) -> CheckpointRef:
    """Import ppdet's save ``src`` (its .pdparams, .pdopt or name) as step ``LR_Scheduler.last_epoch``."""
    if cfg.task.kind != "detection":
        raise ConfigError(
            f"--config: task.kind is {cfg.task.kind!r}; a ppdet run imports into a detection task"
        )
    _check_empty(store)
    files = find_files(src, cfg.store, staging)
    out = read_output(files, allow_pickle=allow_pickle)
    s = _session(cfg, staging)
    try:
        _restore(s, out, files.sources)
        snap = s.build_snapshot(s)
    finally:
        s.mgr.close()
        s.runlog.close()
    snap.meta.update(
        config=to_data(cfg),
        config_hash=config_hash(cfg),
        parent=files.sources[".pdparams"],
        notes=f"imported from ppdet's Trainer: {', '.join(files.sources.values())}",
        imported_from={"ppdet": out.sha256, "steps": out.steps, "epochs": out.epochs},
    )
    ref = write_checkpoint(store, prepare_save(snap), staging / "write")
    log.info("imported ppdet run at step %d (epoch %d) as %s", out.steps, out.epochs, ref.uri)
    return ref
