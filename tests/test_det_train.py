"""Detection on CPU with real ppdet models: every shipped detector trains, one resumes bit-exactly (with
EMA), a partial warm start into a changed head, a frozen backbone, COCO eval, and an exported model.

Tiny on purpose: 96 px synthetic shapes, batch 2, a handful of steps.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)
from app.checkpoint import CheckpointManager
from app.config import load_config
from app.store import open_store
from app.tasks.det.synth import CATEGORIES, draw_image, write_shapes
from tests.train_helpers import ROOT, assert_same_tensors, run_inprocess, train_losses

FILES = ["det_state.safetensors", "manifest.json", "meta.json", "model.safetensors", "optimizer.safetensors",
         "trainer_state.json"]  # fmt: skip


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes(tmp_path_factory.mktemp("shapes"), n_train=12, n_eval=4, size=96, seed=3)


def overrides(run: Path, data: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": run, "checkpoint.uri": run / "ckpt", "task.options.dataset_dir": data,
        "task.options.synthetic": None, "schedule.total_steps": 4, "schedule.warmup.steps": 2,
        "train.batch_size": 2, "train.log_every_steps": 1, "train.progress_bar": "off",
        "train.eval_every_steps": None, "checkpoint.every_steps": 2, "checkpoint.keep_last": 5,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={'null' if v is None else v}" for k, v in base.items()]


def latest(run: Path, config: str, over: list[str]):
    cfg = load_config(ROOT / config, over, env={})
    mgr = CheckpointManager(open_store(str(run / "ckpt"), cfg.store), cfg.checkpoint, run / "x")
    try:
        return mgr.load(mgr.latest())
    finally:
        mgr.close()


def test_synthetic_set_is_deterministic_valid_coco(tmp_path: Path, shapes: Path) -> None:
    again = write_shapes(tmp_path, n_train=12, n_eval=4, size=96, seed=3)
    for name in ("train.json", "eval.json", "images/train_00001.png"):
        assert (again / name).read_bytes() == (shapes / name).read_bytes()
    coco = json.loads((shapes / "train.json").read_text())
    assert set(coco) == {"info", "licenses", "images", "annotations", "categories"}
    assert [c["name"] for c in coco["categories"]] == CATEGORIES and len(coco["images"]) == 12
    img, objects = draw_image(7, 96)
    assert img.shape == (96, 96, 3) and 1 <= len(objects) <= 3
    for _, (x, y, w, h) in objects:
        assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 96 and w >= 16 and h >= 16


@pytest.mark.parametrize(
    "config, ema",
    [("det_picodet_s.yaml", True), ("det_ppyoloe_plus_s.yaml", True), ("det_yolov3_mbv1.yaml", False)],
)
def test_shipped_detector_trains_evaluates_and_checkpoints(
    tmp_path: Path, shapes: Path, config: str, ema: bool
) -> None:
    over = overrides(tmp_path, shapes, **{"schedule.total_steps": 3, "checkpoint.every_steps": 10})
    rc, s = run_inprocess(over, config=f"configs/{config}")
    assert rc == 0 and s.step == 3
    losses = train_losses(tmp_path / "log.jsonl")
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) and v > 0 for v in losses.values())
    assert set(s.metrics) == {"bbox_map", "bbox_map50", "boxes"} and 0.0 <= s.metrics["bbox_map"] <= 1.0
    files = sorted(p.name for p in (tmp_path / "ckpt" / "step-00000003").iterdir())
    assert files == sorted(FILES + (["ema.safetensors"] if ema else []))
    loaded = latest(tmp_path, f"configs/{config}", over)
    assert int(loaded.tensors["det_state"]["batches_seen"]) == 3
    if ema:
        assert int(loaded.tensors["ema"]["@step"]) == 3


def test_resume_is_bit_identical_including_ema(tmp_path: Path, shapes: Path) -> None:
    config = "configs/det_picodet_s.yaml"
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert run_inprocess(overrides(full, shapes), config=config)[0] == 0
    assert run_inprocess(overrides(cut, shapes), stop_at=2, config=config)[0] == 143
    rc, s = run_inprocess(overrides(cut, shapes), config=config)
    assert rc == 0 and s.step == 4
    a, b = latest(full, config, overrides(full, shapes)), latest(cut, config, overrides(cut, shapes))
    for group in ("model", "optimizer", "ema", "det_state"):
        assert_same_tensors(a.tensors[group], b.tensors[group])
    assert train_losses(full / "log.jsonl") == train_losses(cut / "log.jsonl")
    assert a.meta["metrics"] == b.meta["metrics"]


def _params(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Trainable tensors under ``prefix`` (BatchNorm running statistics move even when frozen)."""
    return {
        k: v for k, v in arrays.items() if k.startswith(prefix) and not k.endswith(("_mean", "_variance"))
    }


def test_partial_warm_start_new_classes_with_frozen_backbone(tmp_path: Path, shapes: Path) -> None:
    config = "configs/det_picodet_s.yaml"
    src, dst = tmp_path / "src", tmp_path / "dst"
    assert (
        run_inprocess(
            overrides(src, shapes, **{"schedule.total_steps": 2, "schedule.warmup.steps": 1}), config=config
        )[0]
        == 0
    )
    source = latest(src, config, overrides(src, shapes)).tensors["model"]
    warm = overrides(dst, shapes, **{
        "task.options.num_classes": 4, "init.from": src / "ckpt", "init.mode": "partial",
        "schedule.total_steps": 3, "schedule.warmup.steps": 1,
    }) + ['freeze=[{"patterns": ["backbone.*"], "until_step": 2}]']  # fmt: skip
    assert run_inprocess(warm, stop_at=2, config=config)[0] == 143
    report = json.loads((dst / "warmstart_report.json").read_text())
    skipped = {m[0] if isinstance(m, list) else m["name"] for m in report["mismatched"]}
    # PicoHeadV2 registers each class conv twice (head_cls<i> and head_cls_list.<i>)
    assert skipped == {
        f"head.{name}.{p}"
        for i in range(3)
        for name in (f"head_cls{i}", f"head_cls_list.{i}")
        for p in ("weight", "bias")
    }
    assert report["missing"] == [] and report["unexpected"] == [] and report["loaded_fraction"] > 0.9
    at2 = latest(dst, config, warm).tensors["model"]
    frozen = _params(at2, "backbone.")
    assert frozen and all(np.array_equal(v, source[k]) for k, v in frozen.items())
    assert at2["head.head_cls_list.0.weight"].shape[0] == 4
    assert not np.array_equal(
        at2["neck.conv_t.convs.0.conv.weight"], source["neck.conv_t.convs.0.conv.weight"]
    )
    assert run_inprocess(warm, config=config)[0] == 0
    at3 = latest(dst, config, warm).tensors["model"]
    assert any(not np.array_equal(v, frozen[k]) for k, v in _params(at3, "backbone.").items())


def test_export_runs_with_paddle_inference(tmp_path: Path, shapes: Path) -> None:
    import cv2
    import paddle

    from app.tasks.base import build_task

    over = overrides(tmp_path, shapes, **{"schedule.total_steps": 2, "schedule.warmup.steps": 1})
    rc, s = run_inprocess(over, config="configs/det_picodet_s.yaml")
    assert rc == 0
    written = s.task.export(s.net, tmp_path / "export")
    assert sorted(p.name for p in written) == ["infer_cfg.yml", "model.pdiparams", "model.pdmodel"]
    assert (
        "label_list:\n- rectangle\n- ellipse\n- triangle"
        in (tmp_path / "export" / "infer_cfg.yml").read_text()
    )
    img, objects = draw_image(11, 96)
    cv2.imwrite(str(tmp_path / "one.png"), img)
    rec = {"im_file": str(tmp_path / "one.png"), "im_id": np.array([0]), "h": 96.0, "w": 96.0}
    task = build_task(load_config(ROOT / "configs/det_picodet_s.yaml", over, env={}).task, 0)
    batch = task.eval_pipe([rec])
    pred = paddle.inference.create_predictor(
        paddle.inference.Config(
            str(tmp_path / "export/model.pdmodel"), str(tmp_path / "export/model.pdiparams")
        )
    )
    for name in pred.get_input_names():
        pred.get_input_handle(name).copy_from_cpu(batch[name])
    pred.run()
    boxes, num = (pred.get_output_handle(n).copy_to_cpu() for n in pred.get_output_names())
    assert boxes.ndim == 2 and boxes.shape[1] == 6 and num.tolist() == [boxes.shape[0]]
    with s.task.eval_weights(s.net):
        s.net.eval()
        ((_, ref),) = s.task.predict(s.net, [rec])
    ours = ref["bbox"].numpy()
    assert ours.shape == boxes.shape
    # An untrained head ties many scores, so NMS may keep different tied boxes: compare the best box.
    assert boxes[:, 1].max() == pytest.approx(float(ours[:, 1].max()), rel=1e-4)
    best = boxes[boxes[:, 1].argmax()]
    assert np.isclose(ours, best, rtol=1e-4, atol=1e-3).all(axis=1).any()


def test_users_upstream_config_trains_unchanged(tmp_path: Path, shapes: Path) -> None:
    """A multi-file upstream-style config: its LearningRate, OptimizerBuilder and batch size are used."""
    base = tmp_path / "cfg" / "_base_"
    base.mkdir(parents=True)
    (base / "optimizer_1x.yml").write_text(
        "epoch: 2\nLearningRate:\n  base_lr: 0.01\n  schedulers:\n  - !CosineDecay {max_epochs: 2}\n"
        "  - !LinearWarmup {start_factor: 0.1, steps: 2}\n"
        "OptimizerBuilder:\n  optimizer: {momentum: 0.9, type: Momentum}\n  regularizer: {factor: 0.00004, type: L2}\n"
    )
    (base / "coco_detection.yml").write_text(
        f"TrainDataset:\n  !COCODataSet\n    image_dir: images\n    anno_path: train.json\n    dataset_dir: {shapes}\n"
        "    data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']\n"
        f"EvalDataset:\n  !COCODataSet\n    image_dir: images\n    anno_path: eval.json\n    dataset_dir: {shapes}\n"
    )
    main_yml = tmp_path / "cfg" / "my_picodet.yml"
    main_yml.write_text(
        f"_BASE_: ['{ROOT / 'configs/ppdet/picodet_s_lcnet.yml'}', '_base_/optimizer_1x.yml', '_base_/coco_detection.yml']\n"
        "TrainReader:\n  batch_size: 4\n"
    )
    ours = tmp_path / "ours.yaml"
    ours.write_text(
        f"run: {{dir: {tmp_path / 'run'}}}\ncheckpoint: {{uri: {tmp_path / 'ckpt'}}}\n"
        f"task: {{kind: detection, options: {{ppdet_config: {main_yml}}}}}\ntrain: {{progress_bar: 'off', log_every_steps: 1}}\n"
    )
    cfg = load_config(ours, env={})
    assert (cfg.train.batch_size, cfg.optim.name, cfg.optim.weight_decay) == (4, "momentum", 0.00004)
    assert (cfg.schedule.epochs, cfg.schedule.warmup.steps, cfg.schedule.warmup.start_lr) == (2, 2, 0.001)
    rc, s = run_inprocess([], config=str(ours))
    assert rc == 0 and s.step == 6  # 12 images / batch 4 = 3 steps per epoch, 2 epochs
    assert s.task.data_source.startswith(f"coco {shapes}")
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
           if json.loads(line)["kind"] == "train"]  # fmt: skip
    assert lrs[:3] == pytest.approx([0.001, 0.0055, 0.01], rel=1e-9)
