"""PP-OCRv3 mobile recognition (MobileNetV1Enhance + MultiHead CTC/SAR): PaddleOCR 2.8's parameter names
and shapes (the fact file lists the 239 state-dict entries of a model built from PaddleOCR's modeling
source for ``ch_PP-OCRv3_rec.yml``, 97 CTC / 99 SAR classes), a PaddleOCR-format ``.pdparams`` pickle
that round-trips (same dictionary: every tensor; a new dictionary: all but the CTC classifier and the SAR
embedding / prediction), the training semantics (guide, SAR masking by valid width) and the SAR loss by
hand."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
import yaml

from app.checkpoint.pdparams import read_pdparams
from app.errors import AppError
from app.tasks.ocr.arch.model_v3 import SvtrMv1eConfig, SvtrMv1eRecognizer, multi_loss_sar
from app.tasks.ocr.arch.sar import sar_loss
from app.train.state import assign, compare
from tests.train_helpers import ROOT

FACTS = ROOT / "tests" / "fixtures" / "ppocrv3_rec_state_shapes.json"


def _model(ctc_classes: int = 97) -> SvtrMv1eRecognizer:
    with paddle.utils.unique_name.guard():
        return SvtrMv1eRecognizer(SvtrMv1eConfig(ctc_classes=ctc_classes))


def test_state_dict_has_paddleocr_names_and_shapes() -> None:
    facts = json.loads(FACTS.read_text())["shapes"]
    ours = {k: list(v.shape) for k, v in _model().state_dict().items()}
    assert len(facts) == 239
    assert sorted(ours) == sorted(facts)
    assert {k: v for k, v in ours.items() if facts[k] != v} == {}
    assert facts["head.sar_head.decoder.prediction.weight"] == [1536, 98]  # SAR: 97 + 2 classes, minus <PAD>


def test_eval_output_is_ctc_probabilities_over_40_columns() -> None:
    model = _model(11)
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(1).uniform(-1, 1, (2, 3, 48, 320)).astype("float32"))
    assert model.backbone(x).shape == [2, 512, 1, 40]
    probs = model(x).numpy()
    assert probs.shape == (2, 40, 11)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def _save_like_paddleocr(model: paddle.nn.Layer, path: Path) -> Path:
    """``paddle.save(model.state_dict(), 'best_accuracy.pdparams')``, what PaddleOCR's training writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    paddle.save(model.state_dict(), str(path))
    return path


def test_paddleocr_pickle_round_trips_same_and_new_dictionary(tmp_path: Path) -> None:
    paddle.seed(3)
    source = _model(11)
    pdparams = _save_like_paddleocr(source, tmp_path / "rec_ppocr_v3" / "best_accuracy.pdparams")
    with pytest.raises(AppError):
        read_pdparams(pdparams, allow_pickle=False)
    arrays = read_pdparams(pdparams, allow_pickle=True)
    assert sorted(arrays) == sorted(source.state_dict())
    # Same dictionary: every tensor loads, bit for bit.
    paddle.seed(4)
    same = _model(11)
    report = compare(same, arrays)
    assert report.mismatched == [] and report.missing == [] and report.unexpected == []
    assign(same, arrays, report.loaded)
    for name, value in same.state_dict().items():
        assert np.array_equal(value.numpy(), arrays[name]), name
    # A new dictionary (3 more characters): the class-sized layers are the only ones left out.
    other = _model(14)
    report = compare(other, arrays)
    assert {n: [list(c), list(m)] for n, c, m in report.mismatched} == {
        "head.ctc_head.fc.weight": [[64, 11], [64, 14]],
        "head.ctc_head.fc.bias": [[11], [14]],
        "head.sar_head.decoder.embedding.weight": [[13, 512], [16, 512]],
        "head.sar_head.decoder.prediction.weight": [[1536, 12], [1536, 15]],
        "head.sar_head.decoder.prediction.bias": [[12], [15]],
    }
    assert report.missing == [] and report.unexpected == [] and len(report.loaded) == 239 - 5


def _labels(ctc_classes: int, texts: list[list[int]], max_len: int = 8) -> tuple[np.ndarray, ...]:
    """CTC labels (index + 1) and SAR labels ``[<BOS/EOS>, index..., <BOS/EOS>, <PAD>...]``."""
    start, pad = ctc_classes, ctc_classes + 1
    ctc = np.zeros((len(texts), max_len), "int64")
    sar = np.full((len(texts), max_len), pad, "int64")
    for i, text in enumerate(texts):
        ctc[i, : len(text)] = [c + 1 for c in text]
        row = [start, *text, start]
        sar[i, : len(row)] = row
    return ctc, sar, np.array([len(t) for t in texts], "int64")


def test_training_semantics_guide_and_valid_width_mask() -> None:
    paddle.seed(5)
    model = _model(11)
    model.train()
    x = paddle.to_tensor(np.random.default_rng(6).uniform(-1, 1, (2, 3, 48, 320)).astype("float32"))
    ctc, sar, lengths = (paddle.to_tensor(a) for a in _labels(11, [[1, 2], [7]]))
    out = model(x, sar)
    assert out["ctc"].shape == [2, 40, 11] and out["sar"].shape == [2, 8, 12]
    losses = multi_loss_sar(out, ctc, sar, lengths, model.cfg)
    losses["CTCLoss"].backward(retain_graph=True)
    # use_guide: CTC alone leaves the backbone untouched; the SAR branch trains it.
    grad = model.backbone.conv1._conv.weight.grad
    assert grad is None or not grad.any()
    losses["SARLoss"].backward()
    assert model.backbone.conv1._conv.weight.grad.abs().sum() > 0
    # A valid ratio of 0.5 masks the attention to the first 20 of 40 columns and takes the encoder state at
    # column 19: columns from 21 on (column 20 still reaches column 19 through the 3x3 attention keys) no
    # longer change that image's SAR output at all, while without the ratio they do.
    model.eval()  # no dropout; the SAR head is called directly
    feat = model.backbone(x)
    ratios = paddle.to_tensor([1.0, 0.5])
    changed = feat.clone()
    changed[:, :, :, 21:] = changed[:, :, :, 21:] + 1.0
    head = model.head.sar_head
    masked = [head(f, sar, ratios).numpy() for f in (feat, changed)]
    np.testing.assert_array_equal(masked[0][1], masked[1][1])
    assert np.abs(masked[0][0] - masked[1][0]).max() > 1e-3
    unmasked = [head(f, sar).numpy() for f in (feat, changed)]
    assert np.abs(unmasked[0][1] - unmasked[1][1]).max() > 1e-3


def test_sar_loss_by_hand() -> None:
    """Rows 0..L-2 of the logits against the label's positions 1..L-1; <PAD> (classes - 1) ignored."""
    classes = 13  # 11 CTC classes + 2
    _, sar, _ = _labels(11, [[1, 2], [7]], max_len=5)
    logits = np.random.default_rng(7).normal(size=(2, 5, classes - 1)).astype("float32")
    target = sar[:, 1:].reshape(-1)
    flat = logits[:, :-1, :].reshape(-1, classes - 1).astype("float64")
    logp = flat - np.log(np.exp(flat).sum(1, keepdims=True))
    keep = target != classes - 1
    assert keep.sum() == 5  # "1 2 </s>" and "7 </s>"
    expected = -logp[np.arange(len(target))[keep], target[keep]].mean()
    got = float(sar_loss(paddle.to_tensor(logits), paddle.to_tensor(sar), classes))
    assert abs(got - expected) < 1e-5


def test_sar_labels_from_the_wheels_multilabelencode_fit_the_model(tmp_path: Path) -> None:
    from app.tasks.ocr.arch.labels import MultiLabels

    dict_path = tmp_path / "abc.txt"
    dict_path.write_text("a\nb\nc\n")
    labels = MultiLabels(dict_path, 6, False, gtc="sar")
    ctc_classes = len(labels.character)  # blank + 3
    cfg = SvtrMv1eConfig(ctc_classes=ctc_classes)
    assert labels({"label": "abc"})["label"].tolist() == [1, 2, 3, 0, 0, 0]
    sar = labels.gtc(["abc", "b"])
    # <BOS/EOS> = the CTC class count (4), <PAD> = the last SAR class (5): the embedding's padding row and
    # the index SARLoss ignores.
    assert sar.tolist() == [[4, 0, 1, 2, 4, 5], [4, 1, 4, 5, 5, 5]]
    assert cfg.sar_classes - 1 == 5
    ctc, expected, _ = _labels(ctc_classes, [[0, 1, 2], [1]], max_len=6)
    assert np.array_equal(sar, expected)
    assert labels({"label": "abcab"}) is None  # max_text_length - 1 characters or more: dropped


V3_BLOCKS = yaml.safe_load(
    """
Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Transform:
  Backbone: {name: MobileNetV1Enhance, scale: 0.5, last_conv_stride: [1, 2], last_pool_type: avg,
             last_pool_kernel_size: [2, 2]}
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck: {name: svtr, dims: 64, depth: 2, hidden_dims: 120, use_guide: True}
          Head: {fc_decay: 0.00001}
      - SARHead: {enc_dim: 512, max_text_length: 25}
Loss:
  name: MultiLoss
  loss_config_list:
    - CTCLoss:
    - SARLoss:
PostProcess:
  name: CTCLabelDecode
Metric:
  name: RecMetric
  main_indicator: acc
  ignore_space: False
"""
)


def test_translator_reads_the_ppocrv3_blocks_into_the_architectures_config() -> None:
    """``ch_PP-OCRv3_rec.yml``'s Architecture/Loss/PostProcess/Metric (key names and values of PaddleOCR
    release 2.8, written here) -> ``model.svtr_mv1e`` keys that build the model of the fact file, and
    ``Metric.ignore_space: false`` -> ``task.options.metric.ignore_space: false``."""
    from app.errors import ConfigError
    from app.tasks.ocr import translate_arch

    algorithm, items = translate_arch.architecture(V3_BLOCKS["Architecture"])
    assert algorithm == translate_arch.V3
    values = {key.rsplit(".", 1)[1]: value for key, value, _ in items if ".svtr_mv1e." in key}
    assert ("task.options.model.algorithm", "svtr_mv1e", "Architecture.algorithm") in items
    assert values == {
        "scale": 0.5,
        "last_conv_stride": [1, 2],
        "last_pool_type": "avg",
        "last_pool_kernel_size": [2, 2],
        "dims": 64,
        "depth": 2,
        "hidden_dims": 120,
        "kernel_size": [3, 3],
        "use_guide": True,
        "fc_decay": 1e-5,
        "enc_dim": 512,
    }
    assert translate_arch.loss(V3_BLOCKS["Loss"], algorithm) == []
    weighted = {**V3_BLOCKS["Loss"], "weight_1": 1.0, "weight_2": 0.2}
    assert translate_arch.loss(weighted, algorithm) == [
        ("task.options.model.svtr_mv1e.weight_ctc", 1.0, "Loss.weight_1"),
        ("task.options.model.svtr_mv1e.weight_sar", 0.2, "Loss.weight_2"),
    ]
    with pytest.raises(ConfigError):  # the PP-OCRv4 loss does not fit the PP-OCRv3 architecture
        translate_arch.loss(
            {"name": "MultiLoss", "loss_config_list": [{"CTCLoss": None}, {"NRTRLoss": None}]}, algorithm
        )
    translate_arch.postprocess(V3_BLOCKS["PostProcess"])  # accepted: CTCLabelDecode
    assert translate_arch.metric(V3_BLOCKS["Metric"]) == [
        ("train.metric", "word_accuracy", "Metric.main_indicator"),
        ("task.options.metric.ignore_space", False, "Metric.ignore_space"),
    ]
    tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    with paddle.utils.unique_name.guard():
        model = SvtrMv1eRecognizer(SvtrMv1eConfig(ctc_classes=97, **tuples))
    facts = json.loads(FACTS.read_text())["shapes"]
    assert {k: list(v.shape) for k, v in model.state_dict().items()} == facts


def test_whole_ppocrv3_blocks_load_into_validated_options(tmp_path: Path) -> None:
    """The four blocks in a config file with our task section: the loaded, validated ``task.options``
    select svtr_mv1e with ch_PP-OCRv3_rec.yml's sizes and count spaces in the metric; the upstream class
    defaults fill what a block leaves out (MobileNetV1Enhance: last_conv_stride 1, max pool)."""
    from app.config import load_config
    from app.config.typed import from_data
    from app.tasks.ocr.options import OcrRecOptions

    raw = {"task": {"kind": "ocr_rec", "options": {"data_dir": "d", "builtin_dict": "en_dict.txt"}}}
    path = tmp_path / "v3.yaml"
    path.write_text(yaml.safe_dump({**raw, **V3_BLOCKS, "schedule": {"total_steps": 10}}))
    opts = from_data(OcrRecOptions, load_config(path, env={}).task.options, "task.options")
    m = opts.model.svtr_mv1e
    assert opts.model.algorithm == "svtr_mv1e" and opts.metric.ignore_space is False
    assert (m.scale, m.last_conv_stride, m.last_pool_type, m.last_pool_kernel_size) == (
        0.5,
        [1, 2],
        "avg",
        [2, 2],
    )
    assert (m.dims, m.depth, m.hidden_dims, m.kernel_size, m.use_guide, m.enc_dim) == (
        64,
        2,
        120,
        [3, 3],
        True,
        512,
    )
    bare = copy.deepcopy(V3_BLOCKS)
    bare["Architecture"]["Backbone"] = {"name": "MobileNetV1Enhance", "scale": 0.5}
    path.write_text(yaml.safe_dump({**raw, **bare, "schedule": {"total_steps": 10}}))
    opts = from_data(OcrRecOptions, load_config(path, env={}).task.options, "task.options")
    m = opts.model.svtr_mv1e
    assert (m.last_conv_stride, m.last_pool_type, m.last_pool_kernel_size) == ([1, 1], "max", [3, 2])
    # ... and an image height the backbone does not reduce to one row is one line naming the field
    path.write_text(yaml.safe_dump({**raw, **V3_BLOCKS, "schedule": {"total_steps": 10}}))
    with pytest.raises(AppError) as info:
        from_data(
            OcrRecOptions,
            load_config(path, ["task.options.image_shape=[3, 64, 320]"], env={}).task.options,
            "task.options",
        )
    assert info.value.message.startswith("task.options.image_shape: svtr_mv1e needs an H its backbone")


NUMERICS = ROOT / "tests" / "fixtures" / "ppocrv3_rec_numerics.json"


def _seeded_model() -> SvtrMv1eRecognizer:
    """PP-OCRv3 (11 CTC classes) with every tensor drawn by name from a fixed numpy seed (an LSTM weight
    listed under two names gets one draw)."""
    model = _model(11)
    rng = np.random.default_rng(2027)
    state, drawn = {}, {}
    for name, value in sorted(model.state_dict().items()):
        key = getattr(value, "name", name)
        if key in drawn:
            state[name] = drawn[key]
            continue
        shape = value.shape
        if name.endswith("_variance"):
            a = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("_mean") or name.endswith("bias"):
            a = rng.normal(0, 0.05, shape)
        elif len(shape) == 1:
            a = rng.uniform(0.5, 1.2, shape)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) == 4 else shape[0]
            a = rng.normal(0, (20.0 if "ctc_head" in name else 1.0) / np.sqrt(fan_in), shape)
        state[name] = drawn[key] = a.astype("float32")
    model.set_state_dict(state)
    return model


def numerics() -> dict[str, object]:
    """Eval probabilities, training-mode outputs (paddle.seed 13; with valid ratios) and the losses."""
    model = _seeded_model()
    x = paddle.to_tensor(np.random.default_rng(8).uniform(-1, 1, (2, 3, 48, 160)).astype("float32"))
    model.eval()
    probs = model(x).numpy()
    ctc, sar, lengths = (paddle.to_tensor(a) for a in _labels(11, [[1, 2, 2], [7]]))
    model.train()
    paddle.seed(13)
    out = model(x, sar, paddle.to_tensor([1.0, 0.6]))
    losses = multi_loss_sar(out, ctc, sar, lengths, model.cfg)
    return {
        "eval_probs": probs.round(7).tolist(),
        "train_ctc_logits": out["ctc"].numpy().round(6).tolist(),
        "train_sar_logits": out["sar"].numpy().round(6).tolist(),
        "losses": {k: round(float(v), 6) for k, v in losses.items()},
    }


def test_outputs_match_the_saved_fixture() -> None:
    """Regression guard; the fixture was written by this model and reproduced by a reconstruction of
    PaddleOCR 2.8's modules with the same weights (docs/ocr.md)."""
    saved, got = json.loads(NUMERICS.read_text()), numerics()
    for key in ("eval_probs", "train_ctc_logits", "train_sar_logits"):
        np.testing.assert_allclose(
            np.array(got[key]), np.array(saved[key]), rtol=1e-4, atol=2e-5, err_msg=key
        )
    for key, value in saved["losses"].items():
        assert abs(got["losses"][key] - value) <= 1e-4 * abs(value), key
    assert np.array(saved["eval_probs"]).shape == (2, 20, 11) and np.array(saved["eval_probs"]).max() > 0.3


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    NUMERICS.write_text(json.dumps(numerics()) + "\n")
    print(f"wrote {NUMERICS}")
