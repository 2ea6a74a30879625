"""The root configuration: one typed dataclass per component, composed into :class:`Config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from app.checkpoint.config import CheckpointConfig
from app.checkpoint.download import check_http_url, check_sha256, is_http
from app.checkpoint.keymap import KeyMapRule
from app.config.paths import local_path_of, resolve_output_dir
from app.config.typed import from_data, limits, output_folder, suggest
from app.errors import ConfigError
from app.schedule.config import ScheduleConfig
from app.store.config import StoreConfig, check_endpoint, check_uri_scheme
from app.tasks.registry import (  # plain data: no task module is imported
    TASK_NO_DECAY,
    TASK_OPTIONS,
    TASKS,
    resolve,
)

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
    "MAX_SECONDS",
]

#: Upper bound of every duration in seconds (a day): larger values overflow timers and sleeps.
MAX_SECONDS = 86_400.0


@dataclass
class RunConfig:
    """Identity and local folder of the run."""

    #: Run name (logs, lineage).
    name: str = "run"
    #: Local run folder: logs, metrics, local staging of checkpoints.
    dir: str = field(default="runs/run", metadata=output_folder())
    #: Seeds data order, initialisation and every step's randomness (with the step and rank).
    seed: int = field(default=42, metadata=limits(ge=0))
    #: Free text recorded in every checkpoint's meta.json.
    notes: str = ""
    #: Where the training data came from (recorded in meta.json lineage).
    data_source: str = ""


@dataclass
class TaskConfig:
    """Which task adapter builds the model, data, loss and metric."""

    #: Registered task adapter, e.g. "digits" (the demo classifier).
    kind: str = "digits"
    #: Task-specific options (types and ranges: the task's docs), checked when the config loads.
    options: dict[str, Any] = field(default_factory=dict)

    def validate(self, path: str) -> None:
        if self.kind not in TASKS:
            raise ConfigError(
                f"{path}.kind: unknown task {self.kind!r}{suggest(self.kind, TASKS)} "
                f"(known: {', '.join(sorted(TASKS))})"
            )
        options_cls = TASK_OPTIONS.get(self.kind)
        if options_cls is not None:  # types and ranges now; "required" rules when the task is built
            from_data(resolve(options_cls), self.options, f"{path}.options", hooks=False)


@dataclass
class OptimConfig:
    """The optimizer; its learning rate comes from ``schedule``."""

    #: adamw (decoupled weight decay), adam, momentum (SGD with momentum) or sgd.
    name: Literal["sgd", "momentum", "adam", "adamw"] = "adamw"
    #: AdamW: decoupled decay coefficient; other optimizers: L2 regularisation coefficient.
    weight_decay: float = field(default=0.0, metadata=limits(ge=0))
    #: momentum optimizer only.
    momentum: float = field(default=0.9, metadata=limits(ge=0, lt=1))
    #: Adam/AdamW first-moment decay.
    beta1: float = field(default=0.9, metadata=limits(ge=0, lt=1))
    #: Adam/AdamW second-moment decay.
    beta2: float = field(default=0.999, metadata=limits(ge=0, lt=1))
    #: Adam/AdamW numerical stability term.
    epsilon: float = field(default=1e-8, metadata=limits(gt=0))
    #: Clip gradients to this L2 norm (see ``grad_clip``); None disables clipping.
    grad_clip_norm: float | None = field(default=None, metadata=limits(gt=0))
    #: global = the norm of all gradients together (Paddle's ClipGradByGlobalNorm: PaddleNLP, ppdet,
    #: PaddleOCR ``clip_norm_global``); per_tensor = each gradient tensor on its own (ClipGradByNorm:
    #: PaddleOCR ``clip_norm``).
    grad_clip: Literal["global", "per_tensor"] = "global"
    #: Parameters exempt from ``weight_decay``: glob patterns (fnmatch, case-sensitive, whole name) on the
    #: structured parameter name, e.g. "*bias*", "encoder.*.norm1.*". null = the task's default, filled in
    #: when the config loads: nlp_* = PaddleNLP's Trainer rule ["*bias*", "*norm*"], other tasks = [] (every
    #: parameter decays). A pattern that matches no parameter is an error when training starts.
    no_decay: list[str] | None = None

    def validate(self, path: str) -> None:
        for i, pattern in enumerate(self.no_decay or ()):
            if not pattern.strip():
                raise ConfigError(f"{path}.no_decay[{i}]: empty pattern; use a glob such as '*bias*'")

    @property
    def adaptive(self) -> bool:
        return self.name in ("adam", "adamw")


@dataclass
class TrainConfig:
    """The training loop: batching, precision, evaluation and logging."""

    #: Per-process micro-batch size.
    batch_size: int = field(default=32, metadata=limits(gt=0))
    #: Micro-batches per optimizer step. Schedule steps count optimizer steps.
    grad_accum_steps: int = field(default=1, metadata=limits(gt=0))
    #: Mixed precision (Paddle O1 autocast): "auto" = fp16 on a GPU of compute capability >= 7.0, else off;
    #: fp16 (with loss scaling, saved in checkpoints) or bf16 (capability >= 8.0) where the device runs
    #: them, else float32 with a warning (docs/gpu.md).
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"
    #: Evaluate every this many optimizer steps (and always at the end); null = only at the end.
    eval_every_steps: int | None = field(default=None, metadata=limits(gt=0))
    #: Metric name reported by the task's evaluation, used for best tracking.
    metric: str = "accuracy"
    #: Whether a larger or smaller ``metric`` is better.
    metric_mode: Literal["max", "min"] = "max"
    #: One JSON log line (stdout and <run.dir>/log.jsonl) every this many optimizer steps.
    log_every_steps: int = field(default=10, metadata=limits(gt=0))
    #: Progress bar on stderr: "auto" = only when stderr is a terminal.
    progress_bar: Literal["auto", "on", "off"] = "auto"
    #: Also write scalars for VisualDL to <run.dir>/visualdl.
    visualdl: bool = False
    #: Worker processes making training batches ahead of the step; 0 = in the trainer process; null =
    #: auto: the CPUs this process may use (shared by the trainers on this machine) minus one, at most 4.
    #: Batches, and so the trained weights, are the same for any value (docs/data.md).
    data_workers: int | None = field(default=None, metadata=limits(ge=0))
    #: Batches each data worker makes ahead of the step (with data_workers > 0).
    prefetch: int = field(default=2, metadata=limits(gt=0))
    #: The run stops (exit 5) when a data worker makes no batch for this many seconds.
    data_timeout_seconds: float = field(default=600.0, metadata=limits(gt=0))


@dataclass
class InitConfig:
    """Where the first launch takes weights from, when the run has no checkpoint of its own yet."""

    #: Pretrained weights: a folder, file://, s3://, oss:// URI of a checkpoint, optionally ``#tag``, or a
    #: weights file there or at an http(s):// URL (downloaded once into WARMSTART_CACHE).
    from_: str | None = field(default=None, metadata={"key": "from"})
    #: weights = model only (strict); partial = matching tensors, report, min fraction; resume = strict,
    #: with optimizer, schedule, RNG and data position.
    mode: Literal["weights", "partial", "resume"] = "weights"
    #: Glob patterns of parameter names not to load (e.g. a new head: "head.*").
    ignore: list[str] = field(default_factory=list)
    #: partial mode: fail if fewer than this fraction of the model's parameters were loaded.
    min_loaded_fraction: float = field(default=0.5, metadata=limits(ge=0, le=1))
    #: Compare the label space the source checkpoint records (OCR dictionary, class or label names) with
    #: the run's: if they differ, partial skips the task's class layers and weights/resume stop. false =
    #: load the class layers by name and shape alone (their rows may then mean other labels).
    label_check: bool = True
    #: Rules rewriting the source's tensor names before matching, applied in order: {add_prefix: P},
    #: {strip_prefix: P} or {rename: {pattern: REGEX, to: REPLACEMENT}}. weights/partial modes only.
    key_map: list[KeyMapRule] = field(default_factory=list)
    #: exact = a model name takes the source tensor of the same name; ppdet = PaddleDetection's rule: the
    #: longest source name that is the model name or a dotted tail of it ("conv1.weight" ->
    #: "backbone.conv1.weight"). weights/partial modes only. See docs/checkpoints.md.
    match: Literal["exact", "ppdet"] = "exact"
    #: Allow unpickling files (found by content, whatever their name): a .pdparams in init.from, a pickle in
    #: an NLP model_dir, a ppdet `pretrained` / DecodeCache. Unsafe with untrusted files; each use is logged
    #: with the file's sha256.
    allow_pickle: bool = False
    #: sha256 (64 hex digits) the init.from weights file must have, else the run stops; a matching pin is
    #: also the opt-in to read that exact file if it is a pickle. None = not pinned.
    sha256: str | None = None

    def validate(self, path: str) -> None:
        if self.from_ and is_http(self.from_):
            check_http_url(f"{path}.from", self.from_)
        elif self.from_:
            check_uri_scheme(f"{path}.from", self.from_.split("#", 1)[0], also="an http(s):// file URL")
        if self.sha256 is not None:
            self.sha256 = check_sha256(f"{path}.sha256", self.sha256)
        if self.mode == "resume" and (self.key_map or self.match != "exact"):
            used = [f"{path}.key_map"] if self.key_map else []
            used += [f"{path}.match={self.match}"] if self.match != "exact" else []
            raise ConfigError(
                f"{' and '.join(used)}: not allowed with {path}.mode=resume (an exact resume reads our own "
                "checkpoint under its own names)",
                hint=f"use {path}.mode=partial or weights to load a foreign file with renamed keys",
            )


@dataclass
class FreezeStage:
    """Freeze parameters matching ``patterns`` until ``until_step``, then unfreeze."""

    #: Glob patterns of parameter names, e.g. "backbone.*".
    patterns: list[str] = field(default_factory=list)
    #: First optimizer step at which the parameters train again.
    until_step: int = field(default=0, metadata=limits(ge=0))
    #: Multiply the scheduled LR by this from the unfreeze step on.
    lr_factor: float = field(default=1.0, metadata=limits(ge=0, le=1000))
    #: Short linear re-warmup (in steps) after unfreezing.
    rewarmup_steps: int = field(default=0, metadata=limits(ge=0))


@dataclass
class SpotConfig:
    """Spot/preemptible notice watcher: a notice triggers the same save-and-exit path as SIGTERM."""

    #: Cloud metadata format to poll: aws (IMDSv2), gcp, alibaba; none = off.
    provider: Literal["none", "aws", "gcp", "alibaba"] = "none"
    #: Metadata endpoint base URL; None = the provider's standard address.
    endpoint: str | None = None
    #: Seconds between polls.
    interval_s: float = field(default=5.0, metadata=limits(gt=0, le=MAX_SECONDS))

    def validate(self, path: str) -> None:
        if self.endpoint is not None:
            check_endpoint(f"{path}.endpoint", self.endpoint)


@dataclass
class PreemptConfig:
    """Behaviour on SIGTERM/SIGINT and spot notices: exit 143, after a committed save once training has
    started (a stop before the first step saves nothing)."""

    #: Seconds available to finish the step and save after SIGTERM (keep below the platform's grace).
    grace_seconds: float = field(default=25.0, metadata=limits(gt=0, le=MAX_SECONDS))
    #: Several processes (``warmstart launch``): seconds without a heartbeat from another rank (or from
    #: rank 0's rendezvous store) before this rank decides that peer is lost and exits 142 without saving.
    #: Detection takes at most this plus ~2 s; at least 5 (five heartbeats). Keep it above the longest
    #: pause a healthy rank can make.
    peer_timeout_seconds: float = field(default=45.0, metadata=limits(ge=5, le=MAX_SECONDS))
    spot: SpotConfig = field(default_factory=SpotConfig)


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

    def validate(self, path: str) -> None:
        """A local checkpoint folder follows the output-folder rule (app.config.paths), as run.dir does."""
        _check_store_uri("checkpoint.uri", self.checkpoint.uri)
        if not is_http(self.init.from_):  # a URL names a file to download, never a store (checked above)
            _check_store_uri("init.from", (self.init.from_ or "").split("#", 1)[0])
        if self.optim.no_decay is None:  # the task's default, written into the resolved config
            self.optim.no_decay = list(TASK_NO_DECAY.get(self.task.kind, ()))
        local = local_path_of(self.checkpoint.uri) if self.checkpoint.uri else None
        if local is not None:
            resolve_output_dir("checkpoint.uri", local)


def _check_store_uri(where: str, uri: str) -> None:
    """Parse a store URI when the config loads (bucket name, prefix), naming the field on error."""
    if not uri:
        return
    from app.store.registry import parse_uri  # the store package imports this module's components

    try:
        parse_uri(uri)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}", hint=exc.hint) from None
