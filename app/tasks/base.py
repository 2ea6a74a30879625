"""The small protocol every task adapter implements, and the registry that finds one by name.

A task supplies a model, datasets, a loss and an evaluation; the shared loop, schedule and checkpoints
know nothing else about it. A training batch is made in two parts: ``train_arrays`` (numpy only, no
paddle: it may run in a data worker process, see :mod:`app.train.batches`) and ``to_batch`` (paddle
tensors, in the trainer). Every random draw in ``train_arrays`` must be seeded from (run seed, epoch,
sample index) with :func:`app.train.rng.seeded`, never from process identity or timing.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from app.config.schema import TaskConfig
from app.config.typed import suggest
from app.errors import ConfigError
from app.tasks.registry import CONFIG_TRANSLATORS, TASKS, resolve, translate_config

__all__ = ["Task", "TASKS", "CONFIG_TRANSLATORS", "build_task", "translate_config"]


@runtime_checkable
class Task(Protocol):
    #: Recorded in lineage (meta.json "data_source") unless run.data_source is set.
    data_source: str

    def build_model(self) -> Any:
        """A fresh ``paddle.nn.Layer``; parameter names must be stable across processes."""

    def train_size(self) -> int: ...

    def train_arrays(self, indices: list[int], epoch: int) -> Any:
        """The batch for these training-set indices, drawn in ``epoch``, as numpy arrays (nested in
        dicts, lists or tuples, with plain scalars and strings). Must not use paddle."""

    def to_batch(self, arrays: Any) -> Any:
        """``train_arrays``'s output as the batch ``loss`` takes (paddle tensors); runs in the trainer."""

    def loss(self, model: Any, batch: Any) -> Any:
        """Scalar loss tensor for one micro-batch."""

    def evaluate(self, model: Any) -> dict[str, float]:
        """Metrics on the evaluation set (model is in eval mode while called)."""

    # Optional hooks, looked up with getattr by the shared code:
    # - ``export(self, model, out_dir: Path) -> list[Path]``: deployable artifacts (a Paddle inference
    #   model, a toolkit's from_pretrained folder); used by ``warmstart export``.
    # - ``after_step(self, model, step: int) -> None``: called after every optimizer step (EMA updates).
    # - ``extra_tensors(self) -> dict[str, dict[str, np.ndarray]]``: more tensor groups for each
    #   checkpoint (host copies), e.g. ``{"ema": {...}}``; ``load_extra_tensors(self, groups, source)``
    #   restores them on an exact resume (raise CheckpointError if a group is missing or mis-shaped).
    # - ``label_space(self) -> app.checkpoint.labels.LabelSpace``: the label names the class layers' rows
    #   stand for, in order (OCR dictionary, class names, NLP labels), and those layers' name globs.
    #   Recorded in each checkpoint's meta; a warm start from a checkpoint recording other names skips the
    #   class layers (partial) or stops (weights, resume): app.train.warmstart.label_change.
    # - ``epoch_batches(self, epoch: int, world: int, rank: int) -> list[tuple[list[int], list[int]]] | None``:
    #   the task owns the batch plan (variable batch sizes/shapes, e.g. OCR's multi-scale sampler). Answer
    #   None to use the shared seeded stream (``train.batch_size``), or this rank's micro-batches of
    #   ``epoch`` in order as ``(tag, sample indices)``: a pure function of (run seed, epoch, world, rank),
    #   the same number of batches every epoch and on every rank (they step together). The loop calls
    #   ``train_arrays(tag + indices, epoch)`` (``tag``: task-defined ints, e.g. the batch's width and
    #   height), keeps the position as (epoch, batch) so a resume continues at the exact batch, and counts
    #   ``len(plan) // train.grad_accum_steps`` steps per epoch (app.train.data.PlannedStream).


def build_task(cfg: TaskConfig, seed: int, *, allow_pickle: bool = False) -> Task:
    target = TASKS.get(cfg.kind)
    if target is None:
        raise ConfigError(
            f"task.kind: unknown task {cfg.kind!r}{suggest(cfg.kind, TASKS)} (known: {', '.join(sorted(TASKS))})"
        )
    return resolve(target)(cfg.options, seed=seed, allow_pickle=allow_pickle)
