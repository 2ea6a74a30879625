"""Export a trained detector as a Paddle inference model, the way ppdet's exporter lays it out.

``model.pdmodel`` / ``model.pdiparams`` take ``image [N, 3, H, W]``, ``im_shape`` and ``scale_factor``
(``[N, 2]``) and return the post-processed boxes ``[M, 6]`` (class, score, x1, y1, x2, y2) and
``bbox_num [N]``; ``infer_cfg.yml`` is ppdet's deploy description (pre-processing, labels) written by
``ppdet.engine.export_utils``. A fresh copy of the model is traced, so the caller's model stays dynamic.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import paddle

from app.tasks.det.workspace import build_architecture

__all__ = ["export_inference", "export_size"]

log = logging.getLogger(__name__)


def export_size(cfg: Any) -> tuple[int, int]:
    """(H, W) of the exported input: TestReader.inputs_def.image_shape, else eval_size, else 640."""
    shape = (cfg.get("TestReader") or {}).get("inputs_def", {}).get("image_shape")
    if shape and len(shape) >= 2 and shape[-1] > 0:
        return int(shape[-2]), int(shape[-1])
    size = cfg.get("eval_size")
    return (int(size[0]), int(size[1])) if size else (640, 640)


def export_inference(model: paddle.nn.Layer, cfg: Any, out_dir: Path, labels: Any) -> list[Path]:
    """Trace and save ``model``; ``labels`` is the built TestDataset ppdet's exporter reads the label list
    from (its ``get_anno()``: a COCO json or a VOC label_list file)."""
    from ppdet.engine.export_utils import TRT_MIN_SUBGRAPH, _dump_infer_config, _prune_input_spec

    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = export_size(cfg)
    with paddle.utils.unique_name.guard():
        traced = build_architecture(cfg)
    traced.set_state_dict(model.state_dict())
    traced.eval()
    for flag in ("export_post_process", "export_nms"):
        if hasattr(traced, flag):
            setattr(traced, flag, True)
    spec = [{
        "image": paddle.static.InputSpec([None, 3, h, w], "float32", "image"),
        "im_shape": paddle.static.InputSpec([None, 2], "float32", "im_shape"),
        "scale_factor": paddle.static.InputSpec([None, 2], "float32", "scale_factor"),
    }]  # fmt: skip
    static = paddle.jit.to_static(traced, input_spec=spec, full_graph=True)
    pruned = _prune_input_spec(spec, static.forward.main_program, static.forward.outputs)
    paddle.jit.save(static, str(out_dir / "model"), input_spec=pruned)
    written = [out_dir / "model.pdmodel", out_dir / "model.pdiparams"]
    if any(arch in cfg["architecture"] for arch in TRT_MIN_SUBGRAPH):  # ppdet exits the process otherwise
        saved = cfg.get("TestDataset")
        cfg["TestDataset"] = labels  # as ppdet's Trainer does: the built data set replaces the section
        try:
            _dump_infer_config(cfg, str(out_dir / "infer_cfg.yml"), [3, h, w], traced)
        finally:
            cfg["TestDataset"] = saved
        written.append(out_dir / "infer_cfg.yml")
    log.info("exported %s (%dx%d input) to %s", cfg["architecture"], h, w, out_dir)
    return written
