"""PP-OCRv3 end to end with a PaddleOCR user's config (configs/ocr_rec_ppocrv3.yaml: their Global,
Optimizer, Architecture MobileNetV1Enhance + MultiHead CTC/SAR, Loss CTC + SAR, PostProcess, Metric with
``ignore_space: false``, Train and Eval) on a set rendered by app/tasks/ocr/synth.py: `warmstart train`
feeds the wheel's RecConAug / RecAug / MultiLabelEncode (CTC + SAR labels) and RecResizeImg valid ratios to
the MultiLoss; a run stopped at a checkpoint resumes to exactly the weights of an uninterrupted run; a
PaddleOCR-format pickled ``best_accuracy.pdparams`` warm-starts it (same dictionary: every tensor; a new
dictionary with ``init.mode: partial``: exactly the CTC classifier and the SAR embedding / prediction
skipped); eval counts spaces; and the CTC branch exports for the wheel's TextRecognizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.cli import main
from app.config import load_config
from app.tasks.base import build_task
from app.tasks.ocr.data import load_image
from app.tasks.ocr.options import SynthOptions
from app.tasks.ocr.predictor import predict_files
from app.tasks.ocr.synth import write_synthetic
from tests.train_helpers import (
    ROOT,
    assert_same_tensors,
    final_model,
    prepared_session,
    run_inprocess,
    save_pdparams,
)

CONFIG = "configs/ocr_rec_ppocrv3.yaml"
#: 12 lines, batch 4: 3 steps an epoch, 2 epochs.
STEPS = 6
#: What a new dictionary changes in PP-OCRv3: the CTC classifier, the SAR embedding and prediction.
CLASS_LAYERS = {
    "head.ctc_head.fc.weight",
    "head.ctc_head.fc.bias",
    "head.sar_head.decoder.embedding.weight",
    "head.sar_head.decoder.prediction.weight",
    "head.sar_head.decoder.prediction.bias",
}


def user_overrides(run_dir: Path, data: Path, **extra: object) -> list[str]:
    """What a PaddleOCR user changes to run the shipped config here (their data paths, a short run), a
    small line size of ours (H 32 reduces to one row like 48), and where our run writes."""
    base: dict[str, object] = {
        "Train.dataset.data_dir": data,
        "Train.dataset.label_file_list": f"[{data / 'train.txt'}]",
        "Eval.dataset.data_dir": data,
        "Eval.dataset.label_file_list": f"[{data / 'eval.txt'}]",
        "Global.epoch_num": 2,
        "Global.print_batch_step": 1,
        "Global.max_text_length": 8,
        "Global.eval_batch_step": "[0, 3]",
        "Optimizer.lr.warmup_epoch": 0.5,
        "Train.loader.batch_size_per_card": 4,
        "Eval.loader.batch_size_per_card": 8,
        "task.options.image_shape": "[3, 32, 96]",
        "task.options.synthetic": "null",
        "run.dir": run_dir,
        "checkpoint.uri": run_dir / "ckpt",
        "checkpoint.every_steps": 3,
        "train.progress_bar": "off",
        "train.data_workers": 0,
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The synthetic set; an uninterrupted run; the same run with a data worker, stopped at step 2 (saved
    there) and resumed."""
    data = tmp_path_factory.mktemp("v3data")
    write_synthetic(data, SynthOptions(charset="0123456789ab", max_len=3, n_train=12, n_eval=6, seed=5))
    root = tmp_path_factory.mktemp("v3runs")
    straight = user_overrides(root / "a", data)
    assert run_inprocess(straight, config=CONFIG)[0] == 0
    resumed = user_overrides(root / "b", data, **{"train.data_workers": 1})  # batches made in a worker
    assert run_inprocess(resumed, stop_at=2, config=CONFIG)[0] == 143
    rc, session = run_inprocess(resumed, config=CONFIG)
    assert rc == 0 and session.step == STEPS
    return {"data": data, "root": root, "straight": straight, "resumed": resumed}


def _records(log: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, log.read_text().splitlines()) if r["kind"] == kind]


def test_trains_ctc_plus_sar_and_resumes_bit_exactly(runs: dict) -> None:
    log = runs["root"] / "a" / "log.jsonl"
    steps = _records(log, "train")
    assert [r["step"] for r in steps] == list(range(1, STEPS + 1))
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    evals = _records(log, "eval")
    assert evals and all(0.0 <= r["metrics"]["word_accuracy"] <= 1.0 for r in evals), evals
    straight = final_model(runs["straight"], CONFIG)
    assert_same_tensors(straight, final_model(runs["resumed"], CONFIG))
    # en_dict + space (Global.character_dict_path, use_space_char): 97 CTC classes, 99 SAR classes.
    assert straight["head.ctc_head.fc.weight"].shape == (64, 97)
    assert straight["head.sar_head.decoder.embedding.weight"].shape == (99, 512)
    assert straight["head.sar_head.decoder.prediction.weight"].shape == (1536, 98)
    # ... which are the class counts of the fact file (a model built from PaddleOCR's source): every name
    # and shape of the trained checkpoint is PaddleOCR's.
    facts = json.loads((ROOT / "tests" / "fixtures" / "ppocrv3_rec_state_shapes.json").read_text())["shapes"]
    assert {k: list(v.shape) for k, v in straight.items()} == facts


def test_task_feeds_sar_labels_and_valid_ratios(runs: dict) -> None:
    """The batch of the PaddleOCR pipeline: the wheel's SAR label ``[<BOS/EOS>, chars, <BOS/EOS>, <PAD>..]``
    and RecResizeImg's valid ratio (resized width / W, at most 1), the fifth tensor the SAR branch masks by."""
    cfg = load_config(ROOT / CONFIG, runs["straight"], env={})
    task = build_task(cfg.task, cfg.run.seed)
    assert task.gtc == "sar" and task.pipeline is not None and task.opts.metric.ignore_space is False
    arrays = task.train_arrays([0, 1, 2, 3], epoch=0)
    images, ctc, lengths, sar, ratios = (t.numpy() for t in task.to_batch(arrays))
    assert images.shape == (4, 3, 32, 96) and sar.shape == (4, 8) and ratios.shape == (4,)
    start, pad = 97, 98  # <BOS/EOS> = the CTC class count, <PAD> = the last SAR class
    for row, n, label in zip(sar, lengths, ctc, strict=True):
        assert row[0] == start and row[n + 1] == start and set(row[n + 2 :]) <= {pad}
        assert (row[1 : n + 1] + 1).tolist() == label[:n].tolist()  # SAR: index; CTC: index + 1
    assert ((ratios > 0) & (ratios <= 1)).all()
    # columns past the valid width are RecResizeImg's zero padding
    for image, ratio in zip(images, ratios, strict=True):
        width = round(float(ratio) * 96)
        assert width == 96 or not image[:, :, width:].any()
    # Without RecAug / RecConAug (our own keys win over the Train transforms) the plain path feeds the same
    # five tensors: labels read once, the valid ratio from the wheel's RecResizeImg per image.
    plain = [*runs["straight"], "task.options.rec_aug=null", "task.options.rec_con_aug=null"]
    cfg = load_config(ROOT / CONFIG, plain, env={})
    task = build_task(cfg.task, cfg.run.seed)
    assert task.pipeline is None
    images, ctc, lengths, sar, ratios = (t.numpy() for t in task.to_batch(task.train_arrays([0, 1], 0)))
    assert np.array_equal(sar, task.gtc_labels[:2]) and np.array_equal(ctc, task.train_set.labels[:2])
    for path, ratio in zip(task.train_set.paths[:2], ratios, strict=True):
        h, w = load_image(path).shape[:2]
        assert ratio == np.float32(min(1.0, math.ceil(32 * w / h) / 96))


def test_eval_counts_spaces_as_ppocrv3s_metric_says(runs: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Metric.ignore_space: false``: a prediction that differs only by a space is wrong (PaddleOCR's
    RecMetric); with our default (PaddleOCR's too) it is right."""
    cfg = load_config(ROOT / CONFIG, runs["straight"], env={})
    task = build_task(cfg.task, cfg.run.seed)
    texts = task.eval_set.texts
    spaced = [f" {t}" if i % 2 else t for i, t in enumerate(texts)]
    monkeypatch.setattr(task, "recognize", lambda model, paths: [(t, 1.0) for t in spaced])
    n = len(texts)
    assert task.eval_targets() == texts  # every character is in the dictionary
    assert task.evaluate(None)["word_accuracy"] == pytest.approx((n - n // 2) / (n + 1e-5))
    task.opts.metric.ignore_space = True
    assert task.evaluate(None)["word_accuracy"] == pytest.approx(n / (n + 1e-5))


def test_eval_targets_are_the_decoded_labels_as_in_recmetric(runs: dict, tmp_path: Path) -> None:
    """PaddleOCR compares with the label decoded from its CTC encoding, so a character outside the
    dictionary is not part of the target: "1é2" is read correctly as "12" (en_dict has no "é")."""
    image = (runs["data"] / "eval.txt").read_text().splitlines()[0].split("\t")[0]
    labels = tmp_path / "eval.txt"
    labels.write_text(f"{image}\t1é2\n{image}\t1 2\n", encoding="utf-8")
    over = [*runs["straight"], f"Eval.dataset.label_file_list=[{labels}]"]
    cfg = load_config(ROOT / CONFIG, over, env={})
    task = build_task(cfg.task, cfg.run.seed)
    assert task.eval_set.texts == ["1é2", "1 2"] and task.eval_targets() == ["12", "1 2"]


def test_paddleocr_pdparams_warm_starts_same_dictionary_every_tensor(runs: dict, tmp_path: Path) -> None:
    source = final_model(runs["straight"], CONFIG)
    pdparams = save_pdparams(source, tmp_path / "ch_PP-OCRv3_rec_train" / "best_accuracy.pdparams")
    pickle_ok = {"init.from": pdparams, "init.allow_pickle": "true", "init.mode": "weights"}
    session = prepared_session(CONFIG, user_overrides(tmp_path / "w", runs["data"], **pickle_ok))
    report = json.loads((tmp_path / "w" / "warmstart_report.json").read_text())
    assert sorted(report["loaded"]) == sorted(source)
    assert report["mismatched"] == [] and report["missing"] == [] and report["unexpected"] == []
    assert_same_tensors({k: v.numpy() for k, v in session.net.state_dict().items()}, source)


def test_new_dictionary_trains_from_the_pickle_skipping_exactly_the_class_layers(
    runs: dict, tmp_path: Path
) -> None:
    source = final_model(runs["straight"], CONFIG)
    pdparams = save_pdparams(source, tmp_path / "best_accuracy.pdparams")
    new = {
        "Global.character_dict_path": runs["data"] / "charset_dict.txt",  # 12 characters + space
        "init.from": pdparams,
        "init.allow_pickle": "true",
        "init.mode": "partial",
    }
    over = user_overrides(tmp_path / "p", runs["data"], **new)
    session = prepared_session(CONFIG, over)
    report = json.loads((tmp_path / "p" / "warmstart_report.json").read_text())
    assert {name: [c, m] for name, c, m in report["mismatched"]} == {
        "head.ctc_head.fc.weight": [[64, 97], [64, 14]],
        "head.ctc_head.fc.bias": [[97], [14]],
        "head.sar_head.decoder.embedding.weight": [[99, 512], [16, 512]],  # SAR classes: CTC + 2
        "head.sar_head.decoder.prediction.weight": [[1536, 98], [1536, 15]],  # SAR classes - 1 (no <PAD>)
        "head.sar_head.decoder.prediction.bias": [[98], [15]],
    }
    assert set(report["loaded"]) == set(source) - CLASS_LAYERS
    assert report["missing"] == [] and report["unexpected"] == []
    warm = {k: v.numpy() for k, v in session.net.state_dict().items()}
    assert_same_tensors({k: warm[k] for k in report["loaded"]}, {k: source[k] for k in report["loaded"]})
    # and `warmstart train` runs from it: an epoch of the new 14-class model
    over.append("Global.epoch_num=1")
    rc, trained = run_inprocess(over, config=CONFIG)
    assert rc == 0 and trained.step == STEPS // 2
    assert final_model(over, CONFIG)["head.ctc_head.fc.weight"].shape == (64, 14)


def test_export_reads_in_the_wheels_text_recognizer_with_our_text(runs: dict, tmp_path: Path) -> None:
    """`warmstart export` of a PaddleOCR-format pickle at PP-OCRv3's 3,48,320: the wheel's TextRecognizer
    (SVTR_LCNet) reads what our in-process decode reads. The weights are a fresh model's with a random CTC
    classifier, whose texts differ per line (six training steps read one text everywhere)."""
    over = user_overrides(tmp_path / "e", runs["data"], **{"task.options.image_shape": "[3, 48, 320]"})
    cfg = load_config(ROOT / CONFIG, over, env={})
    task = build_task(cfg.task, cfg.run.seed)
    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        fresh = task.build_model()
    weights = {k: v.numpy() for k, v in fresh.state_dict().items()}
    weights["head.ctc_head.fc.weight"] = np.random.default_rng(9).normal(0, 2.0, (64, 97)).astype("float32")
    pdparams = save_pdparams(weights, tmp_path / "random_head.pdparams")
    out = tmp_path / "inference"
    args = ["export", "-c", str(ROOT / CONFIG), "--out", str(out), "--from", str(pdparams)]
    args += ["--set", "init.allow_pickle=true", *[a for o in over for a in ("--set", o)]]
    assert main(args) == 0
    settings = json.loads((out / "predictor.json").read_text())
    assert settings["rec_algorithm"] == "SVTR_LCNet" and settings["rec_image_shape"] == "3,48,320"
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    model.eval()
    paths = list(task.eval_set.paths) + list(task.train_set.paths[:6])
    ours, theirs = task.recognize(model, paths), predict_files(out, paths)
    assert [t for t, _ in theirs] == [t for t, _ in ours]
    np.testing.assert_allclose([c for _, c in theirs], [c for _, c in ours], rtol=1e-3)
    assert len({t for t, _ in ours}) > 3


def test_a_line_that_does_not_encode_is_replaced_as_simpledataset_does(runs: dict) -> None:
    """PP-OCRv3 trains from ``SimpleDataSet``, which replaces a sample whose label fails (here: too long for
    the SAR label) by a *random* one in training; ``MultiScaleDataSet`` (PP-OCRv4) takes the next. Ours draws
    the random one from ``(seed, epoch, index)``, so the same call gives the same replacement."""
    from app.tasks.ocr.pipeline import PPOCRv4Pipeline
    from app.tasks.ocr.wheel import builtin_dict_path

    lines = [line.split("\t") for line in (runs["data"] / "train.txt").read_text().splitlines()]
    paths = [runs["data"] / name for name, _ in lines]
    texts = ["1234567"] + [text for _, text in lines[1:]]  # 7 >= max_text_length - 1: no SAR label
    dict_path = builtin_dict_path("en_dict.txt")

    def pipeline(random_retry: bool) -> PPOCRv4Pipeline:
        return PPOCRv4Pipeline(paths, texts, dict_path, 8, True, None, None, "sar", random_retry)

    nxt, rnd = pipeline(False), pipeline(True)
    assert nxt.sample(0, 96, 32, 0, 1) is None
    expected = int(np.random.default_rng([0, 1, 0, 7]).integers(len(paths)))
    assert expected not in (0, 1)  # this seed's draw tells the two rules apart
    for pipe, index in ((nxt, 1), (rnd, expected)):
        got = pipe(0, 96, 32, 0, 1)
        want = pipe.sample(index, 96, 32, 0, 1)
        assert np.array_equal(got["image"], want["image"]) and np.array_equal(
            got["label_sar"], want["label_sar"]
        )
    assert np.array_equal(rnd(0, 96, 32, 0, 1)["label_ctc"], rnd(0, 96, 32, 0, 1)["label_ctc"])
