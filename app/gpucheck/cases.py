"""The task kinds the check trains: a shipped config each, its generated data, and sizes (full or quick).

Every case trains a shipped config (``configs/``) on data generated locally (no download), shrunk so
that a GPU finishes all of them in minutes; ``quick`` shrinks further for the CPU test mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Case", "CASES", "ROOT", "case_overrides"]


def _root() -> Path:
    """The folder holding ``configs/``: the checkout, or the working directory (the image's /app, where
    ``app`` may be imported from site-packages)."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "configs").is_dir() else Path.cwd()


ROOT = _root()


@dataclass(frozen=True)
class Case:
    name: str  # the task kind
    config: str  # relative to ROOT
    #: total optimizer steps (full, quick): enough that a SIGTERM sent at a tenth of them lands mid-run
    steps: tuple[int, int]
    prepare: Callable[[Path, bool], dict[str, object]]  # (data dir, quick) -> task-specific overrides

    def total_steps(self, quick: bool) -> int:
        return self.steps[1] if quick else self.steps[0]


def _digits(data: Path, quick: bool) -> dict[str, object]:
    return {"train.batch_size": 16 if quick else 64, "task.options.width": 4 if quick else 32}


def _ocr(data: Path, quick: bool) -> dict[str, object]:
    out: dict[str, object] = {
        "task.options.data_dir": data / "ocr",
        "task.options.synthetic.n_train": 64 if quick else 2000,
        "task.options.synthetic.n_eval": 16 if quick else 200,
        "task.options.synthetic.fonts": "[DejaVuSans.ttf]",
        "train.batch_size": 8 if quick else 64,
    }
    if quick:
        out.update({
            "task.options.image_shape": "[3, 32, 128]", "task.options.max_text_length": 8,
            "task.options.synthetic.max_len": 2, "task.options.synthetic.charset": "0123456789",
        })  # fmt: skip
    return out


def _detection(data: Path, quick: bool) -> dict[str, object]:
    from app.tasks.det.synth import write_shapes

    shapes = data / "shapes"
    if not (shapes / "train.json").exists():
        write_shapes(shapes, n_train=12 if quick else 256, n_eval=4 if quick else 32, size=96, seed=3)
    return {"task.options.dataset_dir": shapes, "task.options.synthetic": None,
            "train.batch_size": 2 if quick else 16}  # fmt: skip


def _nlp(data: Path, quick: bool) -> dict[str, object]:
    from app.tasks.nlp.synthetic import make_model_dir, write_reviews

    root = data / "nlp"
    if not (root / "train.csv").exists():
        make_model_dir(root / "model", "bert", seed=0)
        write_reviews(root / "train.csv", 64 if quick else 2000, seed=1)
        write_reviews(root / "eval.csv", 16 if quick else 200, seed=2)
    return {
        "task.options.model_dir": root / "model", "task.options.train_file": root / "train.csv",
        "task.options.eval_file": root / "eval.csv", "training_args.per_device_train_batch_size": 8 if quick else 64,
    }  # fmt: skip


CASES: dict[str, Case] = {
    "digits": Case("digits", "configs/demo.yaml", (400, 200), _digits),
    "ocr_rec": Case("ocr_rec", "configs/ocr_rec_small.yaml", (200, 6), _ocr),
    "detection": Case("detection", "configs/det_picodet_s.yaml", (100, 4), _detection),
    "nlp_seq_cls": Case("nlp_seq_cls", "configs/nlp_seq_cls.yaml", (200, 60), _nlp),
}


def case_overrides(
    case: Case, run_dir: Path, data: Path, amp: str, quick: bool, **extra: object
) -> list[str]:
    """``--set`` items of one run: the case's data and size, ``train.amp``, one log line per step, no
    interval checkpoints (the stop's own checkpoint is the one a resume starts from), evaluation at the end."""
    total = case.total_steps(quick)
    steps = (
        {"training_args.max_steps": total} if case.name.startswith("nlp") else {"schedule.total_steps": total}
    )
    base: dict[str, object] = {
        "run.dir": run_dir, "checkpoint.uri": run_dir / "ckpt", "train.amp": amp, **steps,
        "train.log_every_steps": 1, "train.progress_bar": "off", "train.eval_every_steps": None,
        "checkpoint.every_steps": None, "checkpoint.keep_last": 2,
        **case.prepare(data, quick),
    }  # fmt: skip
    if case.name.startswith("nlp"):  # PaddleNLP names of the same settings, as the config writes them
        del base["train.log_every_steps"], base["checkpoint.every_steps"], base["checkpoint.keep_last"]
        base.update({"training_args.logging_steps": 1, "training_args.save_steps": 10 * total})
    else:
        base["schedule.warmup"] = f"{{kind: linear, steps: {max(1, total // 4)}, start_lr: 0.0001}}"
    if quick:
        base["train.data_workers"] = 0
    base.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in base.items()]
