"""ocr_rec end to end on CPU: a short real training run reaches an accuracy threshold; the export runs
in the paddleocr wheel's own TextRecognizer with identical decoded text; a changed dictionary warm-starts
``partial`` with the CTC head skipped; the backbone freezes then unfreezes; a resume is bit-identical."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.cli import main
from app.config import load_config
from app.tasks.base import build_task
from app.tasks.ocr.predictor import predict_files
from app.tasks.ocr.task import EXPORT_FILES
from tests.train_helpers import ROOT, assert_same_tensors, final_model, run_inprocess

CONFIG = "configs/ocr_rec_small.yaml"
DIGITS = "0123456789"


def ocr_overrides(run_dir: Path, data_dir: Path, **extra: object) -> list[str]:
    """The shipped small config shrunk for CPU tests: 3x32x128 lines of 1-2 digits, a width-8 model."""
    base: dict[str, object] = {
        "run.dir": str(run_dir),
        "checkpoint.uri": str(run_dir / "ckpt"),
        "checkpoint.every_steps": 100,
        "task.options.data_dir": str(data_dir),
        "task.options.image_shape": "[3, 32, 128]",
        "task.options.max_text_length": 8,
        "task.options.model.width": 16,
        "task.options.model.hidden_size": 64,
        "task.options.augment.rotate_prob": 0.0,
        "task.options.augment.blur_prob": 0.0,
        "task.options.augment.noise_prob": 0.0,
        "task.options.augment.hsv_prob": 0.0,
        "task.options.synthetic.charset": DIGITS,
        "task.options.synthetic.max_len": 2,
        "task.options.synthetic.n_train": 800,
        "task.options.synthetic.n_eval": 64,
        "task.options.synthetic.fonts": "[DejaVuSans.ttf]",
        "task.options.synthetic.min_font_size": 30,
        "task.options.synthetic.max_font_size": 30,
        "schedule.total_steps": 8,
        "schedule.base_lr": 0.003,
        "optim.weight_decay": 0.0,
        "schedule.warmup": "{kind: linear, steps: 2, start_lr: 0.0001}",
        "train.batch_size": 16,
        "train.log_every_steps": 1,
        "train.progress_bar": "off",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ocr_data")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> dict:
    """A cold run of 300 steps (30-60 s on 2 shared cores); CTC leaves its all-blank plateau near step 100."""
    run_dir = tmp_path_factory.mktemp("ocr_trained")
    ov = ocr_overrides(
        run_dir,
        data_dir,
        **{
            "schedule.total_steps": 300,
            "schedule.warmup": "{kind: linear, steps: 10, start_lr: 0.0001}",
        },
    )
    rc, session = run_inprocess(ov, config=CONFIG)
    return {"rc": rc, "metrics": session.metrics, "overrides": ov, "run_dir": run_dir}


def test_short_cpu_run_reaches_accuracy(trained: dict) -> None:
    assert trained["rc"] == 0
    assert trained["metrics"]["word_accuracy"] >= 0.25  # chance is ~0.01: 1-2 digits, exact match
    assert trained["metrics"]["norm_edit_dis"] >= 0.45
    tensors = final_model(trained["overrides"], config=CONFIG)
    assert tensors["head.fc.weight"].shape == (128, 11)  # 2 x hidden 64 -> 10 digits + blank
    assert {k.split(".")[0] for k in tensors} == {"backbone", "neck", "head"}


def test_export_runs_in_paddleocr_predictor_with_identical_text(
    trained: dict, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "inference"
    args = ["export", "--config", str(ROOT / CONFIG), "--out", str(out)]
    assert main(args + [a for o in trained["overrides"] for a in ("--set", o)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(out / name) for name in EXPORT_FILES]
    assert json.loads((out / "predictor.json").read_text()) == {
        "rec_algorithm": "CRNN",
        "rec_image_shape": "3,32,128",
        "rec_char_dict_path": "dict.txt",
        "use_space_char": False,
    }
    assert (out / "dict.txt").read_text().split() == list(DIGITS)

    cfg = load_config(ROOT / CONFIG, trained["overrides"], env={})
    task = build_task(cfg.task, cfg.run.seed)
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    model.set_state_dict(
        {k: paddle.to_tensor(v) for k, v in final_model(trained["overrides"], CONFIG).items()}
    )
    model.eval()
    paths = task.eval_set.paths[:32]
    ours = [text for text, _ in task.recognize(model, paths)]
    theirs = [text for text, _ in predict_files(out, paths)]
    assert theirs == ours
    assert (
        sum(a == b for a, b in zip(ours, task.eval_set.texts[:32], strict=False)) >= 8
    )  # a real model, not blanks


def _write_dict(path: Path, chars: str) -> Path:
    path.write_text("".join(f"{c}\n" for c in chars))
    return path


def test_changed_dictionary_warm_starts_partial_with_head_skipped(trained: dict, data_dir: Path, tmp_path):
    new_dict = _write_dict(tmp_path / "digits_plus.txt", DIGITS + "xyz")
    ov = ocr_overrides(
        tmp_path / "run",
        data_dir,
        **{
            "task.options.character_dict_path": str(new_dict),
            "init.from": str(trained["run_dir"] / "ckpt"),
            "init.mode": "partial",
            "init.ignore": '["head.*"]',
            "schedule.total_steps": 3,
        },
    )
    rc, session = run_inprocess(ov, config=CONFIG)
    assert rc == 0
    report = json.loads((tmp_path / "run" / "warmstart_report.json").read_text())
    assert sorted(report["ignored"]) == ["head.fc.bias", "head.fc.weight"]
    assert report["missing"] == [] and report["unexpected"] == [] and report["mismatched"] == []
    source = final_model(trained["overrides"], CONFIG)
    assert sorted(report["loaded"]) == sorted(k for k in source if not k.startswith("head."))
    assert session.net.head.fc.weight.shape == [128, 14]
    assert report["loaded_fraction"] > 0.9


def test_changed_dictionary_in_weights_mode_stops_naming_the_head(trained: dict, data_dir: Path, tmp_path):
    new_dict = _write_dict(tmp_path / "digits_plus.txt", DIGITS + "xyz")
    ov = ocr_overrides(
        tmp_path / "run",
        data_dir,
        **{"task.options.character_dict_path": str(new_dict), "init.from": str(trained["run_dir"] / "ckpt")},
    )
    from app.errors import CheckpointError

    with pytest.raises(CheckpointError) as info:
        run_inprocess(ov, config=CONFIG)
    assert info.value.message.endswith(
        "does not match the model: shape mismatch: head.fc.weight [128, 11] vs model [128, 14], "
        "head.fc.bias [11] vs model [14]"
    )


def _params_only(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Trainable tensors under ``prefix`` (BatchNorm running statistics still move while frozen)."""
    return {
        k: v for k, v in tensors.items() if k.startswith(prefix) and not k.endswith(("_mean", "_variance"))
    }


def _step_model(root: Path, step: int) -> dict[str, np.ndarray]:
    from app.checkpoint import open_source
    from app.store.config import StoreConfig

    loaded = open_source(
        str(root / f"step-{step:08d}"), StoreConfig(), allow_pickle=False, staging_dir=root / "x"
    )
    return loaded.tensors["model"]


def test_backbone_frozen_for_k_steps_then_trained(trained: dict, data_dir: Path, tmp_path: Path) -> None:
    ov = ocr_overrides(
        tmp_path / "run",
        data_dir,
        **{
            "init.from": str(trained["run_dir"] / "ckpt"),
            "init.mode": "weights",
            "freeze": '[{patterns: ["backbone.*"], until_step: 3}]',
            "schedule.total_steps": 6,
            "checkpoint.every_steps": 3,
            "checkpoint.keep_last": 5,
        },
    )
    assert run_inprocess(ov, config=CONFIG)[0] == 0
    source = final_model(trained["overrides"], CONFIG)
    at3, at6 = (_step_model(tmp_path / "run" / "ckpt", step) for step in (3, 6))
    backbone = _params_only(source, "backbone.")
    assert len(backbone) > 10
    assert_same_tensors(_params_only(at3, "backbone."), backbone)
    assert not np.array_equal(at3["neck.shortcut.weight"], source["neck.shortcut.weight"])
    changed = [k for k in backbone if not np.array_equal(at6[k], backbone[k])]
    assert changed == sorted(changed) and len(changed) == len(backbone)


def test_resume_with_augmentation_is_bit_identical(data_dir: Path, tmp_path: Path) -> None:
    augment = {
        "task.options.augment.rotate_prob": 0.5,
        "task.options.augment.noise_prob": 0.5,
        "task.options.augment.blur_prob": 0.3,
        "task.options.augment.hsv_prob": 0.3,
        "checkpoint.every_steps": 3,
    }
    augment["task.options.model.width"] = 8
    straight = ocr_overrides(tmp_path / "a", data_dir, **augment)
    assert run_inprocess(straight, config=CONFIG)[0] == 0
    resumed = ocr_overrides(tmp_path / "b", data_dir, **augment)
    assert run_inprocess(resumed, stop_at=5, config=CONFIG)[0] == 143
    rc, session = run_inprocess(resumed, config=CONFIG)
    assert rc == 0 and session.step == 8
    final = final_model(resumed, CONFIG)
    assert_same_tensors(final_model(straight, CONFIG), final)
    assert "neck.lstm.weight_ih_l0" in final and final["head.fc.weight"].shape == (128, 11)

    # The BiLSTM graph exports with a free width: Paddle Inference gives our softmax at two widths.
    out = tmp_path / "inference"
    cfg = load_config(ROOT / CONFIG, resumed, env={})
    task = build_task(cfg.task, cfg.run.seed)
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in final.items()})
    model.eval()
    task.export(model, out)
    from paddle import inference

    config = inference.Config(str(out / "inference.pdmodel"), str(out / "inference.pdiparams"))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    for width in (128, 200):
        x = np.random.default_rng(width).uniform(-1, 1, (3, 3, 32, width)).astype("float32")
        predictor.get_input_handle(predictor.get_input_names()[0]).copy_from_cpu(x)
        predictor.run()
        got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
        assert got.shape == (3, width // 4, 11)
        np.testing.assert_allclose(got, task.probabilities(model, x), rtol=1e-4, atol=1e-5)


def test_two_ranks_with_batchnorm_end_with_equal_parameters_and_exit_0(
    tmp_path: Path, data_dir: Path
) -> None:
    """Under a 2-rank launch, BatchNorm running statistics differ between ranks (DataParallel all-reduces
    gradients, not buffers, as in the toolkits' own trainers): the end-of-run replica check compares the
    parameters, so the run ends 0 and both ranks log the same digest. Before, it ended 4."""
    import subprocess
    import sys

    from tests.train_helpers import clean_env

    run_dir = tmp_path / "run"
    ov = ocr_overrides(run_dir, data_dir, **{"schedule.total_steps": 4, "train.batch_size": 8})
    cmd = [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2",
           "--log_dir", str(tmp_path / "logs"), str(Path(sys.executable).parent / "warmstart"), "train",
           "-c", CONFIG, *[a for o in ov for a in ("--set", o)]]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=600)
    logs = "\n".join(p.read_text()[-2000:] for p in sorted((tmp_path / "logs").glob("workerlog.*")))
    assert done.returncode == 0, logs

    def digest(log: Path) -> str:
        recs = [json.loads(x) for x in log.read_text().splitlines()]
        return next(r for r in recs if r.get("event") == "done")["params_sha256"]

    assert digest(run_dir / "log.jsonl") == digest(run_dir / "rank1" / "log.jsonl")
    assert any(
        k.endswith("_mean") for k in final_model(ov, CONFIG)
    )  # the saved state holds rank 0's statistics
