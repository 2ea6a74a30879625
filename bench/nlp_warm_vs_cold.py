"""Warm vs cold learning curves for ``nlp_seq_cls`` on generated text (2-core CPU, ~1 min).

1. ``related``: our own run trains the random tiny BERT folder on a 3-class task (positive / negative /
   neutral reviews) and ``warmstart export`` writes its PaddleNLP folder.
2. The target task is 2-class polarity with negation ("not good") and only 200 training sentences.
   ``warm`` fine-tunes with ``model_dir`` = the exported folder (its 3-class head is replaced by a new
   2-class one); ``cold`` uses the random folder. Same seed, data, schedule and evaluation set.

Writes ``docs/img/nlp_warm_vs_cold.png`` and the numbers table between the bench markers of
``docs/nlp.md``. Usage: ``python bench/nlp_warm_vs_cold.py [--work runs/bench_nlp]``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cli import main as cli  # noqa: E402
from app.config import load_config  # noqa: E402
from app.tasks.nlp.synthetic import make_model_dir, write_reviews  # noqa: E402
from app.train.loop import run_loop  # noqa: E402
from app.train.preempt import StopRequest  # noqa: E402
from app.train.start import prepare  # noqa: E402

CONFIG = ROOT / "configs/nlp_seq_cls.yaml"
STEPS, EVAL_EVERY = 200, 10
MARK_START, MARK_END = "<!-- bench:nlp_warm_vs_cold -->", "<!-- /bench:nlp_warm_vs_cold -->"


def _sets(run: Path, model: Path, data: Path, steps: int, lr: float) -> list[str]:
    return [
        f"run.dir={run}", f"task.options.model_dir={model}", f"task.options.train_file={data}/train.csv",
        f"task.options.eval_file={data}/eval.csv", f"training_args.max_steps={steps}",
        f"training_args.learning_rate={lr}", "training_args.per_device_train_batch_size=16",
        f"train.eval_every_steps={EVAL_EVERY}", "training_args.logging_steps=5",
        "training_args.save_steps=1000", "train.progress_bar=off",
    ]  # fmt: skip


def _train(sets: list[str]) -> list[dict]:
    session = prepare(load_config(CONFIG, sets, env={}), StopRequest())
    try:
        assert run_loop(session) == 0
    finally:
        session.mgr.close()
        session.runlog.close()
    run_dir = Path(session.cfg.run.dir)
    return [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]


def _curves(log: list[dict]) -> dict[str, list]:
    evals = [r for r in log if r["kind"] == "eval"]
    trains = [r for r in log if r["kind"] == "train"]
    return {
        "eval_step": [r["step"] for r in evals],
        "accuracy": [r["metrics"]["accuracy"] for r in evals],
        "eval_loss": [r["metrics"]["eval_loss"] for r in evals],
        "train_step": [r["step"] for r in trains],
        "loss": [r["loss"] for r in trains],
    }


def _plot(curves: dict[str, dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, c in curves.items():
        a.plot(c["eval_step"], c["accuracy"], marker="o", ms=3, label=name)
        b.plot(c["train_step"], c["loss"], label=name)
    a.set(xlabel="optimizer step", ylabel="eval accuracy", title="target task: polarity with negation")
    b.set(xlabel="optimizer step", ylabel="train loss (mean of 5 steps)", title="training loss")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def _first_step(c: dict, level: float) -> str:
    return next((str(s) for s, v in zip(c["eval_step"], c["accuracy"], strict=True) if v >= level), "never")


def _table(curves: dict[str, dict]) -> str:
    rows = [
        "| start | acc @ step 20 | acc @ step 50 | best acc | final acc | first step ≥ 0.70 |",
        "|---|---|---|---|---|---|",
    ]
    for name, c in curves.items():
        at = dict(zip(c["eval_step"], c["accuracy"], strict=True))
        rows.append(
            f"| {name} | {at[20]:.3f} | {at[50]:.3f} | {max(c['accuracy']):.3f} | {c['accuracy'][-1]:.3f} "
            f"| {_first_step(c, 0.7)} |"
        )
    return "\n".join(rows)


def _write_doc(table: str) -> None:
    doc = ROOT / "docs/nlp.md"
    text = doc.read_text()
    block = f"{MARK_START}\n{table}\n{MARK_END}"
    new = re.sub(re.escape(MARK_START) + ".*?" + re.escape(MARK_END), lambda _: block, text, flags=re.S)
    doc.write_text(new)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "runs/bench_nlp")
    p.add_argument("--no-doc", action="store_true", help="do not rewrite docs/nlp.md and the PNG")
    args = p.parse_args(argv)
    work = args.work
    shutil.rmtree(work, ignore_errors=True)
    random_dir = make_model_dir(work / "random_bert", "bert", seed=0)
    write_reviews(work / "related/train.csv", 1200, seed=11, neutral_share=0.33, negation=0.3)
    write_reviews(work / "related/eval.csv", 200, seed=12, neutral_share=0.33, negation=0.3)
    write_reviews(work / "target/train.csv", 200, seed=21, negation=0.3)
    write_reviews(work / "target/eval.csv", 400, seed=22, negation=0.3)

    related = _sets(work / "related_run", random_dir, work / "related", 600, 0.002)
    rel_log = _train(related)
    rel_acc = [r for r in rel_log if r["kind"] == "eval"][-1]["metrics"]["accuracy"]
    assert cli(["export", "-c", str(CONFIG), "--out", str(work / "related_export")]
               + [a for s in related for a in ("--set", s)]) == 0  # fmt: skip
    curves = {}
    for name, model in (("warm", work / "related_export/pretrained"), ("cold", random_dir)):
        curves[name] = _curves(_train(_sets(work / name, model, work / "target", STEPS, 0.001)))
    table = _table(curves)
    print(f"related 3-class task: final accuracy {rel_acc:.3f} after 600 steps")
    print(table)
    (work / "curves.json").write_text(json.dumps(curves))
    if not args.no_doc:
        _plot(curves, ROOT / "docs/img/nlp_warm_vs_cold.png")
        _write_doc(table + f"\n\nThe related run's own accuracy (3 classes, 600 steps): {rel_acc:.3f}.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
