"""PP-OCRv4 mobile recognition (``model.algorithm: svtr_lcnet``): PaddleOCR's parameter names and shapes
(all 968 of the fact file), the folded inference form, the training semantics (guide, losses), a
bit-identical resume, a PaddleOCR-format ``best_accuracy.pdparams`` warm start (``weights`` and ``partial``
with a new dictionary) and ``ckpt import``, and an export the wheel's ``TextRecognizer`` reads
(``SVTR_LCNet``, ``3,48,320``) with our decoded text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.cli import main
from app.config import load_config
from app.tasks.base import build_task
from app.tasks.ocr.arch.model import SvtrLcnetConfig, SvtrLcnetRecognizer, multi_loss, nrtr_loss
from app.tasks.ocr.predictor import predict_files
from tests.train_helpers import (
    ROOT,
    assert_same_tensors,
    final_model,
    prepared_session,
    run_inprocess,
    save_pdparams,
)

CONFIG = "configs/ocr_rec_small.yaml"
FACTS = ROOT / "tests" / "fixtures" / "ppocrv4_rec_state_shapes.json"
DIGITS = "0123456789"


def _model(ctc_classes: int = 97, max_len: int = 25) -> SvtrLcnetRecognizer:
    with paddle.utils.unique_name.guard():
        return SvtrLcnetRecognizer(SvtrLcnetConfig(ctc_classes=ctc_classes, max_text_length=max_len))


def test_state_dict_has_paddleocr_names_and_shapes() -> None:
    facts = json.loads(FACTS.read_text())["shapes"]
    ours = {k: list(v.shape) for k, v in _model().state_dict().items()}
    assert len(facts) == 968
    assert sorted(ours) == sorted(facts)
    assert {k: v for k, v in ours.items() if facts[k] != v} == {}


def _randomize_bn(model: paddle.nn.Layer, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            n = layer._mean.shape[0]
            layer._mean.set_value(rng.normal(0, 0.1, n).astype("float32"))
            layer._variance.set_value(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.weight.set_value(rng.uniform(0.1, 0.3, n).astype("float32"))
            layer.bias.set_value(rng.normal(0, 0.1, n).astype("float32"))


def test_folded_backbone_computes_the_same_function() -> None:
    paddle.seed(1)
    model = _model(11)
    _randomize_bn(model, 0)
    model.eval()
    x = paddle.to_tensor(np.random.default_rng(2).uniform(-1, 1, (2, 3, 48, 120)).astype("float32"))
    feats = model.backbone(x).numpy()
    probs = model(x).numpy()
    model.reparameterize()
    names = model.state_dict()
    assert not any("conv_kxk" in n or ".identity." in n or "conv_1x1" in n for n in names)
    folded = model.backbone(x).numpy()
    assert np.abs(folded - feats).max() <= 1e-4 * np.abs(feats).max()
    np.testing.assert_allclose(model(x).numpy(), probs, rtol=1e-4, atol=1e-5)
    assert feats.shape == (2, 480, 1, 15) and probs.shape == (2, 15, 11)


def test_training_semantics_guide_and_losses() -> None:
    paddle.seed(3)
    cfg = SvtrLcnetConfig(ctc_classes=11, max_text_length=8)
    model = _model(11, 8)
    model.train()
    x = paddle.to_tensor(np.random.default_rng(4).uniform(-1, 1, (2, 3, 48, 120)).astype("float32"))
    ctc = paddle.to_tensor(np.array([[1, 2, 0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0, 0, 0]], dtype="int32"))
    nrtr = paddle.to_tensor(np.array([[2, 4, 5, 3, 0, 0, 0, 0], [2, 6, 3, 0, 0, 0, 0, 0]], dtype="int64"))
    lengths = paddle.to_tensor(np.array([2, 1], dtype="int64"))
    out = model(x, nrtr, lengths)
    # Training pools to 40 columns; NRTR is teacher-forced on 1 + max(length) tokens over 14 + 1 classes.
    assert out["ctc"].shape == [2, 40, 11] and out["nrtr"].shape == [2, 3, 15]
    losses = multi_loss(out, ctc, nrtr, lengths, cfg)
    losses["CTCLoss"].backward(retain_graph=True)
    # use_guide: the CTC branch's input is a gradient-stopped copy, so CTC alone leaves the backbone untouched.
    assert model.backbone.conv1.conv.weight.grad is None or not model.backbone.conv1.conv.weight.grad.any()
    assert model.head.ctc_encoder.encoder.conv1.conv.weight.grad.abs().sum() > 0
    losses["NRTRLoss"].backward()
    assert model.backbone.conv1.conv.weight.grad.abs().sum() > 0
    # NRTR loss by hand: smoothing 0.1 spread over the 14 other classes, mean over the 4 non-pad targets.
    logits = np.random.default_rng(5).normal(size=(2, 3, 15)).astype("float32")
    target = nrtr.numpy()[:, 1:4].reshape(-1)
    logp = logits.reshape(-1, 15) - np.log(np.exp(logits.reshape(-1, 15)).sum(1, keepdims=True))
    smooth = np.full((6, 15), 0.1 / 14)
    smooth[np.arange(6), target] = 0.9
    expected = -(smooth * logp).sum(1)[target != 0].mean()
    got = float(nrtr_loss(paddle.to_tensor(logits), nrtr, lengths))
    assert abs(got - expected) < 1e-5


def svtr_overrides(run_dir: Path, data_dir: Path, **extra: object) -> list[str]:
    base: dict[str, object] = {
        "run.dir": str(run_dir),
        "checkpoint.uri": str(run_dir / "ckpt"),
        "checkpoint.every_steps": 2,
        "task.options.data_dir": str(data_dir),
        "task.options.image_shape": "[3, 48, 120]",
        "task.options.max_text_length": 8,
        "task.options.eval_batch_size": 8,
        "task.options.model.algorithm": "svtr_lcnet",
        "task.options.augment.rotate_prob": 0.5,
        "task.options.augment.noise_prob": 0.5,
        "task.options.augment.blur_prob": 0.0,
        "task.options.augment.hsv_prob": 0.0,
        "task.options.synthetic.charset": DIGITS,
        "task.options.synthetic.max_len": 3,
        "task.options.synthetic.n_train": 32,
        "task.options.synthetic.n_eval": 4,
        "task.options.synthetic.fonts": "[DejaVuSans.ttf]",
        "schedule.total_steps": 4,
        "schedule.base_lr": 0.001,
        "schedule.warmup": "{kind: linear, steps: 1, start_lr: 0.0001}",
        "train.batch_size": 2,
        "train.eval_every_steps": 100,
        "train.log_every_steps": 1,
        "train.progress_bar": "off",
    }
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items() if v is not None]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 4-step run straight, and the same run stopped at step 3 (checkpoint at 2) then resumed."""
    data_dir = tmp_path_factory.mktemp("ppocrv4_data")
    root = tmp_path_factory.mktemp("ppocrv4_runs")
    straight = svtr_overrides(root / "a", data_dir)
    assert run_inprocess(straight, config=CONFIG)[0] == 0
    again = svtr_overrides(root / "b", data_dir)
    assert run_inprocess(again, stop_at=3, config=CONFIG)[0] == 143
    rc, session = run_inprocess(again, config=CONFIG)
    assert rc == 0 and session.step == 4
    return {"straight": straight, "resumed": again, "data_dir": data_dir, "root": root}


def test_svtr_lcnet_resume_is_bit_identical(resumed: dict) -> None:
    final = final_model(resumed["resumed"], CONFIG)
    assert_same_tensors(final_model(resumed["straight"], CONFIG), final)
    assert final["head.ctc_head.fc.weight"].shape == (120, 11)
    assert final["head.gtc_head.embedding.embedding.weight"].shape == (15, 384)


def test_paddleocr_pdparams_warm_starts_weights_partial_and_imports(resumed: dict, tmp_path: Path) -> None:
    source = final_model(resumed["straight"], CONFIG)
    pdparams = save_pdparams(source, tmp_path / "rec_ppocr_v4" / "best_accuracy.pdparams")
    data_dir = resumed["data_dir"]
    # Same dictionary: init.mode weights loads every tensor (a pickle needs the explicit opt-in).
    same = svtr_overrides(
        tmp_path / "w", data_dir, **{"init.from": str(pdparams), "init.allow_pickle": "true"}
    )
    session = prepared_session(CONFIG, same)
    assert_same_tensors({k: v.numpy() for k, v in session.net.state_dict().items()}, source)
    # A new dictionary: partial loads all but the CTC classifier and the NRTR embedding / output layer.
    new_dict = tmp_path / "digits_xyz.txt"
    new_dict.write_text("".join(f"{c}\n" for c in DIGITS + "xyz"))
    extra = {"init.mode": "partial", "task.options.character_dict_path": str(new_dict)}
    partial = svtr_overrides(tmp_path / "p", data_dir, **{"init.from": str(pdparams), **extra})
    partial.append(f"init.sha256={__import__('hashlib').sha256(pdparams.read_bytes()).hexdigest()}")
    session = prepared_session(CONFIG, partial)
    report = json.loads((tmp_path / "p" / "warmstart_report.json").read_text())
    skipped = {
        "head.ctc_head.fc.weight": [[120, 11], [120, 14]],
        "head.ctc_head.fc.bias": [[11], [14]],
        "head.gtc_head.embedding.embedding.weight": [[15, 384], [18, 384]],
        "head.gtc_head.tgt_word_prj.weight": [[384, 15], [384, 18]],
    }
    assert {n: [c, m] for n, c, m in report["mismatched"]} == skipped
    assert sorted(report["loaded"]) == sorted(k for k in source if k not in skipped)
    assert report["missing"] == [] and report["unexpected"] == []
    # `warmstart ckpt import` turns the pickle into a safetensors checkpoint that loads the same tensors.
    dest = tmp_path / "imported"
    assert main(["ckpt", "import", str(pdparams), str(dest), "--allow-pickle"]) == 0
    assert list(dest.rglob("*.safetensors")) and not list(dest.rglob("*.pdparams"))
    session = prepared_session(CONFIG, svtr_overrides(tmp_path / "i", data_dir, **{"init.from": str(dest)}))
    assert_same_tensors({k: v.numpy() for k, v in session.net.state_dict().items()}, source)


def test_export_reads_in_paddleocr_text_recognizer_svtr_lcnet(resumed: dict, tmp_path: Path) -> None:
    """The CTC branch, folded, exported at 3x48x320; the wheel's TextRecognizer (SVTR_LCNet) gives our text."""
    overrides = svtr_overrides(
        tmp_path / "x", resumed["data_dir"], **{"task.options.image_shape": "[3, 48, 320]"}
    )
    cfg = load_config(ROOT / CONFIG, overrides, env={})
    task = build_task(cfg.task, cfg.run.seed)
    with paddle.utils.unique_name.guard():
        model = task.build_model()
    weights = final_model(resumed["straight"], CONFIG)
    # A 4-step model reads "6" everywhere; a random classifier on its features makes the texts differ.
    rng = np.random.default_rng(9)
    weights["head.ctc_head.fc.weight"] = rng.normal(0, 2.0, (120, 11)).astype("float32")
    weights["head.ctc_head.fc.bias"] = np.zeros(11, "float32")
    model.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    model.eval()
    out = tmp_path / "inference"
    task.export(model, out)
    settings = json.loads((out / "predictor.json").read_text())
    assert settings["rec_algorithm"] == "SVTR_LCNet" and settings["rec_image_shape"] == "3,48,320"
    paths = list(task.eval_set.paths) + list(task.train_set.paths[:4])
    ours = task.recognize(model, paths)
    theirs = predict_files(out, paths)
    assert len({t for t, _ in ours}) > 3
    assert [t for t, _ in theirs] == [t for t, _ in ours]
    np.testing.assert_allclose([c for _, c in theirs], [c for _, c in ours], rtol=1e-3)


def test_svtr_lcnet_refuses_an_image_height_its_eval_pooling_cannot_take() -> None:
    from app.config.typed import from_data
    from app.errors import ConfigError
    from app.tasks.ocr.options import OcrRecOptions

    options = {
        "data_dir": "d",
        "builtin_dict": "en_dict.txt",
        "image_shape": [3, 32, 128],
        "model": {"algorithm": "svtr_lcnet"},
    }
    with pytest.raises(ConfigError) as info:
        from_data(OcrRecOptions, options, "task.options")
    assert str(info.value) == (
        "task.options.image_shape: svtr_lcnet needs H of 48, 64 or 80 (its eval pooling leaves one row of "
        "H/16) and W a multiple of 8, got [3, 32, 128] (PP-OCRv4 uses [3, 48, 320])"
    )
    options["image_shape"] = [3, 48, 320]
    opts = from_data(OcrRecOptions, options, "task.options")
    assert opts.model.algorithm == "svtr_lcnet" and opts.model.svtr_lcnet.dims == 120
    assert from_data(OcrRecOptions, {**options, "model": {}}, "task.options").model.algorithm == "crnn"


def test_svtr_attention_split_equals_upstreams_five_dim_reshape() -> None:
    """Splitting qkv into thirds (what keeps Paddle Inference's SIGILL-prone fuse pass away) gives exactly
    upstream's ``reshape([N, T, 3, heads, d]).transpose([2, 0, 3, 1, 4])`` then index, bit for bit."""
    import paddle.nn.functional as F

    from app.tasks.ocr.arch.svtr_neck import GlobalAttention

    paddle.seed(7)
    attn = GlobalAttention(120, 8, 0.1, 0.1)
    attn.eval()
    x = paddle.to_tensor(np.random.default_rng(8).normal(size=(2, 15, 120)).astype("float32"))
    qkv = attn.qkv(x).reshape([0, -1, 3, 8, 15]).transpose([2, 0, 3, 1, 4])
    q, k, v = qkv[0] * attn.scale, qkv[1], qkv[2]
    weights = F.softmax(q.matmul(k.transpose([0, 1, 3, 2])), axis=-1)
    upstream = attn.proj(weights.matmul(v).transpose([0, 2, 1, 3]).reshape([0, -1, 120]))
    assert np.array_equal(attn(x).numpy(), upstream.numpy())
