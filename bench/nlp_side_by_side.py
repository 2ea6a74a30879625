"""Side by side with PaddleNLP's own ``Trainer``: the same tiny model, data, seed and ``TrainingArguments``.

A tiny random BERT folder (built locally, :mod:`app.tasks.nlp.synthetic`) and generated review polarity
data go through

- **theirs**: ``paddlenlp.trainer.Trainer`` with ``TrainingArguments(**ARGS)`` (PaddleNLP 2.8.1), and
- **ours**: ``warmstart train`` with the same names in a ``training_args:`` section (translated).

Measured: the LR each optimizer step used (theirs: ``optimizer.get_lr()`` at ``on_step_begin``; ours: the
``lr`` of ``log.jsonl``, logged every step), the final evaluation accuracy of both, and each side's
resume: a run stopped right after its checkpoint at ``stop_at`` (theirs: a callback sets
``should_training_stop``; ours: a stop request, as SIGTERM makes) and continued (theirs:
``trainer.train(resume_from_checkpoint=...)`` in a new ``Trainer``; ours: the same command again),
whose final parameters are compared with the same side's uninterrupted run.

Usage: ``python bench/nlp_side_by_side.py [--work runs/bench_nlp_sbs] [--steps 60] [--seeds 3]``; prints
JSON (``--seeds N``: N more uninterrupted runs per side, seeds 1..N, for the accuracy spread) and rewrites
the table between the ``bench:nlp_side_by_side`` markers of docs/nlp.md (``--no-doc``: not).
``run_all`` is what tests/test_nlp_side_by_side.py calls on a smaller setting.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from app.config import load_config  # noqa: E402
from app.tasks.nlp import data as nlp_data  # noqa: E402
from app.tasks.nlp.synthetic import make_model_dir, write_reviews  # noqa: E402
from bench.inprocess import train_in_process  # noqa: E402

__all__ = ["ARGS", "Setup", "Outcome", "make_setup", "theirs", "ours", "run_all", "main"]

#: The TrainingArguments both sides get (plus output_dir, max_steps and save_steps per run).
ARGS: dict[str, Any] = {
    "learning_rate": 2e-3,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 64,
    "warmup_ratio": 0.1,
    "lr_scheduler_type": "linear",
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "seed": 7,
    "logging_steps": 1,
}
MAX_SEQ_LEN = 32
EVAL = 200


@dataclass
class Setup:
    model_dir: Path
    train_file: Path
    eval_file: Path
    steps: int
    save_steps: int
    stop_at: int


@dataclass
class Outcome:
    lrs: list[float]  # LR used by optimizer step 1..N
    params: dict[str, np.ndarray]
    accuracy: float
    extra: dict[str, Any] = field(default_factory=dict)


def make_setup(work: Path, n_train: int, n_eval: int, steps: int, save_steps: int, stop_at: int) -> Setup:
    model = make_model_dir(work / "bert", "bert", seed=0)
    train = write_reviews(work / "data/train.csv", n_train, seed=1, negation=0.0)
    evals = write_reviews(work / "data/eval.csv", n_eval, seed=2, negation=0.0)
    return Setup(model, train, evals, steps, save_steps, stop_at)


# ----------------------------------------------------------------------------------------------- theirs


def _encoded(tokenizer: Any, path: Path, labels: list[str]) -> Any:
    from paddlenlp.datasets import MapDataset

    rows = []
    for ex in nlp_data.read_text_examples(path, "csv", "text", None, "label"):
        enc = tokenizer(ex.text, max_length=MAX_SEQ_LEN, truncation=True)
        rows.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                     "labels": labels.index(ex.label)})  # fmt: skip
    return MapDataset(rows)


def _accuracy(pred: Any) -> dict[str, float]:
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
    return {"accuracy": float(np.mean(np.argmax(logits, axis=-1) == pred.label_ids))}


def _callbacks(lrs: dict[int, float], stop_at: int | None) -> Any:
    from paddlenlp.trainer import TrainerCallback

    class Record(TrainerCallback):
        def on_step_begin(
            self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any
        ) -> None:
            lrs[state.global_step + 1] = float(optimizer.get_lr())

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            if stop_at is not None and state.global_step == stop_at:
                control.should_training_stop = True  # after this step's save (save_steps divides stop_at)
            return control

    return Record()


def theirs(s: Setup, out: Path, *, stop_at: int | None = None, resume: bool = False) -> Outcome:
    """One PaddleNLP Trainer run (a fresh Trainer and model, seeded as a PaddleNLP script does).

    Names (parameters, optimizer accumulators) restart as in a new process, so a resume finds its state.
    """
    import paddle

    with paddle.utils.unique_name.guard():
        return _theirs(s, out, stop_at, resume)


def _theirs(s: Setup, out: Path, stop_at: int | None, resume: bool) -> Outcome:
    from paddlenlp.data import DataCollatorWithPadding
    from paddlenlp.trainer import Trainer, TrainingArguments
    from paddlenlp.trainer.trainer_utils import set_seed
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    args = TrainingArguments(output_dir=str(out), max_steps=s.steps, save_steps=s.save_steps,
                             disable_tqdm=True, report_to=["none"], **ARGS)  # fmt: skip
    set_seed(args.seed)
    labels = ["neg", "pos"]
    tokenizer = AutoTokenizer.from_pretrained(str(s.model_dir))
    model = AutoModelForSequenceClassification.from_pretrained(str(s.model_dir), num_classes=len(labels))
    lrs: dict[int, float] = {}
    trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer),
                      train_dataset=_encoded(tokenizer, s.train_file, labels),
                      eval_dataset=_encoded(tokenizer, s.eval_file, labels), tokenizer=tokenizer,
                      compute_metrics=_accuracy, callbacks=[_callbacks(lrs, stop_at)])  # fmt: skip
    checkpoint = str(out / f"checkpoint-{s.stop_at}") if resume else None
    trainer.train(resume_from_checkpoint=checkpoint)
    accuracy = float(trainer.evaluate()["eval_accuracy"])
    params = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    return Outcome([lrs[k] for k in sorted(lrs)], params, accuracy, {"first_step": min(lrs)})


# ------------------------------------------------------------------------------------------------- ours


def _our_config(s: Setup, run: Path) -> Path:
    cfg = {
        "run": {"name": "side-by-side", "dir": str(run)},
        "task": {"kind": "nlp_seq_cls", "options": {
            "model_dir": str(s.model_dir), "train_file": str(s.train_file), "eval_file": str(s.eval_file),
            "max_seq_len": MAX_SEQ_LEN}},
        "train": {"metric": "accuracy", "progress_bar": "off"},
        "training_args": {**ARGS, "max_steps": s.steps, "save_steps": s.save_steps},
    }  # fmt: skip
    path = run.parent / f"{run.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _our_run(config: Path, stop_at: int | None) -> tuple[int, Any]:
    return train_in_process(load_config(config, [], env={}), stop_at)


def ours(s: Setup, run: Path, *, stop_at: int | None = None) -> Outcome:
    """One ``warmstart train`` (in this process); with ``stop_at``: stopped there, then run again."""
    config = _our_config(s, run)
    rc, session = _our_run(config, stop_at)
    if stop_at is not None:
        assert rc == 143, f"the stopped run exited {rc}"
        rc, session = _our_run(config, None)
    assert rc == 0, f"warmstart train exited {rc}"
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r["lr"] for r in log if r["kind"] == "train"}
    params = {k: v.numpy().copy() for k, v in session.net.state_dict().items()}
    return Outcome([by_step[k] for k in sorted(by_step)], params, float(session.metrics["accuracy"]))


# ------------------------------------------------------------------------------------------- comparison


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    assert sorted(a) == sorted(b)
    return max(float(np.max(np.abs(a[k].astype("float64") - b[k].astype("float64")))) for k in a)


def _identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return sorted(a) == sorted(b) and all(a[k].tobytes() == b[k].tobytes() for k in a)


def run_all(work: Path, s: Setup) -> dict[str, Any]:
    """Both sides, uninterrupted and resumed; the numbers docs/nlp.md and the test report."""
    t_full = theirs(s, work / "theirs_full")
    t_cut = theirs(s, work / "theirs_cut", stop_at=s.stop_at)
    t_resumed = theirs(s, work / "theirs_cut", resume=True)
    o_full = ours(s, work / "ours_full")
    o_resumed = ours(s, work / "ours_cut", stop_at=s.stop_at)
    lr_diff = [abs(a - b) for a, b in zip(t_full.lrs, o_full.lrs, strict=True)]
    # the optimizer applies the LR as a float32 tensor (Paddle's default dtype): the value that counts
    f32 = np.array(t_full.lrs, dtype="float32") == np.array(o_full.lrs, dtype="float32")
    return {
        "steps": s.steps, "save_steps": s.save_steps, "stop_at": s.stop_at, "args": ARGS,
        "lr": {"theirs": t_full.lrs, "ours": o_full.lrs, "equal_steps_float64": sum(d == 0 for d in lr_diff),
               "equal_steps_float32": int(f32.sum()), "max_abs_diff_float64": max(lr_diff)},
        "accuracy": {"theirs": t_full.accuracy, "ours": o_full.accuracy},
        "resume": {
            "theirs_stopped_lrs": len(t_cut.lrs), "theirs_resumed_first_step": t_resumed.extra["first_step"],
            "theirs_identical": _identical(t_resumed.params, t_full.params),
            "theirs_max_abs_diff": _max_diff(t_resumed.params, t_full.params),
            "theirs_acc_full_vs_resumed": [t_full.accuracy, t_resumed.accuracy],
            "ours_identical": _identical(o_resumed.params, o_full.params),
            "ours_max_abs_diff": _max_diff(o_resumed.params, o_full.params),
            "ours_acc_full_vs_resumed": [o_full.accuracy, o_resumed.accuracy],
        },
    }  # fmt: skip


def noise(work: Path, s: Setup, seeds: list[int]) -> dict[str, list[float]]:
    """Final accuracy of uninterrupted runs of each side over ``seeds``: the spread "within noise" means."""
    out: dict[str, list[float]] = {"theirs": [], "ours": []}
    for seed in seeds:
        ARGS["seed"], saved = seed, ARGS["seed"]
        try:
            out["theirs"].append(theirs(s, work / f"noise/theirs_{seed}").accuracy)
            out["ours"].append(ours(s, work / f"noise/ours_{seed}").accuracy)
        finally:
            ARGS["seed"] = saved
    return out


MARK_START, MARK_END = "<!-- bench:nlp_side_by_side -->", "<!-- /bench:nlp_side_by_side -->"


def _spread(values: list[float]) -> str:
    return f"{np.median(values):.3f} ({min(values):.3f}–{max(values):.3f}, {len(values)} seeds)"


def table(r: dict[str, Any]) -> str:
    """The markdown block docs/nlp.md (and through it docs/benchmarks.md) shows."""
    lr, res = r["lr"], r["resume"]
    rows = [
        f"Tiny BERT (2 layers, hidden 32), {r['train']} training / {r['eval']} eval reviews, {r['steps']} steps, "
        f"`TrainingArguments` {', '.join(f'{k}={v}' for k, v in r['args'].items())}; checkpoints every "
        f"{r['save_steps']} steps, the resumed runs stopped at step {r['stop_at']} (mid-epoch).",
        "",
        "| measured | PaddleNLP `Trainer` | ours (`warmstart train`) |",
        "|---|---|---|",
        f"| LR per step (all {len(lr['ours'])}, warmup included) | reference | equal at "
        f"{lr['equal_steps_float32']}/{len(lr['ours'])} steps as applied (float32); float64 max diff "
        f"{lr['max_abs_diff_float64']:.1e} |",
        f"| final eval accuracy, seed {r['args']['seed']} | {r['accuracy']['theirs']:.3f} | "
        f"{r['accuracy']['ours']:.3f} |",
    ]
    if "accuracy_over_seeds" in r:
        seeds = r["accuracy_over_seeds"]
        rows.append(
            f"| final eval accuracy, other seeds | {_spread(seeds['theirs'])} | {_spread(seeds['ours'])} |"
        )
    rows += [
        f"| resumed run = uninterrupted run (final parameters) | {'yes' if res['theirs_identical'] else 'no'}: "
        f"max abs diff {res['theirs_max_abs_diff']:.3g} | {'yes, bit-identical' if res['ours_identical'] else 'no'}"
        f": max abs diff {res['ours_max_abs_diff']:.3g} |",
        f"| final accuracy, uninterrupted → resumed | {res['theirs_acc_full_vs_resumed'][0]:.3f} → "
        f"{res['theirs_acc_full_vs_resumed'][1]:.3f} | {res['ours_acc_full_vs_resumed'][0]:.3f} → "
        f"{res['ours_acc_full_vs_resumed'][1]:.3f} |",
    ]
    return "\n".join(rows)


def _write_doc(block: str) -> None:
    doc = ROOT / "docs/nlp.md"
    text = doc.read_text(encoding="utf-8")
    new = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END),
                 lambda _: f"{MARK_START}\n{block}\n{MARK_END}", text, flags=re.S)  # fmt: skip
    doc.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs/bench_nlp_sbs")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--save-steps", type=int, default=10)
    p.add_argument("--stop-at", type=int, default=30)
    p.add_argument("--train", type=int, default=300)
    p.add_argument("--seeds", type=int, default=3, help="more uninterrupted runs per side (seeds 1..N)")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite the block in docs/nlp.md")
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    setup = make_setup(args.work, args.train, EVAL, args.steps, args.save_steps, args.stop_at)
    result = {"train": args.train, "eval": EVAL, **run_all(args.work, setup)}
    if args.seeds:
        result["accuracy_over_seeds"] = noise(args.work, setup, list(range(1, args.seeds + 1)))
    (args.work / "result.json").write_text(json.dumps(result, indent=1))
    if not args.no_doc:
        _write_doc(table(result))
    print(json.dumps({k: v for k, v in result.items() if k != "lr"}, indent=1))
    lr = result["lr"]
    print(
        f"lr: {lr['equal_steps_float32']} of {len(lr['ours'])} steps equal as float32 (what the optimizer "
        f"applies), {lr['equal_steps_float64']} as float64 (max diff {lr['max_abs_diff_float64']:.3g})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
