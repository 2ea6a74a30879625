"""A PaddleDetection user's files, unchanged: data set sections in both of ppdet's spellings (``!Tag`` and
``name:``), COCO and Pascal VOC sources, a release-2.6-shaped ``_BASE_`` tree through `train` and `plan`,
one-line errors for every broken data set section, and a word on every top-level ppdet key.

Tiny on purpose: 96 px synthetic shapes, 2 training steps, a 2-image evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import app  # noqa: F401  (zlib before paddle)
from app.cli import main
from app.tasks.det.synth import CATEGORIES, write_shapes
from app.tasks.det.workspace import _workspace
from tests.det_upstream_tree import upstream_tree
from tests.train_helpers import ROOT, run_inprocess

_workspace()  # ppdet's loggers bind sys.stdout when imported: here, not under a test's capsys
PICODET = ROOT / "configs/ppdet/picodet_s_lcnet.yml"  # the shipped 96 px PicoDet (tag-form data sets)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_shapes(tmp_path_factory.mktemp("shapes"), n_train=8, n_eval=3, size=96, seed=5)
    _to_voc(root)
    return root


def _to_voc(root: Path) -> None:
    """The same images as Pascal VOC: Annotations/*.xml, trainval.txt / test.txt lists, label_list.txt."""
    (root / "Annotations").mkdir()
    (root / "label_list.txt").write_text("\n".join(CATEGORIES) + "\n")
    for split, listing in (("train", "trainval.txt"), ("eval", "test.txt")):
        coco = json.loads((root / f"{split}.json").read_text())
        lines = []
        for img in coco["images"]:
            objects = "".join(
                f"<object><name>{CATEGORIES[a['category_id'] - 1]}</name><difficult>0</difficult><bndbox>"
                f"<xmin>{a['bbox'][0]}</xmin><ymin>{a['bbox'][1]}</ymin><xmax>{a['bbox'][0] + a['bbox'][2]}"
                f"</xmax><ymax>{a['bbox'][1] + a['bbox'][3]}</ymax></bndbox></object>"
                for a in coco["annotations"]
                if a["image_id"] == img["id"]
            )
            xml = Path(img["file_name"]).with_suffix(".xml").name
            (root / "Annotations" / xml).write_text(
                f"<annotation><filename>{img['file_name']}</filename><size><width>{img['width']}</width>"
                f"<height>{img['height']}</height><depth>3</depth></size>{objects}</annotation>"
            )
            lines.append(f"images/{img['file_name']} Annotations/{xml}")
        (root / listing).write_text("\n".join(lines) + "\n")


COCO_NAME_FORM = """\
metric: COCO
num_classes: 3
TrainDataset:
  name: COCODataSet
  image_dir: images
  anno_path: train.json
  dataset_dir: {data}
  data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']
EvalDataset:
  name: COCODataSet
  image_dir: images
  anno_path: eval.json
  dataset_dir: {data}
  allow_empty: true
TestDataset:
  name: ImageFolder
  anno_path: eval.json
  dataset_dir: {data}
"""
COCO_TAG_FORM = """\
metric: COCO
num_classes: 3
TrainDataset:
  !COCODataSet
    image_dir: images
    anno_path: train.json
    dataset_dir: {data}
    data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']
EvalDataset:
  !COCODataSet
    image_dir: images
    anno_path: eval.json
    dataset_dir: {data}
TestDataset:
  !ImageFolder
    anno_path: eval.json
    dataset_dir: {data}
"""
VOC = """\
metric: VOC
map_type: 11point
num_classes: 3
TrainDataset:
  name: VOCDataSet
  dataset_dir: {data}
  anno_path: trainval.txt
  label_list: label_list.txt
  data_fields: ['image', 'gt_bbox', 'gt_class', 'difficult']
EvalDataset:
  name: VOCDataSet
  dataset_dir: {data}
  anno_path: test.txt
  label_list: label_list.txt
  data_fields: ['image', 'gt_bbox', 'gt_class', 'difficult']
TestDataset:
  name: ImageFolder
  anno_path: {data}/label_list.txt
EvalReader:
  collate_batch: false
"""


def ours(tmp: Path, ppdet_yml: Path, **options: object) -> Path:
    """A Warmstart config pointing at ``ppdet_yml``, with only ``options`` in task.options."""
    opts = ", ".join(f"{k}: {v}" for k, v in {"ppdet_config": ppdet_yml, **options}.items())
    path = tmp / "ours.yaml"
    path.write_text(
        f"run: {{dir: {tmp / 'run'}}}\ncheckpoint: {{uri: {tmp / 'ckpt'}}}\n"
        f"task: {{kind: detection, options: {{{opts}}}}}\n"
        "train: {progress_bar: 'off', log_every_steps: 1}\n"
    )
    return path


def datasets_yml(tmp: Path, body: str, data: Path) -> Path:
    """The shipped 96 px PicoDet model and readers (without its data sets) + this data set file."""
    model = PICODET.read_text().replace("'_base_/shapes_coco.yml',", "")
    model = model.replace("'_base_/small_reader.yml'", f"'{PICODET.parent / '_base_/small_reader.yml'}'")
    (tmp / "model.yml").write_text(model)
    (tmp / "data.yml").write_text(body.format(data=data))
    main_yml = tmp / "main.yml"
    main_yml.write_text("_BASE_: ['model.yml', 'data.yml']\n")
    return main_yml


def build(config: Path):
    from app.config import load_config
    from app.tasks.base import build_task

    return build_task(load_config(config, env={}).task, 0)


def test_name_form_tag_form_and_voc_give_the_same_records(tmp_path: Path, shapes: Path) -> None:
    tasks = {}
    for form, body in (("name", COCO_NAME_FORM), ("tag", COCO_TAG_FORM), ("voc", VOC)):
        (tmp_path / form).mkdir()
        tasks[form] = build(ours(tmp_path / form, datasets_yml(tmp_path / form, body, shapes)))
    boxes = {form: [r["gt_bbox"].round(3).tolist() for r in t.train_records] for form, t in tasks.items()}
    classes = {form: [r["gt_class"].ravel().tolist() for r in t.train_records] for form, t in tasks.items()}
    assert len(boxes["name"]) == 8 and boxes["name"] == boxes["tag"] == boxes["voc"]
    assert classes["name"] == classes["tag"] == classes["voc"]
    assert [len(t.eval_records) for t in tasks.values()] == [3, 3, 3]
    assert tasks["voc"].data_source.startswith(f"voc {shapes}") and tasks["voc"].metric == "VOC"
    assert tasks["name"].data_source.startswith(f"coco {shapes}")
    assert type(tasks["name"].test_ds).__name__ == type(tasks["tag"].test_ds).__name__ == "ImageFolder"


def test_voc_trains_evaluates_and_exports_its_labels(tmp_path: Path, shapes: Path) -> None:
    config = ours(tmp_path, datasets_yml(tmp_path, VOC, shapes))
    over = ["schedule.total_steps=2", "schedule.warmup.steps=1", "train.batch_size=2"]
    rc, s = run_inprocess(over, config=str(config))
    assert rc == 0 and s.step == 2
    assert set(s.metrics) == {"bbox_map50", "boxes"} and 0.0 <= s.metrics["bbox_map50"] <= 1.0
    assert s.cfg.train.metric == "bbox_map50"  # the translator's choice for metric: VOC
    written = s.task.export(s.net, tmp_path / "export")
    assert (
        "label_list:\n- rectangle\n- ellipse\n- triangle" in (tmp_path / "export/infer_cfg.yml").read_text()
    )
    assert sorted(p.name for p in written) == ["infer_cfg.yml", "model.pdiparams", "model.pdmodel"]


def test_upstream_tree_plans_and_trains_with_only_data_paths_set(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = {
        "dataset_dir": shapes,
        "image_dir": "images",
        "train_anno": "train.json",
        "eval_anno": "eval.json",
    }
    # num_classes stays COCO's 80; the ImageNet pretrain_weights URL is switched off as ppdet users do
    config = ours(tmp_path, upstream_tree(tmp_path), **paths, overrides="{pretrain_weights: null}")
    rc = main(["plan", "--config", str(config), "--set", "train.batch_size=4"])
    out, err = capsys.readouterr()
    assert rc == 0
    # 8 images // batch 4 = 2 steps per epoch; CosineDecay max_epochs 300, LinearWarmup 300 steps
    assert "steps per epoch: 2 " in out and "schedule: 600 optimizer steps, warmup 300 steps" in out
    warned = " ".join(line for line in err.splitlines() if " WARNING " in line)
    for key in ("use_gpu", "log_iter", "save_dir", "snapshot_epoch", "find_unused_parameters",
                "print_flops", "export", "weights=output/picodet_s_320_coco/best_model",
                "num_classes is 80 but the annotations define 3 classes: detections of classes 3..79 are not scored"):  # fmt: skip
        assert key in warned, key
    assert "pretrain_weights is empty in task.options.overrides: no pretrained weights (cold start)" in err
    used = next(line for line in err.splitlines() if "; translated: " in line)
    assert "TrainDataset" in used and "LearningRate -> schedule" in used and "PicoHeadV2" in used
    assert "worker_num -> train.data_workers" in used and "worker_num" not in warned
    over = [
        "schedule.total_steps=2",
        "schedule.warmup.steps=1",
        "train.batch_size=2",
        "task.options.max_eval_images=2",
    ]
    rc, s = run_inprocess(over, config=str(config))
    assert rc == 0 and s.step == 2
    assert s.cfg.train.data_workers == 6  # picodet_320_reader.yml's top-level worker_num
    assert set(s.metrics) == {"bbox_map", "bbox_map50", "boxes"}
    assert (s.cfg.optim.name, s.cfg.optim.weight_decay, s.cfg.schedule.base_lr) == ("momentum", 0.00004, 0.32)
    written = s.task.export(s.net, tmp_path / "export")  # rebuilds the 4-scale PicoDet for tracing
    assert sorted(p.name for p in written) == ["infer_cfg.yml", "model.pdiparams", "model.pdmodel"]
    assert (
        "label_list:\n- rectangle\n- ellipse\n- triangle\n" in (tmp_path / "export/infer_cfg.yml").read_text()
    )


def _section_error(tmp: Path, body: str, data: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    rc = main(["train", "--config", str(ours(tmp, datasets_yml(tmp, body, data)))])
    err = capsys.readouterr().err.strip().splitlines()
    assert not any("Traceback" in line for line in err), "\n".join(err)
    return rc, err[-1]


BROKEN = {
    "name missing": (COCO_NAME_FORM.replace("  name: COCODataSet\n", "", 1), 2, "TrainDataset.name is missing"),
    "unknown source": (COCO_NAME_FORM.replace("COCODataSet", "CocoDataSet", 1), 2,
                       "TrainDataset.name 'CocoDataSet' is not supported"),
    "bad key, name form": (COCO_NAME_FORM.replace("anno_path: train.json", "anno_paht: train.json"), 2,
                           "TrainDataset.anno_paht is not a COCODataSet key"),
    "bad key, tag form": (COCO_TAG_FORM.replace("anno_path: eval.json\n    dataset_dir", "annopath: eval.json\n    dataset_dir"),
                          2, "EvalDataset.annopath is not a COCODataSet key"),
    "path not a string": (COCO_NAME_FORM.replace("image_dir: images", "image_dir: [images]", 1), 2,
                          "TrainDataset.image_dir must be a path string"),
    "missing annotations": (COCO_NAME_FORM.replace("train.json", "nope.json"), 5,
                            "TrainDataset.anno_path: training annotations"),
    "annotations not json": (COCO_NAME_FORM.replace("anno_path: train.json", "anno_path: label_list.txt"), 5,
                             "TrainDataset: ppdet cannot read the training annotations"),
    "no gt fields": (COCO_NAME_FORM.replace("data_fields: ['image', 'gt_bbox', 'gt_class', 'is_crowd']",
                                            "data_fields: ['image']"), 2, "TrainDataset.data_fields"),
    "missing label_list": (VOC.replace("label_list: label_list.txt", "label_list: labels.txt", 1), 5,
                           "TrainDataset.label_list"),
    "voc metric, coco data": (COCO_NAME_FORM.replace("metric: COCO", "metric: VOC"), 2,
                              "metric VOC needs EvalDataset name: VOCDataSet"),
    "unsupported metric": (COCO_NAME_FORM.replace("metric: COCO", "metric: RBOX"), 2, "metric 'RBOX' is not supported"),
    "too few classes": (COCO_NAME_FORM.replace("num_classes: 3", "num_classes: 2"), 2,
                        "num_classes is 2 but the annotations define 3 classes"),
    "no eval section": (COCO_NAME_FORM[: COCO_NAME_FORM.index("EvalDataset")], 2, "no EvalDataset section"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_data_set_section_is_one_line_naming_the_key(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    body, code, needle = BROKEN[case]
    rc, line = _section_error(tmp_path, body, shapes, capsys)
    assert rc == code and line.startswith("warmstart: ") and needle in line, line


def test_tag_section_replaced_by_a_plain_mapping_is_named(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ppdet replaces a base file's ``!COCODataSet`` section by the including file's plain mapping."""
    main_yml = datasets_yml(tmp_path, COCO_TAG_FORM, shapes)
    main_yml.write_text(main_yml.read_text() + f"TrainDataset: {{dataset_dir: {shapes}}}\n")
    rc = main(["train", "--config", str(ours(tmp_path, main_yml))])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "TrainDataset.name is missing" in err[-1] and len(err[-1].splitlines()) == 1


def test_export_names_ppdet_weights_and_reads_them_only_through_the_pickle_gate(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import paddle

    from app.checkpoint.tensorio import sha256_file

    main_yml = datasets_yml(tmp_path, COCO_NAME_FORM + "weights: output/mine/model_final\n", shapes)
    config = ours(tmp_path, main_yml)
    over = ["schedule.total_steps=2", "schedule.warmup.steps=1", "train.batch_size=2"]
    rc, s = run_inprocess(over, config=str(config))
    assert rc == 0
    capsys.readouterr()
    assert main(["export", "--config", str(config), "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "weights=output/mine/model_final is not what warmstart evaluates or exports" in err
    assert "`warmstart export --from output/mine/model_final.pdparams --set init.allow_pickle=true`" in err
    ppdet_file = tmp_path / "model_final.pdparams"  # what ppdet's trainer writes: a pickle
    paddle.save(s.net.state_dict(), str(ppdet_file))
    export = ["export", "--config", str(config), "--out", str(tmp_path / "b"), "--from", str(ppdet_file)]
    assert main(export) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert "is a pickle" in err[-1] and "init.allow_pickle" in err[-1]
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
    assert main([*export, "--set", "init.allow_pickle=true"]) == 0
    err = capsys.readouterr().err
    assert f"unpickling {ppdet_file} (sha256 {sha256_file(ppdet_file)})" in err
    assert {"infer_cfg.yml", "model.pdiparams", "model.pdmodel"} <= {
        p.name for p in (tmp_path / "b").iterdir()
    }


def test_voc_piecewise_schedule_counts_steps_per_epoch_from_the_voc_list(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The translator counts VOC list entries (not COCO json) for PiecewiseDecay's epoch boundaries."""
    from app.tasks.det.translate import count_voc_images

    assert count_voc_images(shapes / "trainval.txt", shapes) == 8
    schedule = (
        "epoch: 4\nLearningRate:\n  base_lr: 0.01\n  schedulers:\n  - !PiecewiseDecay {{gamma: 0.1, milestones: [2, 3]}}\n"
        "  - !LinearWarmup {{start_factor: 0.1, steps: 1}}\nTrainReader: {{batch_size: 4}}\n"
    )
    config = ours(tmp_path, datasets_yml(tmp_path, VOC + schedule, shapes))
    assert main(["plan", "--config", str(config), "--json"]) == 0
    lrs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["lr"]
    # 8 images // batch 4 = 2 steps per epoch: 8 steps, warmup 1, then drops at epochs 2 and 3
    assert len(lrs) == 8 and lrs[1:] == pytest.approx([0.01, 0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001])


def test_a_ppdet_module_mutating_its_defaults_does_not_leak_into_the_next_build(tmp_path: Path) -> None:
    """LCPAN appends to its default ``spatial_scales`` for ``num_features: 4`` (every PicoDet v2 file):
    the model rebuilt for export, or the next config in the process, must not see 5 or 4 scales."""
    from app.tasks.det.workspace import build_architecture, load_ppdet_config

    cfg = load_ppdet_config(upstream_tree(tmp_path))
    first, second = build_architecture(cfg), build_architecture(cfg)
    assert len(first.neck.spatial_scales) == len(second.neck.spatial_scales) == 4
    assert len(first.neck.in_channels) == len(second.neck.in_channels) == 3  # LCPAN adds the 4th itself
    shipped = build_architecture(load_ppdet_config(PICODET))
    assert len(shipped.neck.spatial_scales) == len(shipped.neck.in_channels) == 3


def test_upstream_ppyoloe_plus_tree_plans_and_trains(
    tmp_path: Path, shapes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PP-YOLOE+-s as release 2.6 writes it (architecture YOLOv3, sync_bn, 5 warmup epochs of a 96-epoch
    cosine stopped at 80), name-form data sets, only data paths and num_classes set."""
    paths = {
        "dataset_dir": shapes,
        "image_dir": "images",
        "train_anno": "train.json",
        "eval_anno": "eval.json",
    }
    config = ours(
        tmp_path,
        upstream_tree(tmp_path, "ppyoloe"),
        **paths,
        num_classes=3,
        overrides="{pretrain_weights: null}",
    )
    assert main(["plan", "--config", str(config)]) == 0  # batch 8 from the reader: 8 images -> 1 step/epoch
    out = capsys.readouterr().out
    assert "steps per epoch: 1 " in out and "schedule: 96 optimizer steps, warmup 5 steps" in out
    over = [
        "schedule.total_steps=2",
        "schedule.warmup.steps=1",
        "train.batch_size=2",
        "task.options.max_eval_images=1",
    ]
    rc, s = run_inprocess(over, config=str(config))
    assert rc == 0 and s.step == 2 and set(s.metrics) == {"bbox_map", "bbox_map50", "boxes"}
    assert (s.cfg.optim.name, s.cfg.optim.weight_decay) == ("momentum", 0.0005)
    assert s.cfg.train.data_workers == 4  # ppyoloe_plus_reader.yml's top-level worker_num
