"""Training outcomes on the demo digits classifier: warm vs cold start, and warmup vs none.

(a) Warm start: ``configs/digits_pretrain.yaml`` (digits 0-4, cold) -> ``configs/digits_finetune.yaml``
(partial warm start into a 10-class head) against a cold 10-class run with the cold recipe (the
pretrain config's LR and warmup on digits 0-9) given a longer budget. Figure: optimizer steps until each
reaches the cold run's final accuracy. (b) Warmup: the same 10-class model at an aggressive LR and a large
batch, with a linear warmup and without, loss logged every step; a non-finite loss is recorded as a
divergence (the loop stops with a TaskError).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from app.config import load_config
from app.errors import TaskError
from app.tasks.digits import DigitsTask
from app.train.loop import run_loop
from app.train.preempt import StopRequest
from app.train.start import prepare
from bench.common import ROOT, summarize

__all__ = ["warm_vs_cold", "warmup_vs_none"]

log = logging.getLogger(__name__)


def _train(config: str, overrides: list[str]) -> tuple[Path, str | None]:
    cfg = load_config(ROOT / config, [*overrides, "train.progress_bar=off"], env={})
    s = prepare(cfg, StopRequest())
    error = None
    try:
        run_loop(s)
    except TaskError as exc:
        error = exc.line()
    finally:
        s.mgr.close()
        s.runlog.close()
    return Path(cfg.run.dir) / "log.jsonl", error


def _records(log_path: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, log_path.read_text().splitlines()) if r["kind"] == kind]


def _curve(log_path: Path, metric: str = "accuracy") -> list[tuple[int, float]]:
    return [(r["step"], r["metrics"][metric]) for r in _records(log_path, "eval")]


def _first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, value in curve if value >= target - 1e-9), None)


#: The arms of (a): warm = the demo fine-tune recipe (LR 6e-4, backbone frozen 40 steps); warm_same = the
#: cold recipe (LR 3e-3, no freeze) with the same partial warm start, so only the initialization differs.
ARMS = ("warm", "warm_same", "cold")


def _arm_sets(arm: str, base: Path, pre_uri: Path, warm_steps: int, cold_steps: int) -> tuple[str, list[str]]:
    run = [f"run.dir={base / arm}", f"checkpoint.uri={base / arm / 'ck'}"]
    ten = "task.options.classes=[0,1,2,3,4,5,6,7,8,9]"
    if arm == "warm":
        return "configs/digits_finetune.yaml", [
            *run,
            f"init.from={pre_uri}",
            f"schedule.total_steps={warm_steps}",
        ]
    if arm == "warm_same":
        return "configs/digits_pretrain.yaml", [
            *run, ten, f"init.from={pre_uri}", "init.mode=partial", "init.ignore=[head.*]",
            f"schedule.total_steps={warm_steps}",
        ]  # fmt: skip
    return "configs/digits_pretrain.yaml", [*run, ten, f"schedule.total_steps={cold_steps}"]


def _at(curve: list[tuple[int, float]], step: int) -> float:
    return next((v for s, v in curve if s >= step), math.nan)


def warm_vs_cold(
    workdir: Path,
    *,
    seeds: list[int],
    warm_steps: int,
    cold_steps: int,
    every: int,
    pretrain_steps: int = 200,
) -> dict:
    trials = []
    for seed in seeds:
        base = workdir / f"seed{seed}"
        pre_uri = base / "pretrained"
        common = [f"run.seed={seed}", f"train.eval_every_steps={every}", "checkpoint.every_steps=null",
                  "checkpoint.keep_best=0"]  # fmt: skip
        _train("configs/digits_pretrain.yaml", [
            *common, f"run.dir={base / 'pre'}", f"checkpoint.uri={pre_uri}", f"schedule.total_steps={pretrain_steps}",
        ])  # fmt: skip
        curves = {}
        for arm in ARMS:
            config, sets = _arm_sets(arm, base, pre_uri, warm_steps, cold_steps)
            curves[arm] = _curve(_train(config, [*common, *sets])[0])
        target = curves["cold"][-1][1]
        trial: dict = {"seed": seed, "target": target}
        for arm, curve in curves.items():
            trial[arm] = {"final": curve[-1][1], "steps_to_target": _first_reaching(curve, target),
                          "at_50": _at(curve, 50), "curve": curve}  # fmt: skip
        trials.append(trial)
    arms = {}
    for arm in ARMS:
        reached = [t[arm]["steps_to_target"] for t in trials if t[arm]["steps_to_target"] is not None]
        arms[arm] = {"reached": f"{len(reached)}/{len(trials)}", "steps_to_target": summarize(reached),
                     "final": summarize([t[arm]["final"] for t in trials]),
                     "at_50": summarize([t[arm]["at_50"] for t in trials])}  # fmt: skip
    return {
        "task": "digits", "steps_per_epoch": DigitsTask({}, seed=0).train_size() // 32,
        "warm_steps": warm_steps, "cold_steps": cold_steps, "pretrain_steps": pretrain_steps,
        "target": summarize([t["target"] for t in trials]), "arms": arms, "trials": trials,
    }  # fmt: skip


def _losses(log_path: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in _records(log_path, "train")]


def warmup_vs_none(
    workdir: Path, *, lrs: list[float], seeds: list[int], steps: int, warmup: int, batch: int
) -> dict:
    runs = []
    for lr in lrs:
        for seed in seeds:
            for kind in ("linear", "none"):
                run = workdir / f"lr{lr}-s{seed}-{kind}"
                log_path, error = _train("configs/digits_pretrain.yaml", [
                    f"run.dir={run}", f"checkpoint.uri={run / 'ck'}", f"run.seed={seed}",
                    "task.options.classes=[0,1,2,3,4,5,6,7,8,9]", f"train.batch_size={batch}",
                    "train.log_every_steps=1", "train.eval_every_steps=null", "checkpoint.every_steps=null",
                    f"schedule.base_lr={lr}", f"schedule.total_steps={steps}",
                    f"schedule.warmup.kind={kind}", f"schedule.warmup.steps={warmup}",
                    "schedule.warmup.start_lr=0.00001",
                ])  # fmt: skip
                losses = _losses(log_path)
                early = [v for st, v in losses if st <= 2 * warmup]
                evals = _records(log_path, "eval")
                runs.append({
                    "lr": lr, "seed": seed, "warmup": kind, "diverged": error is not None,
                    "error": error, "early_max_loss": max(early) if early else math.nan,
                    "final_loss": losses[-1][1] if losses else math.nan,
                    "final_accuracy": evals[-1]["metrics"]["accuracy"] if evals and error is None else math.nan,
                    "losses": losses,
                })  # fmt: skip
    table = []
    for lr in lrs:
        for kind in ("linear", "none"):
            sel = [r for r in runs if r["lr"] == lr and r["warmup"] == kind]
            table.append({
                "lr": lr, "warmup": kind, "runs": len(sel),
                "diverged": sum(r["diverged"] for r in sel),
                "early_max_loss": summarize([r["early_max_loss"] for r in sel]),
                "final_accuracy": summarize([r["final_accuracy"] for r in sel if not r["diverged"]]),
            })  # fmt: skip
    return {
        "task": "digits",
        "batch": batch,
        "steps": steps,
        "warmup_steps": warmup,
        "table": table,
        "runs": runs,
    }
