"""nlp_seq_cls warm start onto the same labels in another order (tiny random BERT): ``partial`` skips the
classifier without ``init.ignore`` and says why, ``weights`` stops with exit 4, the same order loads all."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.errors import EXIT_CHECKPOINT, CheckpointError
from app.tasks.nlp.synthetic import make_model_dir, write_reviews
from tests.train_helpers import final_model, run_inprocess

SEQ = "configs/nlp_seq_cls.yaml"
REASON = (
    "label space differs (labels: checkpoint 2 vs this run 2 labels, 2 differ; same names in another "
    "order; first: index 0 'neg' vs 'pos')"
)


def _seq(run: Path, toy: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": toy / "bert", "task.options.format": "csv",
        "task.options.train_file": toy / "train.csv", "task.options.eval_file": toy / "eval.csv",
        "training_args.max_steps": 3, "training_args.save_steps": 10, "train.progress_bar": "off",
        "training_args.per_device_train_batch_size": 8,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """A 3-step run on labels [neg, pos] (sorted from the data): the warm start's source."""
    toy = tmp_path_factory.mktemp("toy")
    make_model_dir(toy / "bert", "bert", seed=0)
    write_reviews(toy / "train.csv", 48, seed=1, negation=0.0)
    write_reviews(toy / "eval.csv", 16, seed=2, negation=0.0)
    ov = _seq(toy / "pre", toy)
    rc, session = run_inprocess(ov, config=SEQ)
    assert rc == 0 and session.task.labels == ["neg", "pos"]
    return {"toy": toy, "ckpt": toy / "pre" / "checkpoints", "model": final_model(ov, config=SEQ)}


def _warm(source: dict, run: Path, labels: str, mode: str) -> list[str]:
    warm = {"init.from": source["ckpt"], "init.mode": mode, "task.options.labels": labels}
    return _seq(run, source["toy"], **warm)


def test_reordered_labels_partial_skips_the_classifier(source: dict, tmp_path: Path) -> None:
    rc, session = run_inprocess(_warm(source, tmp_path, "[pos, neg]", "partial"), stop_at=0, config=SEQ)
    assert rc == 143
    report = json.loads((tmp_path / "warmstart_report.json").read_text())
    assert sorted(report["label_skipped"]) == ["classifier.bias", "classifier.weight"]
    assert report["label_reason"] == REASON and report["ignored"] == []
    assert sorted(report["loaded"]) == sorted(k for k in source["model"] if not k.startswith("classifier."))
    weight = session.net.classifier.weight.numpy()
    assert not np.array_equal(weight, source["model"]["classifier.weight"])


def test_reordered_labels_weights_mode_stops(source: dict, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as err:
        run_inprocess(_warm(source, tmp_path, "[pos, neg]", "weights"), config=SEQ)
    assert err.value.exit_code == EXIT_CHECKPOINT == 4
    assert err.value.message == f"weights load from {source['ckpt']} refused: {REASON}"
    assert "init.mode: partial" in err.value.hint and "(classifier.*)" in err.value.hint


def test_same_label_order_loads_every_tensor(source: dict, tmp_path: Path) -> None:
    rc, session = run_inprocess(_warm(source, tmp_path, "[neg, pos]", "weights"), stop_at=0, config=SEQ)
    assert rc == 143
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert all(np.array_equal(state[k], v) for k, v in source["model"].items())
