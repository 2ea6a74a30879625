"""The detection task adapter: a ppdet config supplies the model, data sets, transforms, loss and the
COCO or VOC metric.

Options (``task.options``, :class:`DetectionOptions`): ``ppdet_config`` (a PaddleDetection YAML, with
``_BASE_`` includes, e.g. ``configs/ppdet/picodet_s_lcnet.yml`` or your own upstream file), dataset
path overrides, ``num_classes``, ``synthetic`` (write the synthetic shapes set first) and ``overrides``
(raw ppdet keys merged over the config). The loop, schedule and checkpoints are the shared ones.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from app.checkpoint.labels import LabelSpace
from app.config.typed import from_data
from app.errors import ConfigError
from app.tasks.det.data import Pipeline, to_tensors
from app.tasks.det.datasets import DatasetPaths, build_dataset, check_sections, load_records
from app.tasks.det.ema import Ema
from app.tasks.det.keys import report_keys
from app.tasks.det.options import DetectionOptions, SynthOptions
from app.tasks.det.reader_keys import report_reader_keys
from app.tasks.det.workspace import build_architecture, check_pickle_loads, load_ppdet_config

__all__ = ["SynthOptions", "DetectionOptions", "DetectionTask"]

log = logging.getLogger(__name__)


def _make_synthetic(opts: DetectionOptions) -> None:
    from app.tasks.det.synth import write_shapes

    root = Path(opts.dataset_dir or "data/shapes")
    if not (root / (opts.train_anno or "train.json")).is_file():
        s = opts.synthetic
        write_shapes(root, n_train=s.n_train, n_eval=s.n_eval, size=s.size, seed=s.seed)


def _check_user_config(merged: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Before ppdet reads the file: its data set sections, and a word on every top-level key."""
    check_sections(merged)
    report_keys({k: v for k, v in merged.items() if k not in overrides}, overrides)
    report_reader_keys(merged)


#: ppdet's ``metric`` values evaluated here, and the data set each needs.
METRICS = {"COCO": "COCODataSet", "VOC": "VOCDataSet"}


def _section(cfg: Any, name: str) -> dict[str, Any]:
    """A data set section as set in the config: its keys (tag form: the built object's attributes)."""
    value = cfg.get(name)
    if isinstance(value, dict):
        return dict(value)
    return {"name": type(value).__name__, **vars(value)} if value is not None else {}


def _check_metric(metric: str, eval_ds: Any, record: dict[str, Any]) -> None:
    """The metric's needs, as ppdet's VOCMetric / COCOMetric would find them missing mid-run."""
    where = "task.options.ppdet_config"
    if type(eval_ds).__name__ != METRICS[metric]:
        raise ConfigError(
            f"{where}: metric {metric} needs EvalDataset name: {METRICS[metric]}, got {type(eval_ds).__name__}",
            hint="set the top-level metric to match the data set (COCO or VOC)",
        )
    if metric != "VOC":
        return
    if not eval_ds.label_list:
        raise ConfigError(
            f"{where}: EvalDataset.label_list is required for VOC evaluation (one class a line)"
        )
    missing = [k for k in ("gt_bbox", "gt_class", "difficult") if k not in record]
    if missing:
        raise ConfigError(
            f"{where}: EvalDataset.data_fields {eval_ds.data_fields} lacks {', '.join(missing)}, which VOC "
            "evaluation needs",
            hint="data_fields: ['image', 'gt_bbox', 'gt_class', 'difficult']",
        )


#: Per architecture, the parameters with output channels per class (YOLOv3: per anchor x (box, object,
#: classes)), found by building each with two class counts (tests/test_label_space.py).
CLASS_LAYERS = {
    "PicoDet": ("head.head_cls*",),
    "PPYOLOE": ("yolo_head.pred_cls.*",),
    "YOLOv3": ("yolo_head.yolo_output.*",),
}


def _class_names(dataset: Any) -> tuple[str, ...]:
    """A parsed data set's class names in class-id order (COCO categories, VOC label_list)."""
    cname2cid = getattr(dataset, "cname2cid", None) or {}
    return tuple(str(name) for name in sorted(cname2cid, key=cname2cid.get))


def _categories(dataset: Any) -> int:
    """Classes a parsed ppdet data set defines (COCO categories, VOC label_list lines)."""
    return len(getattr(dataset, "catid2clsid", None) or getattr(dataset, "cname2cid", None) or {})


def _check_classes(num_classes: int, train_ds: Any, eval_ds: Any) -> int:
    """The data's class count; fewer head classes than that is an error, more is warned about."""
    n = max(_categories(train_ds), _categories(eval_ds))
    if num_classes < n:
        raise ConfigError(
            f"task.options.ppdet_config: num_classes is {num_classes} but the annotations define {n} classes",
            hint=f"set task.options.num_classes: {n} (upstream configs/datasets/*.yml say 80 for COCO, 20 for VOC)",
        )
    if num_classes > n:
        log.warning(
            "num_classes is %d but the annotations define %d classes: detections of classes %d..%d are not "
            "scored (set task.options.num_classes: %d unless the head is meant to be larger)",
            num_classes, n, n, num_classes - 1, n,
        )  # fmt: skip
    return n


def _known_classes(outputs: dict[str, Any], n: int) -> dict[str, Any]:
    """Outputs without detections of class ids >= n, which have no category to be scored against."""
    boxes, counts = outputs["bbox"].numpy(), outputs["bbox_num"].numpy()
    keep = boxes[:, 0] < n
    if keep.all():
        return outputs
    per_image = np.split(keep, np.cumsum(counts)[:-1])
    return {
        **outputs,
        "bbox": boxes[keep],
        "bbox_num": np.array([int(k.sum()) for k in per_image], counts.dtype),
    }


class DetectionTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        self.opts: DetectionOptions = from_data(DetectionOptions, options, "task.options")
        self.seed = seed
        if self.opts.synthetic is not None:
            _make_synthetic(self.opts)
        overrides = dict(self.opts.overrides)
        if self.opts.num_classes is not None:
            overrides["num_classes"] = self.opts.num_classes
        self.cfg = load_ppdet_config(self.opts.ppdet_config, overrides, check=_check_user_config)
        check_pickle_loads(self.cfg, allow_pickle)
        self.num_classes = int(self.cfg["num_classes"])
        self._load_data()
        self.train_pipe = Pipeline(self.cfg["TrainReader"], self.num_classes)
        self.eval_pipe = Pipeline(self.cfg["EvalReader"], self.num_classes)
        self.eval_batch = int(self.cfg["EvalReader"].get("batch_size", 8))
        self.ema: Ema | None = None
        self.batches_seen = 0
        kind = "voc" if self.metric == "VOC" else "coco"
        self.data_source = f"{kind} {self.eval_anno.rsplit('/', 1)[0]} ({self.cfg['architecture']})"

    def _load_data(self) -> None:
        """Build and parse the data sets as ppdet does; the metric's needs checked up front."""
        o = self.opts
        self.metric = str(self.cfg.get("metric") or "COCO")
        self.cfg["metric"] = self.metric  # ppdet's exporter reads it
        if self.metric not in METRICS:
            raise ConfigError(
                f"task.options.ppdet_config: metric {self.metric!r} is not supported (supported: COCO, VOC)"
            )
        train_ds = build_dataset("TrainDataset", DatasetPaths(o.dataset_dir, o.image_dir, o.train_anno))
        self.eval_ds = build_dataset("EvalDataset", DatasetPaths(o.dataset_dir, o.image_dir, o.eval_anno))
        self.test_ds = build_dataset("TestDataset") if "name" in _section(self.cfg, "TestDataset") else None
        self.train_records, _ = load_records(train_ds, "TrainDataset", "training")
        self.eval_records, self.eval_anno = load_records(self.eval_ds, "EvalDataset", "evaluation")
        _check_metric(self.metric, self.eval_ds, self.eval_records[0])
        self.n_categories = _check_classes(self.num_classes, train_ds, self.eval_ds)
        self.class_names = _class_names(train_ds) or _class_names(self.eval_ds)
        if o.max_eval_images:
            self.eval_records = self.eval_records[: o.max_eval_images]

    def label_space(self) -> LabelSpace | None:
        """The class names in class-id order; the class-score layers of the known architectures."""
        if not self.class_names:
            return None
        layers = CLASS_LAYERS.get(str(self.cfg["architecture"]), ())
        return LabelSpace("classes", self.class_names, layers)

    def build_model(self) -> paddle.nn.Layer:
        model = build_architecture(self.cfg)
        self.ema = Ema(model, self.cfg) if self.cfg.get("use_ema", False) else None
        return model

    def train_size(self) -> int:
        return len(self.train_records)

    def _epoch(self, batch: int) -> int:
        from app.train.dist import world_from_env

        per_epoch = max(1, self.train_size() // (batch * world_from_env().world))  # DataStream's count
        return self.batches_seen // per_epoch

    def train_arrays(self, indices: list[int], epoch: int) -> dict[str, Any]:
        records = [self.train_records[i] for i in indices]
        return self.train_pipe.seeded(records, indices, self.seed, epoch)

    def to_batch(self, arrays: dict[str, Any]) -> dict[str, Any]:
        """In the trainer: tensors, and the ``epoch_id`` heads switch assigners by (counted here, where
        batches are consumed, so prefetched batches do not count)."""
        batch = to_tensors(arrays)
        batch["epoch_id"] = self._epoch(len(arrays["image"]))
        self.batches_seen += 1
        return batch

    def loss(self, model: paddle.nn.Layer, batch: dict[str, Any]) -> paddle.Tensor:
        return model(batch)["loss"]

    def after_step(self, model: paddle.nn.Layer, step: int) -> None:
        if self.ema is not None:
            self.ema.update(model)

    def extra_tensors(self) -> dict[str, dict[str, np.ndarray]]:
        groups = {"det_state": {"batches_seen": np.array(self.batches_seen, dtype=np.int64)}}
        if self.ema is not None:
            groups["ema"] = self.ema.arrays()
        return groups

    def load_extra_tensors(self, groups: dict[str, dict[str, np.ndarray]], source: str) -> None:
        from app.errors import CheckpointError

        if "det_state" not in groups:
            raise CheckpointError(f"{source} has no det_state tensors (not a detection checkpoint?)")
        self.batches_seen = int(groups["det_state"]["batches_seen"])
        if self.ema is not None:
            if "ema" not in groups:
                raise CheckpointError(f"{source} has no EMA tensors but the config uses EMA (use_ema)")
            self.ema.load(groups["ema"], source)

    @contextlib.contextmanager
    def eval_weights(self, model: paddle.nn.Layer):
        """Swap the EMA weights in (as ppdet evaluates and exports), then put the trained ones back."""
        if self.ema is None or self.ema.ema.step == 0:
            yield model
            return
        saved = {k: v.numpy() for k, v in model.state_dict().items()}
        model.set_state_dict(self.ema.weights())
        try:
            yield model
        finally:
            model.set_state_dict(saved)

    @paddle.no_grad()
    def predict(self, model: paddle.nn.Layer, records: list[dict]) -> list[tuple[dict, dict]]:
        out = []
        for i in range(0, len(records), self.eval_batch):
            batch = self.eval_pipe(records[i : i + self.eval_batch])
            out.append((batch, model(to_tensors(batch))))
        return out

    def evaluate(self, model: paddle.nn.Layer) -> dict[str, float]:
        """COCO: ``bbox_map`` (mAP@0.5:0.95), ``bbox_map50``; VOC: ``bbox_map50`` (ppdet's VOCMetric,
        ``map_type``); both report ``boxes`` (detections kept)."""
        with self.eval_weights(model), tempfile.TemporaryDirectory() as tmp:
            metric = self._metric(tmp)
            n_boxes = 0
            for batch, outputs in self.predict(model, self.eval_records):
                outputs = _known_classes(outputs, self.n_categories)
                n_boxes += int(outputs["bbox_num"].sum())
                metric.update(batch, outputs)
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
                metric.accumulate()
            stats = metric.get_results().get("bbox")
        if self.metric == "VOC":
            return {"bbox_map50": float(stats[0]) if n_boxes else 0.0, "boxes": float(n_boxes)}
        if stats is None or n_boxes == 0:
            return {"bbox_map": 0.0, "bbox_map50": 0.0, "boxes": float(n_boxes)}
        return {"bbox_map": float(stats[0]), "bbox_map50": float(stats[1]), "boxes": float(n_boxes)}

    def _metric(self, tmp: str) -> Any:
        from ppdet.metrics import COCOMetric, VOCMetric

        if self.metric == "VOC":
            return VOCMetric(
                label_list=self.eval_ds.get_label_list(),
                class_num=self.num_classes,
                map_type=self.cfg.get("map_type", "11point"),
            )
        return COCOMetric(anno_file=self.eval_anno, output_eval=tmp, classwise=False)

    def export(self, model: paddle.nn.Layer, out_dir: Path) -> list[Path]:
        from app.tasks.det.export import export_inference

        with self.eval_weights(model):
            return export_inference(model, self.cfg, out_dir, self.labels_dataset())

    def labels_dataset(self) -> Any:
        """The TestDataset ppdet's exporter reads the label list from, pointed at the labels trained on:
        the evaluation json (COCO) or the label_list file (VOC)."""
        from ppdet.data.source import ImageFolder

        test = self.test_ds if self.test_ds is not None else ImageFolder()
        test.dataset_dir = self.eval_ds.dataset_dir
        test.anno_path = self.eval_ds.label_list if self.metric == "VOC" else self.eval_ds.anno_path
        return test
