"""The root configuration: one typed dataclass per component, composed into :class:`Config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.checkpoint.config import CheckpointConfig
from app.config.typed import suggest
from app.errors import ConfigError
from app.schedule.config import ScheduleConfig
from app.store.config import StoreConfig, check_uri_scheme

__all__ = [
    "RunConfig",
    "TaskConfig",
    "OptimConfig",
    "TrainConfig",
    "InitConfig",
    "FreezeStage",
    "SpotConfig",
    "PreemptConfig",
    "Config",
]


@dataclass
class RunConfig:
    """Identity and local folder of the run."""

    #: Run name (logs, lineage).
    name: str = "run"
    #: Local run folder: logs, metrics, local staging of checkpoints.
    dir: str = "runs/run"
    #: Seeds data order, initialisation and every step's randomness (with the step and rank).
    seed: int = 42
    #: Free text recorded in every checkpoint's meta.json.
    notes: str = ""
    #: Where the training data came from (recorded in meta.json lineage).
    data_source: str = ""


@dataclass
class TaskConfig:
    """Which task adapter builds the model, data, loss and metric."""

    #: Registered task adapter, e.g. "digits" (the demo classifier).
    kind: str = "digits"
    #: Task-specific options, validated by the task adapter.
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        from app.tasks.base import TASKS  # the registry is a plain dict: no task module is imported

        if self.kind not in TASKS:
            raise ConfigError(
                f"{path}.kind: unknown task {self.kind!r}{suggest(self.kind, TASKS)} "
                f"(known: {', '.join(sorted(TASKS))})"
            )


@dataclass
class OptimConfig:
    """The optimizer; its learning rate comes from ``schedule``."""

    #: adamw (decoupled weight decay), adam, momentum (SGD with momentum) or sgd.
    name: Literal["sgd", "momentum", "adam", "adamw"] = "adamw"
    #: AdamW: decoupled decay coefficient; other optimizers: L2 regularisation coefficient.
    weight_decay: float = 0.0
    #: momentum optimizer only.
    momentum: float = 0.9
    #: Adam/AdamW first-moment decay.
    beta1: float = 0.9
    #: Adam/AdamW second-moment decay.
    beta2: float = 0.999
    #: Adam/AdamW numerical stability term.
    epsilon: float = 1e-8
    #: Clip gradients to this global L2 norm; None disables clipping.
    grad_clip_norm: float | None = None

    @property
    def adaptive(self) -> bool:
        return self.name in ("adam", "adamw")


@dataclass
class TrainConfig:
    """The training loop: batching, precision, evaluation and logging."""

    #: Per-process micro-batch size.
    batch_size: int = 32
    #: Micro-batches per optimizer step. Schedule steps count optimizer steps.
    grad_accum_steps: int = 1
    #: Mixed precision: "auto" = fp16 on GPU, off on CPU.
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    #: Evaluate every this many optimizer steps (and always at the end); null = only at the end.
    eval_every_steps: int | None = None
    #: Metric name reported by the task's evaluation, used for best tracking.
    metric: str = "accuracy"
    #: Whether a larger or smaller ``metric`` is better.
    metric_mode: Literal["max", "min"] = "max"
    #: One JSON log line (stdout and <run.dir>/log.jsonl) every this many optimizer steps.
    log_every_steps: int = 10
    #: Progress bar on stderr: "auto" = only when stderr is a terminal.
    progress_bar: Literal["auto", "on", "off"] = "auto"
    #: Also write scalars for VisualDL to <run.dir>/visualdl.
    visualdl: bool = False

    def validate(self, path: str) -> None:
        for name in ("batch_size", "grad_accum_steps", "log_every_steps"):
            value = getattr(self, name)
            if value <= 0:
                raise ConfigError(f"{path}.{name}: must be > 0, got {value}")
        if self.eval_every_steps is not None and self.eval_every_steps <= 0:
            raise ConfigError(f"{path}.eval_every_steps: must be > 0, got {self.eval_every_steps}")


@dataclass
class InitConfig:
    """Where the first launch takes weights from, when the run has no checkpoint of its own yet."""

    #: Pretrained weights: a folder, file://, s3://, oss:// URI of a checkpoint, optionally ``#tag``.
    from_: str | None = field(default=None, metadata={"key": "from"})
    #: weights = model only (strict); partial = matching tensors, report, min fraction; resume = strict,
    #: with optimizer, schedule, RNG and data position.
    mode: Literal["weights", "partial", "resume"] = "weights"
    #: Glob patterns of parameter names not to load (e.g. a new head: "head.*").
    ignore: list[str] = field(default_factory=list)
    #: partial mode: fail if fewer than this fraction of the model's parameters were loaded.
    min_loaded_fraction: float = 0.5
    #: Allow unpickling files (found by content, whatever their name): a .pdparams in init.from, a pickle in
    #: an NLP model_dir, a ppdet `pretrained` / DecodeCache. Unsafe with untrusted files; each use is logged
    #: with the file's sha256.
    allow_pickle: bool = False

    def validate(self, path: str) -> None:
        if self.from_:
            check_uri_scheme(f"{path}.from", self.from_.split("#", 1)[0])
        if not 0.0 <= self.min_loaded_fraction <= 1.0:
            raise ConfigError(
                f"{path}.min_loaded_fraction: must be within [0, 1], got {self.min_loaded_fraction}"
            )


@dataclass
class FreezeStage:
    """Freeze parameters matching ``patterns`` until ``until_step``, then unfreeze."""

    #: Glob patterns of parameter names, e.g. "backbone.*".
    patterns: list[str] = field(default_factory=list)
    #: First optimizer step at which the parameters train again.
    until_step: int = 0
    #: Multiply the scheduled LR by this from the unfreeze step on.
    lr_factor: float = 1.0
    #: Short linear re-warmup (in steps) after unfreezing.
    rewarmup_steps: int = 0


@dataclass
class SpotConfig:
    """Spot/preemptible notice watcher: a notice triggers the same save-and-exit path as SIGTERM."""

    #: Cloud metadata format to poll: aws (IMDSv2), gcp, alibaba; none = off.
    provider: Literal["none", "aws", "gcp", "alibaba"] = "none"
    #: Metadata endpoint base URL; None = the provider's standard address.
    endpoint: str | None = None
    #: Seconds between polls.
    interval_s: float = 5.0


@dataclass
class PreemptConfig:
    """Behaviour on SIGTERM/SIGINT and spot notices (exit 143 after a committed save)."""

    #: Seconds available to finish the step and save after SIGTERM (keep below the platform's grace).
    grace_seconds: float = 25.0
    spot: SpotConfig = field(default_factory=SpotConfig)

    def validate(self, path: str) -> None:
        if self.grace_seconds <= 0:
            raise ConfigError(f"{path}.grace_seconds: must be > 0, got {self.grace_seconds}")
        if self.spot.interval_s <= 0:
            raise ConfigError(f"{path}.spot.interval_s: must be > 0, got {self.spot.interval_s}")


@dataclass
class Config:
    """The whole configuration."""

    run: RunConfig = field(default_factory=RunConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    init: InitConfig = field(default_factory=InitConfig)
    freeze: list[FreezeStage] = field(default_factory=list)
    preempt: PreemptConfig = field(default_factory=PreemptConfig)
