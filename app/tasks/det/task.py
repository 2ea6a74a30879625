"""The detection task adapter: a ppdet config supplies the model, transforms, loss and COCO metric.

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

from app.config.typed import from_data
from app.tasks.det.data import DatasetPaths, Pipeline, load_records, to_tensors
from app.tasks.det.ema import Ema
from app.tasks.det.options import DetectionOptions, SynthOptions
from app.tasks.det.workspace import build_architecture, check_pickle_loads, load_ppdet_config

__all__ = ["SynthOptions", "DetectionOptions", "DetectionTask"]

log = logging.getLogger(__name__)


def _make_synthetic(opts: DetectionOptions) -> None:
    from app.tasks.det.synth import write_shapes

    root = Path(opts.dataset_dir or "data/shapes")
    if not (root / (opts.train_anno or "train.json")).is_file():
        s = opts.synthetic
        write_shapes(root, n_train=s.n_train, n_eval=s.n_eval, size=s.size, seed=s.seed)


class DetectionTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        self.opts: DetectionOptions = from_data(DetectionOptions, options, "task.options")
        if self.opts.synthetic is not None:
            _make_synthetic(self.opts)
        overrides = dict(self.opts.overrides)
        if self.opts.num_classes is not None:
            overrides["num_classes"] = self.opts.num_classes
        self.cfg = load_ppdet_config(self.opts.ppdet_config, overrides)
        check_pickle_loads(self.cfg, allow_pickle)
        self.num_classes = int(self.cfg["num_classes"])
        o = self.opts
        self.train_records, _ = load_records(
            self.cfg["TrainDataset"], DatasetPaths(o.dataset_dir, o.image_dir, o.train_anno), "training"
        )
        self.eval_records, self.eval_anno = load_records(
            self.cfg["EvalDataset"], DatasetPaths(o.dataset_dir, o.image_dir, o.eval_anno), "evaluation"
        )
        if o.max_eval_images:
            self.eval_records = self.eval_records[: o.max_eval_images]
        self.train_pipe = Pipeline(self.cfg["TrainReader"], self.num_classes)
        self.eval_pipe = Pipeline(self.cfg["EvalReader"], self.num_classes)
        self.eval_batch = int(self.cfg["EvalReader"].get("batch_size", 8))
        self.ema: Ema | None = None
        self.batches_seen = 0
        self.data_source = f"coco {self.eval_anno.rsplit('/', 1)[0]} ({self.cfg['architecture']})"

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

    def train_samples(self, indices: list[int]) -> dict[str, Any]:
        batch = to_tensors(self.train_pipe([self.train_records[i] for i in indices]))
        batch["epoch_id"] = self._epoch(len(indices))  # heads switch assigners by epoch
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
        from ppdet.metrics import COCOMetric

        with self.eval_weights(model), tempfile.TemporaryDirectory() as tmp:
            metric = COCOMetric(anno_file=self.eval_anno, output_eval=tmp, classwise=False)
            n_boxes = 0
            for batch, outputs in self.predict(model, self.eval_records):
                n_boxes += int(outputs["bbox_num"].sum())
                metric.update(batch, outputs)
            with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its tables
                metric.accumulate()
            stats = metric.get_results().get("bbox")
        if stats is None or n_boxes == 0:
            return {"bbox_map": 0.0, "bbox_map50": 0.0, "boxes": float(n_boxes)}
        return {"bbox_map": float(stats[0]), "bbox_map50": float(stats[1]), "boxes": float(n_boxes)}

    def export(self, model: paddle.nn.Layer, out_dir: Path) -> list[Path]:
        from app.tasks.det.export import export_inference

        with self.eval_weights(model):
            return export_inference(model, self.cfg, out_dir)
