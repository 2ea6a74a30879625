"""OCR warm start onto a dictionary of the same size in another order (small CRNN): ``partial`` skips
exactly the CTC output layer and says why, ``weights`` stops with one line (exit 4), the same dictionary
loads every tensor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from tests.test_ocr_train import CONFIG, DIGITS, ocr_overrides
from tests.train_helpers import ROOT, final_model, run_inprocess

PERMUTED = "0123457689"  # the same 10 characters, 6 and 7 swapped
REASON = (
    "label space differs (dictionary: checkpoint 10 vs this run 10 labels, 2 differ; same names in another "
    "order; first: index 6 '6' vs '7')"
)


def _dict(path: Path, chars: str) -> Path:
    path.write_text("".join(f"{c}\n" for c in chars))
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 3-step CRNN run on the digits dictionary: its checkpoint is the warm start's source."""
    root = tmp_path_factory.mktemp("ocr_labels")
    data = root / "data"
    extra = {"task.options.synthetic.n_train": 64, "task.options.synthetic.n_eval": 8}
    ov = ocr_overrides(
        root / "pre",
        data,
        **{**extra, "task.options.character_dict_path": str(_dict(root / "digits.txt", DIGITS))},
        **{"schedule.total_steps": 3, "schedule.warmup": "{kind: linear, steps: 1, start_lr: 0.0001}"},
    )
    assert run_inprocess(ov, config=CONFIG)[0] == 0
    return {
        "root": root,
        "data": data,
        "extra": extra,
        "ckpt": root / "pre" / "ckpt",
        "model": final_model(ov, CONFIG),
    }


def _warm(source: dict, run_dir: Path, chars: str, mode: str) -> list[str]:
    return ocr_overrides(
        run_dir,
        source["data"],
        **source["extra"],
        **{
            "task.options.character_dict_path": str(_dict(run_dir.parent / f"{run_dir.name}.txt", chars)),
            "init.from": str(source["ckpt"]),
            "init.mode": mode,
        },
    )


def test_permuted_dictionary_partial_skips_exactly_the_ctc_layer(source: dict, tmp_path: Path) -> None:
    rc, session = run_inprocess(
        _warm(source, tmp_path / "run", PERMUTED, "partial"), stop_at=0, config=CONFIG
    )
    assert rc == 143
    report = json.loads((tmp_path / "run" / "warmstart_report.json").read_text())
    assert report["label_skipped"] == ["head.fc.weight", "head.fc.bias"]
    assert report["label_reason"] == REASON
    assert sorted(report["loaded"]) == sorted(k for k in source["model"] if not k.startswith("head.fc."))
    assert report["mismatched"] == [] and report["ignored"] == [] and report["unexpected"] == []
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert all(np.array_equal(state[k], source["model"][k]) for k in report["loaded"])
    assert not np.array_equal(state["head.fc.weight"], source["model"]["head.fc.weight"])


def test_permuted_dictionary_weights_mode_stops_with_one_line(source: dict, tmp_path: Path, capsys) -> None:
    ov = _warm(source, tmp_path / "run", PERMUTED, "weights")
    rc = main(["train", "-c", str(ROOT / CONFIG), *[a for o in ov for a in ("--set", o)]])
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warmstart:")]
    assert rc == 4
    assert err == [
        f"warmstart: checkpoint: weights load from {source['ckpt']} refused: {REASON} (the class layers' "
        "rows would stand for other labels: use init.mode: partial to train them afresh (head.fc.*), or "
        "init.label_check: false to load them anyway)"
    ]


def test_same_dictionary_loads_every_tensor(source: dict, tmp_path: Path) -> None:
    rc, session = run_inprocess(_warm(source, tmp_path / "run", DIGITS, "weights"), stop_at=0, config=CONFIG)
    assert rc == 143
    report = json.loads((tmp_path / "run" / "warmstart_report.json").read_text())
    assert sorted(report["loaded"]) == sorted(source["model"]) and report["label_skipped"] == []
    state = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert all(np.array_equal(state[k], v) for k, v in source["model"].items())
