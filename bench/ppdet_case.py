"""A tiny detection case run through PaddleDetection's own ``Trainer``: the data, the ppdet config and the
Warmstart config that point at the same files, and a runner that records ppdet's per-step LR and loss.

Used by ``bench/det_side_by_side.py`` and the tests that compare with ppdet (``tests/test_det_side_by_side.py``,
``tests/test_det_ppdet_import.py``). Augmentation is off: only Decode / Resize / NormalizeImage / Permute (and
``PadGT``, which PicoDet's head needs), no shuffle, and one batch holds the whole training set, so our
seeded order and ppdet's sequential order feed the same images to every step.
"""

from __future__ import annotations

import logging
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import app  # noqa: F401  (zlib before paddle)

__all__ = [
    "assert_same_lr",
    "Case",
    "write_case",
    "run_ppdet",
    "run_ours",
    "ppdet_lr_table",
    "PPDET_MODEL",
    "COCO_DATASETS",
]

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
#: The shipped 96 px PicoDet-S (LCNet x0.75, LCPAN, PicoHeadV2, use_ema) in ppdet's own format.
PPDET_MODEL = ROOT / "configs/ppdet/picodet_s_lcnet.yml"

#: ppdet's dataset sections for the generated COCO set at ``{data}`` (a format string's part).
COCO_DATASETS = """\
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

_PPDET_TEMPLATE = (
    """\
_BASE_: ['{model}']
metric: COCO
num_classes: 3
use_gpu: false
log_iter: 1
save_dir: {save_dir}
snapshot_epoch: {snapshot_epoch}
print_flops: false
worker_num: 0
epoch: {epoch}

"""
    + COCO_DATASETS
    + """
LearningRate:
  base_lr: {base_lr}
  schedulers:
  - !CosineDecay {{max_epochs: {max_epochs}, min_lr_ratio: 0.1}}
  - !LinearWarmup {{start_factor: 0.1, steps: {warmup}}}

OptimizerBuilder:
{optimizer}

TrainReader:
  sample_transforms:
  - Decode: {{}}
  - Resize: {{interp: 2, target_size: [96, 96], keep_ratio: False}}
  - NormalizeImage: {{is_scale: true, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}
  - Permute: {{}}
  batch_transforms:
  - PadGT: {{}}
  batch_size: {batch}
  shuffle: false
  drop_last: true
"""
)


#: ppdet ``OptimizerBuilder`` bodies: Momentum with L2 (PicoDet's upstream choice) and AdamW.
OPTIMIZERS = {
    "momentum": "  optimizer: {momentum: 0.9, type: Momentum}\n  regularizer: {factor: 0.0005, type: L2}",
    "adamw": "  optimizer: {type: AdamW, weight_decay: 0.05}\n  regularizer: None",
}


@dataclass
class Case:
    root: Path
    data: Path
    ppdet_yml: Path
    ours_yaml: Path
    save_dir: Path
    batch: int
    steps_per_epoch: int
    max_epochs: int


def write_case(
    root: Path,
    *,
    n_train: int = 4,
    batch: int = 4,
    epoch: int = 4,
    max_epochs: int = 8,
    warmup: int = 3,
    base_lr: float = 0.02,
    snapshot_epoch: int = 1000,
    seed: int = 3,
    optimizer: str = "momentum",
) -> Case:
    """Write the images, the ppdet config (``ppdet.yml``) and ours (``warmstart.yaml``) under ``root``;
    ``optimizer`` names an ``OPTIMIZERS`` block."""
    from app.tasks.det.synth import write_shapes

    root = Path(root)
    data = write_shapes(root / "data", n_train=n_train, n_eval=2, size=96, seed=seed)
    save_dir = root / "ppdet_output"
    ppdet_yml = root / "ppdet.yml"
    ppdet_yml.write_text(
        _PPDET_TEMPLATE.format(
            model=PPDET_MODEL, save_dir=save_dir, snapshot_epoch=snapshot_epoch, epoch=epoch, data=data,
            base_lr=base_lr, max_epochs=max_epochs, warmup=warmup, batch=batch, optimizer=OPTIMIZERS[optimizer],
        )
    )  # fmt: skip
    ours = root / "warmstart.yaml"
    ours.write_text(
        textwrap.dedent(
            f"""\
            run: {{name: side-by-side, dir: {root / "run"}, seed: 0}}
            task:
              kind: detection
              options: {{ppdet_config: {ppdet_yml}, dataset_dir: {data}}}
            train: {{log_every_steps: 1, progress_bar: "off", amp: "off"}}
            checkpoint: {{uri: {root / "ckpt"}}}
            """
        )
    )
    return Case(root, data, ppdet_yml, ours, save_dir, batch, n_train // batch, max_epochs)


@dataclass
class PpdetRun:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    initial: dict[str, Any] = field(default_factory=dict)
    #: Paddle's generated parameter name -> structured name, in ppdet's process.
    names: dict[str, str] = field(default_factory=dict)


def _recorder(run: PpdetRun) -> Any:
    """A ppdet callback recording the LR and loss ppdet's own loop used at each step."""
    from ppdet.engine.callbacks import Callback

    class Recorder(Callback):
        def on_step_end(self, status: dict) -> None:
            if status.get("mode") == "train":
                run.lrs.append(float(status["learning_rate"]))
                run.losses.append(float(status["training_staus"].meters["loss"].deque[-1]))

    return Recorder(None)


def run_ppdet(
    case: Case,
    *,
    epochs: int | None = None,
    resume: Path | None = None,
    initial: dict | None = None,
    save_dir: Path | None = None,
) -> PpdetRun:
    """Train with ``ppdet.engine.Trainer`` as ``tools/train.py`` does (fresh parameter names, CPU), for
    the config's ``epoch`` or ``epochs``, after ``trainer.resume_weights(resume)`` when given, or from the
    weights ``initial`` (``model.set_state_dict``) when given.

    Returns the per-step LR and loss, the model's initial weights (numpy, by structured name) and its
    parameter names."""
    import paddle
    from ppdet.engine import Trainer

    from app.tasks.det.workspace import load_ppdet_config

    overrides: dict[str, Any] = {"epoch": epochs} if epochs else {}
    if save_dir is not None:  # e.g. a resumed run, which would replace the model_final it resumed from
        overrides["save_dir"] = str(save_dir)
    cfg = load_ppdet_config(case.ppdet_yml, overrides or None)
    paddle.set_device("cpu")
    run = PpdetRun()
    with paddle.utils.unique_name.guard():  # parameter names as in a fresh `tools/train.py` process
        trainer = Trainer(cfg, mode="train")
        run.initial = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
        run.names = {p.name: n for n, p in trainer.model.named_parameters()}
        if resume is not None:
            trainer.resume_weights(str(resume))
        if initial is not None:
            trainer.model.set_state_dict({k: paddle.to_tensor(v) for k, v in initial.items()})
        trainer.register_callbacks([_recorder(run)])
        trainer.train(validate=False)
    return run


def ppdet_lr_table(case: Case, steps: int) -> list[float]:
    """ppdet's ``LearningRate`` built by ppdet from the case's config: the LR of steps 0 .. steps-1."""
    import ppdet.core.workspace as ws

    from app.tasks.det.workspace import load_ppdet_config

    load_ppdet_config(case.ppdet_yml)
    sched = ws.create("LearningRate")(case.steps_per_epoch)
    out = []
    for _ in range(steps):
        out.append(float(sched()))
        sched.step()
    return out


@dataclass
class OursRun:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def run_ours(case: Case, initial: dict[str, Any], steps: int, overrides: list[str] = ()) -> OursRun:
    """Train ``steps`` optimizer steps with Warmstart's own session and step function, starting from
    ``initial`` (written as safetensors and loaded by ``init.from``, mode ``weights``: every tensor)."""
    import numpy as np

    from app.checkpoint.tensorio import write_tensors
    from app.config import load_config
    from app.train.loop import train_step
    from app.train.preempt import StopRequest
    from app.train.start import prepare

    init = case.root / "initial.safetensors"
    write_tensors({k: np.array(v, copy=True) for k, v in initial.items()}, init, str(init))
    cfg = load_config(case.ours_yaml, [f"init.from={init}", *overrides], env={})
    s = prepare(cfg, StopRequest())
    out = OursRun()
    try:
        s.model.train()
        for _ in range(steps):
            out.lrs.append(float(s.lr.get_lr()))
            out.losses.append(float(train_step(s)))
    finally:
        s.mgr.close()
        s.runlog.close()
    return out


def assert_same_lr(ours: list[float], theirs: list[float]) -> None:
    """The LR the optimizer applies (float32) is the same; the float64 values agree to 1e-12 (ppdet's
    warmup is computed as ``base * (f * (1 - a) + a)``, ours as ``start + (base - start) * a``)."""
    import numpy as np

    assert len(ours) == len(theirs)
    assert np.array_equal(np.float32(ours), np.float32(theirs)), (ours, theirs)
    assert np.allclose(ours, theirs, rtol=1e-12, atol=0), (ours, theirs)
