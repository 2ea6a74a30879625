"""Turn a :class:`ScheduleConfig` into a ready Paddle scheduler plus what a user should know about it.

Resolution order: total steps (``total_steps`` or ``epochs`` x steps/epoch) -> base LR (scaling rule) ->
warmup steps (explicit, epochs or auto, then the log rule) -> the warmup >= total check -> phases ->
lints. Every auto policy applied adds a line to ``notes``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from paddle.optimizer.lr import LRScheduler

from app.errors import ConfigError
from app.schedule import policy
from app.schedule.config import PERIOD_KINDS, DecayConfig, ScheduleConfig, warmup_too_long
from app.schedule.curves import Curve, decay_curve, exponential_warmup, linear_warmup, wsd_lengths
from app.schedule.hooks import custom_warmup
from app.schedule.lint import lint_schedule
from app.schedule.phased import Phase, PhasedSchedule

__all__ = ["BuiltSchedule", "PhaseSpan", "build_schedule"]

log = logging.getLogger(__name__)

P = "schedule."


@dataclass(frozen=True)
class PhaseSpan:
    """A named phase covering optimizer steps ``[start, end)``."""

    name: str
    start: int
    end: int


@dataclass
class BuiltSchedule:
    """The scheduler and the resolved numbers behind it."""

    scheduler: LRScheduler
    total_steps: int
    warmup_steps: int
    base_lr: float
    notes: list[str]
    warnings: list[str]
    phases: list[PhaseSpan]
    _factory: Callable[[], LRScheduler] = field(repr=False)

    def fresh(self) -> LRScheduler:
        """A new scheduler at step 0 with the same settings (``self.scheduler`` is not touched)."""
        return self._factory()

    def lr_table(self, steps: int | None = None) -> list[float]:
        """lr(t) for t = 0 .. steps-1 (default: every optimizer step of the run), from a fresh copy."""
        sched = self.fresh()
        out = [float(sched())]
        for _ in range((self.total_steps if steps is None else steps) - 1):
            sched.step()
            out.append(float(sched()))
        return out


@dataclass
class _Resolved:
    total_steps: int
    base_lr: float
    warmup_steps: int
    notes: list[str]


def _need_spe(what: str, steps_per_epoch: int | None) -> int:
    if steps_per_epoch is None:
        raise ConfigError(
            f"{what} is given in epochs but the number of optimizer steps per epoch is unknown",
            hint="warmstart plan: pass --steps-per-epoch N, or set schedule.total_steps",
        )
    if steps_per_epoch <= 0:
        raise ConfigError(f"steps per epoch must be > 0, got {steps_per_epoch}")
    return steps_per_epoch


def _total(cfg: ScheduleConfig, spe: int | None, notes: list[str]) -> tuple[int, str]:
    if cfg.total_steps is not None:
        return cfg.total_steps, f"{P}total_steps ({cfg.total_steps})"
    if cfg.epochs is None:
        raise ConfigError(f"{P}total_steps or {P}epochs: one is required to build a schedule")
    spe = _need_spe(f"{P}epochs ({cfg.epochs:g})", spe)
    total = policy.steps_from_epochs(cfg.epochs, spe)
    notes.append(f"schedule.epochs={cfg.epochs:g} -> {total} steps ({spe} optimizer steps/epoch)")
    return total, f"{P}epochs ({cfg.epochs:g} = {total} steps)"


def _base_lr(cfg: ScheduleConfig, batch: int, ref: int | None, notes: list[str]) -> float:
    rule = cfg.scaling.lr_rule
    if rule == "none":
        return cfg.base_lr
    if ref is None:
        raise ConfigError(f"{P}scaling.reference_batch: required when {P}scaling.lr_rule is {rule!r}")
    scaled = policy.scale_lr(cfg.base_lr, rule, batch, ref)
    if batch != ref:
        notes.append(
            f"scaling.lr_rule={rule}: base_lr {cfg.base_lr:g} -> {scaled:g} (global batch {batch} vs reference {ref})"
        )
    return scaled


def _warmup(cfg: ScheduleConfig, total: int, spe: int | None, notes: list[str]) -> tuple[int, str, str]:
    """(steps, field, value description) of the warmup length."""
    warm = cfg.warmup
    if warm.kind == "none":
        return 0, f"{P}warmup.kind", "none"
    if warm.steps == "auto":
        steps = policy.auto_warmup_steps(total)
        notes.append(f"warmup.steps=auto -> {steps} ({100 * steps / total:.0f}% of {total})")
        return steps, f"{P}warmup.steps", f"auto = {steps}"
    if warm.steps is not None:
        return int(warm.steps), f"{P}warmup.steps", str(warm.steps)
    if warm.epochs is not None:
        spe = _need_spe(f"{P}warmup.epochs ({warm.epochs:g})", spe)
        steps = policy.steps_from_epochs(warm.epochs, spe, warm.epochs_rounding)
        notes.append(
            f"warmup.epochs={warm.epochs:g} -> {steps} steps ({spe} optimizer steps/epoch, "
            f"rounded {warm.epochs_rounding.replace('_', ' ')})"
        )
        return steps, f"{P}warmup.epochs", f"{warm.epochs:g} = {steps} steps"
    return 0, f"{P}warmup.steps", "unset"


def _log_rule(cfg: ScheduleConfig, steps: int, batch: int, ref: int | None, notes: list[str]) -> int:
    if cfg.scaling.warmup_rule != "log" or steps == 0:
        return steps
    if ref is None:
        raise ConfigError(f"{P}scaling.reference_batch: required when {P}scaling.warmup_rule is 'log'")
    scaled = policy.log_rule_warmup(steps, batch, ref)
    if scaled != steps:
        notes.append(
            f"scaling.warmup_rule=log: warmup {steps} -> {scaled} steps (global batch {batch} vs reference {ref})"
        )
    return scaled


def _resolve(cfg: ScheduleConfig, spe: int | None, batch: int, ref: int | None) -> _Resolved:
    if batch <= 0:
        raise ConfigError(f"global batch must be > 0, got {batch}")
    notes: list[str] = []
    total, total_text = _total(cfg, spe, notes)
    base_lr = _base_lr(cfg, batch, ref, notes)
    warmup, warmup_field, desc = _warmup(cfg, total, spe, notes)
    scaled = _log_rule(cfg, warmup, batch, ref, notes)
    if scaled != warmup:
        desc = f"{desc}, {scaled} after scaling.warmup_rule=log"
    if scaled >= total:
        raise ConfigError(warmup_too_long(f"{warmup_field} ({desc})", scaled, total_text, total))
    return _Resolved(total, base_lr, scaled, notes)


def _stage_lengths(cfg: ScheduleConfig, r: _Resolved, spe: int | None) -> list[int]:
    room = r.total_steps - r.warmup_steps
    lengths: list[int] = []
    for i, stage in enumerate(cfg.stages):
        if stage.steps is not None:
            lengths.append(stage.steps)
        elif stage.epochs is not None:
            lengths.append(policy.steps_from_epochs(stage.epochs, _need_spe(f"{P}stages[{i}].epochs", spe)))
    if sum(lengths) > room or (cfg.stages[-1].open_ended and sum(lengths) >= room):
        raise ConfigError(
            f"{P}stages: stage lengths ({' + '.join(map(str, lengths))} = {sum(lengths)} steps) leave no room "
            f"in the {room} steps after warmup ({r.total_steps} total - {r.warmup_steps} warmup)"
        )
    if cfg.stages[-1].open_ended:
        lengths.append(room - sum(lengths))
    return lengths


def _shape_phases(
    decay: DecayConfig, name: str, start: int, span: int, peak: float, warmup: int, period: int | None = None
) -> list[Phase]:
    """One phase for ``decay`` lasting ``span`` steps whose curve lasts ``period`` (default ``span``);
    warmup_stable_decay is shown as its stable and decay parts."""
    if decay.kind != "warmup_stable_decay":
        curve = decay_curve(decay, span=period or span, peak=peak, warmup_steps=warmup)
        return [Phase(f"{name} ({decay.kind})", start, span, curve)]
    stable, tail = wsd_lengths(span, decay.decay_fraction)
    parts = []
    if stable:
        parts.append(Phase(f"{name} (wsd: stable)", start, stable, lambda t: peak))
    if tail:
        linear = DecayConfig(kind="linear", min_lr=decay.min_lr)
        parts.append(
            Phase(f"{name} (wsd: decay)", start + stable, tail, decay_curve(linear, span=tail, peak=peak))
        )
    return parts


def _decay_phases(cfg: ScheduleConfig, r: _Resolved, spe: int | None) -> list[Phase]:
    if not cfg.stages:
        span = r.total_steps - r.warmup_steps
        run = cfg.decay.period == "run" and cfg.decay.kind in PERIOD_KINDS
        period = r.total_steps if run else span
        return _shape_phases(cfg.decay, "decay", r.warmup_steps, span, r.base_lr, r.warmup_steps, period)
    phases: list[Phase] = []
    start, peak = r.warmup_steps, r.base_lr
    for i, (stage, span) in enumerate(zip(cfg.stages, _stage_lengths(cfg, r, spe), strict=False)):
        phases += _shape_phases(stage.decay, f"stage {i + 1}", start, span, peak, r.warmup_steps)
        start, peak = start + span, phases[-1].curve(phases[-1].length)
    if start < r.total_steps:
        final = peak
        phases.append(Phase("hold", start, r.total_steps - start, lambda t: final))
    return phases


def _warmup_curve(cfg: ScheduleConfig, r: _Resolved) -> tuple[Curve | None, Callable[[], LRScheduler] | None]:
    warm, steps = cfg.warmup, r.warmup_steps
    if warm.kind == "linear":
        return linear_warmup(steps, warm.start_lr, r.base_lr), None
    if warm.kind == "exponential":
        return exponential_warmup(steps, warm.start_lr, r.base_lr, warm.power), None
    curve, hook = custom_warmup(str(warm.callable), steps, warm.start_lr, r.base_lr)
    if hook is None:
        return curve, None
    hook_cls = type(hook)
    return None, lambda: hook_cls(learning_rate=r.base_lr, warmup_steps=steps, start_lr=warm.start_lr)


def _factory(cfg: ScheduleConfig, r: _Resolved, spe: int | None) -> Callable[[], PhasedSchedule]:
    phases = _decay_phases(cfg, r, spe)
    if r.warmup_steps == 0:
        return lambda: PhasedSchedule(phases, peak_lr=r.base_lr)
    curve, make_hook = _warmup_curve(cfg, r)
    name = f"warmup ({cfg.warmup.kind})"
    if make_hook is None:
        assert curve is not None
        all_phases = [Phase(name, 0, r.warmup_steps, curve), *phases]
        return lambda: PhasedSchedule(all_phases, peak_lr=r.base_lr)
    placeholder = Phase(name, 0, r.warmup_steps, lambda t: r.base_lr)  # the hook supplies these LRs
    return lambda: PhasedSchedule(
        [placeholder, *phases], peak_lr=r.base_lr, hook=make_hook(), hook_steps=r.warmup_steps
    )


def build_schedule(
    cfg: ScheduleConfig,
    *,
    steps_per_epoch: int | None,
    global_batch: int,
    optimizer_name: str,
    reference_batch: int | None = None,
) -> BuiltSchedule:
    """Build the scheduler for ``cfg``; ``reference_batch`` overrides ``cfg.scaling.reference_batch``.

    Raises ConfigError (naming fields and values) when the settings cannot make a schedule.
    """
    ref = reference_batch if reference_batch is not None else cfg.scaling.reference_batch
    r = _resolve(cfg, steps_per_epoch, global_batch, ref)
    factory = _factory(cfg, r, steps_per_epoch)
    scheduler = factory()
    spans = [PhaseSpan(p.name, p.start, p.end) for p in scheduler.phases]
    warnings = lint_schedule(
        cfg, total_steps=r.total_steps, warmup_steps=r.warmup_steps, optimizer_name=optimizer_name
    )
    for line in r.notes:
        log.debug("schedule: %s", line)  # callers print notes; avoid logging them twice
    return BuiltSchedule(
        scheduler, r.total_steps, r.warmup_steps, r.base_lr, r.notes, warnings, spans, factory
    )
