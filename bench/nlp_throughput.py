"""NLP training throughput (samples/s): our loop against PaddleNLP's own ``Trainer``.

Both sides fine-tune the same tiny random ERNIE (2 layers, hidden 32, built locally by
:func:`app.tasks.nlp.synthetic.make_model_dir`) for sequence classification on the same generated reviews,
with the same ``TrainingArguments`` (batch, LR schedule, weight decay, clipping, seed, logging every
``logging_steps``; no evaluation and no checkpoint inside the timed steps) and the same loader workers
(PaddleNLP's ``dataloader_num_workers``, our ``train.data_workers``; 0 by default, PaddleNLP's default).
Theirs: ``paddlenlp.trainer.Trainer``; ours: ``warmstart train`` (in the side's process) with the same names
in a ``training_args:`` section.

Timing, alternation and the figure: :mod:`bench.throughput`. Usage:
``python -m bench.nlp_throughput [--quick] [--pairs 3] [--steps 200] [--warmup 20] [--workers 0]`` writes
``nlp_throughput`` into bench/results.json and the block between the ``bench:nlp_throughput`` markers of
docs/nlp.md (``--no-write``: neither); ``--side ours|theirs --case FILE`` runs one side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zlib  # noqa: F401  (before paddle: FIELD_NOTES)
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT
from bench.throughput import (
    add_arguments,
    bench_main,
    load_range,
    side_by_side,
    stamp,
    stamp_our_steps,
    table_rows,
)

__all__ = ["ARGS", "write_case", "measure", "table", "main"]

DOC = "docs/nlp.md"
KEY = "nlp_throughput"
MAX_SEQ_LEN = 32
#: The TrainingArguments both sides get (plus output_dir, max_steps, save_steps, dataloader_num_workers).
ARGS: dict[str, Any] = {
    "learning_rate": 2e-3,
    "per_device_train_batch_size": 16,
    "warmup_ratio": 0.1,
    "lr_scheduler_type": "linear",
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    "seed": 7,
    "logging_steps": 10,
}


def write_case(root: Path, *, steps: int, workers: int, warmup: int, batch: int = 16) -> Path:
    """Model folder, data and our config under ``root``; returns the case file the sides read."""
    from app.tasks.nlp.synthetic import make_model_dir, write_reviews

    model = make_model_dir(root / "ernie", "ernie", seed=0)
    train = write_reviews(root / "data/train.csv", batch * steps, seed=1, negation=0.0)
    evals = write_reviews(root / "data/eval.csv", 32, seed=2, negation=0.0)
    args = {**ARGS, "per_device_train_batch_size": batch, "max_steps": steps, "save_steps": 10 * steps}
    ours = {
        "run": {"name": "nlp-throughput", "dir": str(root / "ours")},
        "task": {"kind": "nlp_seq_cls", "options": {"model_dir": str(model), "train_file": str(train),
                                                    "eval_file": str(evals), "max_seq_len": MAX_SEQ_LEN}},
        "train": {"metric": "accuracy", "progress_bar": "off", "data_workers": workers},
        "training_args": args,
    }  # fmt: skip
    (root / "warmstart.yaml").write_text(yaml.safe_dump(ours, sort_keys=False))
    spec = {"root": str(root), "model": str(model), "train": str(train), "ours_yaml": str(root / "warmstart.yaml"),
            "args": args, "workers": workers, "warmup": warmup}  # fmt: skip
    case = root / "case.json"
    case.write_text(json.dumps(spec))
    return case


# ---------------------------------------------------------------------------------------------- sides


def _theirs(spec: dict[str, Any], out: Path) -> list[float]:
    from paddlenlp.data import DataCollatorWithPadding
    from paddlenlp.trainer import Trainer, TrainerCallback, TrainingArguments
    from paddlenlp.trainer.trainer_utils import set_seed
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bench.nlp_side_by_side import _encoded

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            stamp(stamps)

    args = TrainingArguments(output_dir=str(out), disable_tqdm=True, report_to=["none"],
                             dataloader_num_workers=spec["workers"], **spec["args"])  # fmt: skip
    set_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(spec["model"])
    model = AutoModelForSequenceClassification.from_pretrained(spec["model"], num_classes=2)
    trainer = Trainer(model=model, args=args, data_collator=DataCollatorWithPadding(tokenizer),
                      train_dataset=_encoded(tokenizer, Path(spec["train"]), ["neg", "pos"]),
                      tokenizer=tokenizer, callbacks=[Stamp()])  # fmt: skip
    trainer.train()
    return stamps


def _ours(spec: dict[str, Any], out: Path) -> list[float]:
    from app.config import load_config
    from bench.inprocess import train_in_process

    stamps = stamp_our_steps()
    rc, _ = train_in_process(load_config(Path(spec["ours_yaml"]), [f"run.dir={out}"], env={}))
    if rc != 0:
        raise SystemExit(f"warmstart train exited {rc}")
    return stamps


# -------------------------------------------------------------------------------------------- measure


def measure(root: Path, *, steps: int, warmup: int, workers: int, pairs: int, batch: int = 16) -> dict:
    shutil.rmtree(root, ignore_errors=True)
    case = write_case(root, steps=steps, workers=workers, warmup=warmup, batch=batch)
    return side_by_side(KEY, case, pairs, warmup, batch, unit="samples/s", batch=batch, workers=workers,
                        steps=steps, warmup=warmup, max_seq_len=MAX_SEQ_LEN, args=ARGS)  # fmt: skip


def table(r: dict) -> str:
    return "\n".join([
        f"Tiny ERNIE (2 layers, hidden 32), sequence classification of generated reviews (max_seq_len "
        f"{r['max_seq_len']}), batch {r['batch']}, {r['workers']} loader workers each side, logging every "
        f"{r['args']['logging_steps']} steps; steps {r['warmup'] + 1}–{r['steps']} timed after {r['warmup']} "
        f"warm-up steps; {r['ratio']['n']} alternating pairs, {r['measured']}, `os.cpu_count()` = {r['cpus']}, "
        f"{load_range(r)}.",
        "",
        *table_rows(r, "PaddleNLP `Trainer`", ".0f"),
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.nlp_throughput", description=__doc__.splitlines()[0])
    add_arguments(p, DOC)
    p.add_argument("--work", type=Path, default=ROOT / "runs/bench_nlp_tput")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--workers", type=int, default=0)
    args = p.parse_args(argv)

    def measured(a: argparse.Namespace) -> dict:
        return measure(a.work, steps=a.steps, warmup=a.warmup, workers=a.workers, pairs=a.pairs)

    return bench_main(
        args, KEY, DOC, (_ours, _theirs), table, measured, {"pairs": 1, "steps": 6, "warmup": 2}
    )


if __name__ == "__main__":
    raise SystemExit(main())
