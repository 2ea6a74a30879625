"""End to end with a PaddleOCR user's config (configs/ocr_rec_ppocrv4.yaml: their Global, Optimizer,
Architecture, Loss, PostProcess, Metric, Train and Eval blocks) on a set rendered by app/tasks/ocr/synth.py:
`warmstart train` feeds PaddleOCR's MultiScaleSampler batches and the wheel's RecConAug / RecAug /
MultiLabelEncode to PP-OCRv4's MultiLoss; a run stopped mid-epoch by a real SIGTERM (data workers 2, then
1) resumes to exactly the weights of an uninterrupted run (data workers 0); a PaddleOCR-format pickled
``best_accuracy.pdparams`` warm-starts it (``init.allow_pickle``, and after ``warmstart ckpt import``);
a new dictionary warm-starts partially with exactly the CTC and NRTR class layers skipped; and the export
reads in the wheel's TextRecognizer with our in-process text."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.cli import main
from app.config import load_config
from app.tasks.base import build_task
from app.tasks.ocr.options import SynthOptions
from app.tasks.ocr.predictor import predict_files
from app.tasks.ocr.synth import write_synthetic
from tests.signal_helpers import (
    TIMEOUT_S,
    committed_steps,
    events,
    last_line,
    start,
    stop,
    train_cmd,
    trained_to,
    wait_until,
)
from tests.train_helpers import (
    ROOT,
    VENV_BIN,
    assert_same_tensors,
    clean_env,
    final_model,
    prepared_session,
    save_pdparams,
)

CONFIG = "configs/ocr_rec_ppocrv4.yaml"
#: 24 lines at scales 96x32 / 96x48 / 96x64 with first_bs 4 (fix_bs false: 4, 2, 2): 9 batches an epoch.
BATCHES_PER_EPOCH = 9
#: What a new dictionary changes in PP-OCRv4: the CTC classifier and the NRTR embedding / output layer.
CLASS_LAYERS = {
    "head.ctc_head.fc.weight",
    "head.ctc_head.fc.bias",
    "head.gtc_head.embedding.embedding.weight",
    "head.gtc_head.tgt_word_prj.weight",
}


def user_overrides(run_dir: Path, data: Path, **extra: object) -> list[str]:
    """What a PaddleOCR user changes to run the shipped config here: their data paths (PaddleOCR keys),
    a short run, small scales; plus where our run writes."""
    base: dict[str, object] = {
        "Train.dataset.data_dir": data,
        "Train.dataset.label_file_list": f"[{data / 'train.txt'}]",
        "Eval.dataset.data_dir": data,
        "Eval.dataset.label_file_list": f"[{data / 'eval.txt'}]",
        "Global.epoch_num": 2,
        "Global.print_batch_step": 1,
        "Optimizer.lr.warmup_epoch": 0.5,
        "Train.sampler.scales": "[[96, 32], [96, 48], [96, 64]]",
        "Train.sampler.first_bs": 4,
        "Train.loader.batch_size_per_card": 4,
        "Eval.loader.batch_size_per_card": 8,
        "task.options.synthetic": "null",
        "run.dir": run_dir,
        "checkpoint.uri": run_dir / "ckpt",
        "checkpoint.every_steps": 2,
        "train.progress_bar": "off",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _train(overrides: list[str]) -> subprocess.CompletedProcess:
    out = subprocess.run(
        train_cmd(CONFIG, overrides), cwd=ROOT, env=clean_env(), capture_output=True, text=True,
        timeout=TIMEOUT_S * 3,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic set; an uninterrupted run (no data workers); the same run stopped by SIGTERM
    mid-epoch (2 data workers) and resumed (1 data worker)."""
    data = tmp_path_factory.mktemp("v4data")
    write_synthetic(data, SynthOptions(charset="0123456789abc", max_len=4, n_train=24, n_eval=6, seed=4))
    root = tmp_path_factory.mktemp("v4runs")
    straight = user_overrides(root / "a", data, **{"train.data_workers": 0})
    _train(straight)
    b_dir = root / "b"
    proc = start(train_cmd(CONFIG, user_overrides(b_dir, data, **{"train.data_workers": 2})))
    wait_until(proc, trained_to(b_dir / "log.jsonl", 3), "step 3")
    code, err = stop(proc)
    assert code == 143, err[-3000:]
    assert "Run the same command again to resume" in last_line(err)
    stopped = events(b_dir / "log.jsonl", "preempted")[0]["step"]
    resumed = user_overrides(b_dir, data, **{"train.data_workers": 1})
    _train(resumed)
    return {"data": data, "root": root, "straight": straight, "resumed": resumed, "stopped": stopped}


def test_trains_multiscale_batches_and_resumes_bit_exactly_after_sigterm(runs: dict) -> None:
    log = runs["root"] / "a" / "log.jsonl"
    steps = [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "train"]
    assert [r["step"] for r in steps] == list(range(1, 2 * BATCHES_PER_EPOCH + 1))
    assert {r["epoch"] for r in steps} == {0, 1} and all(np.isfinite(r["loss"]) for r in steps)
    # the first step's 4 samples at 96x32 or 2 at 96x48/96x64: the sampler's batch sizes, not train.batch_size
    assert sum(r["samples_per_s"] > 0 for r in steps) == len(steps)
    stopped = runs["stopped"]
    assert 3 <= stopped < BATCHES_PER_EPOCH  # mid-epoch: the resume continues at batch `stopped` of epoch 0
    assert stopped in committed_steps(runs["root"] / "b" / "ckpt")
    state = json.loads(
        (runs["root"] / "b" / "ckpt" / f"step-{stopped:08d}" / "trainer_state.json").read_text()
    )
    assert state["data"] == {
        "epoch": 0,
        "batch": stopped,
        "samples_in_epoch": state["data"]["samples_in_epoch"],
    }
    resumed = final_model(runs["resumed"], CONFIG)
    assert_same_tensors(final_model(runs["straight"], CONFIG), resumed)
    assert resumed["head.ctc_head.fc.weight"].shape == (120, 97)  # en_dict + space: PaddleOCR's 97 classes


def test_paddleocr_pdparams_warm_starts_under_warmstart_train_and_after_import(
    runs: dict, tmp_path: Path
) -> None:
    source = final_model(runs["straight"], CONFIG)
    pdparams = save_pdparams(source, tmp_path / "en_PP-OCRv4_rec_train" / "best_accuracy.pdparams")
    warm = tmp_path / "warm"
    pickle_ok = {"init.from": pdparams, "init.allow_pickle": "true", "init.mode": "weights"}
    _train(user_overrides(warm, runs["data"], **pickle_ok, **{"Global.epoch_num": 1}))
    report = json.loads((warm / "warmstart_report.json").read_text())
    assert sorted(report["loaded"]) == sorted(source) and len(source) > 900
    assert report["mismatched"] == [] and report["missing"] == [] and report["unexpected"] == []
    start_event = events(warm / "log.jsonl", "warm_start")[0]
    assert start_event["sha256"] == hashlib.sha256(pdparams.read_bytes()).hexdigest()
    # without the opt-in the pickle is refused (exit 4, one line)
    refused = subprocess.run(
        train_cmd(CONFIG, user_overrides(tmp_path / "r", runs["data"], **{"init.from": pdparams})),
        cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_S,
    )  # fmt: skip
    assert refused.returncode != 0 and "allow_pickle" in last_line(refused.stderr), refused.stderr[-2000:]
    # `warmstart ckpt import` -> safetensors, which warm-starts with no pickle opt-in
    dest = tmp_path / "imported"
    assert main(["ckpt", "import", str(pdparams), str(dest), "--allow-pickle"]) == 0
    assert list(dest.rglob("*.safetensors")) and not list(dest.rglob("*.pdparams"))
    session = prepared_session(CONFIG, user_overrides(tmp_path / "i", runs["data"], **{"init.from": dest}))
    assert_same_tensors({k: v.numpy() for k, v in session.net.state_dict().items()}, source)


def test_new_dictionary_warm_starts_partial_skipping_exactly_the_class_layers(
    runs: dict, tmp_path: Path
) -> None:
    source = final_model(runs["straight"], CONFIG)
    pdparams = save_pdparams(source, tmp_path / "best_accuracy.pdparams")
    new = {
        "Global.character_dict_path": runs["data"] / "charset_dict.txt",  # 13 characters + space: 14 classes
        "init.from": pdparams,
        "init.allow_pickle": "true",
        "init.mode": "partial",
    }
    prepared_session(CONFIG, user_overrides(tmp_path / "p", runs["data"], **new))
    report = json.loads((tmp_path / "p" / "warmstart_report.json").read_text())
    assert {name: [c, m] for name, c, m in report["mismatched"]} == {
        "head.ctc_head.fc.weight": [[120, 97], [120, 15]],
        "head.ctc_head.fc.bias": [[97], [15]],
        "head.gtc_head.embedding.embedding.weight": [[101, 384], [19, 384]],  # NRTR classes + 1
        "head.gtc_head.tgt_word_prj.weight": [[384, 101], [384, 19]],
    }
    assert set(report["loaded"]) == set(source) - CLASS_LAYERS
    assert report["missing"] == [] and report["unexpected"] == []


def test_export_reads_in_the_wheels_text_recognizer_with_our_text(runs: dict, tmp_path: Path) -> None:
    """`warmstart export` of the run, and of a PaddleOCR-format pickle (`--from`, with the pickle opt-in)
    whose CTC classifier is random, so the texts differ per line: the wheel's TextRecognizer (SVTR_LCNet,
    3,48,320) reads what our in-process decode reads."""
    weights = final_model(runs["straight"], CONFIG)
    rng = np.random.default_rng(
        9
    )  # 18 steps read about the same text everywhere; a random classifier does not
    weights["head.ctc_head.fc.weight"] = rng.normal(0, 2.0, (120, 97)).astype("float32")
    pdparams = save_pdparams(weights, tmp_path / "random_head.pdparams")
    cfg = load_config(ROOT / CONFIG, runs["straight"], env={})
    task = build_task(cfg.task, cfg.run.seed)
    paths = list(task.eval_set.paths) + list(task.train_set.paths[:6])
    for name, source, tensors in (
        ("run", [], final_model(runs["straight"], CONFIG)),
        ("pdparams", ["--from", str(pdparams), "--set", "init.allow_pickle=true"], weights),
    ):
        out = tmp_path / name
        exported = subprocess.run(
            [str(VENV_BIN / "warmstart"), "export", "-c", str(ROOT / CONFIG), "--out", str(out), *source,
             *[a for o in runs["straight"] for a in ("--set", o)]],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_S,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr[-3000:]
        settings = json.loads((out / "predictor.json").read_text())
        assert settings["rec_algorithm"] == "SVTR_LCNet" and settings["rec_image_shape"] == "3,48,320"
        with paddle.utils.unique_name.guard():
            model = task.build_model()
        model.set_state_dict({k: paddle.to_tensor(v) for k, v in tensors.items()})
        model.eval()
        ours, theirs = task.recognize(model, paths), predict_files(out, paths)
        assert [t for t, _ in theirs] == [t for t, _ in ours], name
        np.testing.assert_allclose([c for _, c in theirs], [c for _, c in ours], rtol=1e-3)
    assert len({t for t, _ in ours}) > 3


def test_two_processes_split_the_multiscale_plan_and_step_together(runs: dict, tmp_path: Path) -> None:
    """`warmstart launch` with 2 ranks: each takes its share of every epoch's plan (12 of the 24 lines:
    batches 4/2/2 cycled twice = 6 an epoch), both step together to the end, and their replicas agree."""
    slow = {
        "Global.epoch_num": 1,
        "train.data_workers": 0,
        "preempt.peer_timeout_seconds": 900,
    }  # loaded CPUs
    over = user_overrides(tmp_path / "run", runs["data"], **slow)
    cmd = [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(tmp_path / "logs"),
           "--", "train", "-c", str(ROOT / CONFIG), *[a for o in over for a in ("--set", o)]]  # fmt: skip
    done = subprocess.run(
        cmd, cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT_S * 3
    )
    assert done.returncode == 0, done.stderr[-3000:]
    log = tmp_path / "run" / "log.jsonl"
    steps = [r["step"] for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == "train"]
    assert steps == list(range(1, 7))
    assert events(log, "done")[0]["params_sha256"]  # rank replicas checked equal at the end
    state = json.loads((tmp_path / "run" / "ckpt" / "step-00000006" / "trainer_state.json").read_text())
    # 16 samples a rank (the last cycle of 4/2/2 runs past 12 and wraps), 32 in all
    assert state["data"] == {"epoch": 0, "batch": 6, "samples_in_epoch": 32} and state["world_size"] == 2
