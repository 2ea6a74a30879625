"""A user's upstream PaddleDetection config: LearningRate/OptimizerBuilder translation, checked as tables.

Every LR table is compared with ppdet's own ``LearningRate`` object built by ppdet from the same
multi-file ``_BASE_`` config, step by step over the run ppdet would do.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)
from app.cli import main
from app.config import load_config
from app.errors import ConfigError
from app.schedule import build_schedule

N_IMAGES, BATCH = 40, 4  # -> 10 optimizer steps per epoch


def _coco(path: Path, n: int) -> None:
    images = [{"id": i, "file_name": f"{i}.png", "width": 64, "height": 64} for i in range(1, n + 1)]
    anns = [{"id": i, "image_id": i, "category_id": 1, "bbox": [4, 4, 20, 20], "area": 400, "iscrowd": 0}
            for i in range(1, n + 1)]  # fmt: skip
    path.write_text(json.dumps({"info": {}, "images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "a"}]}))  # fmt: skip


def upstream(tmp: Path, lr_block: str, epoch: int, extra: str = "") -> Path:
    """An upstream-style config: main file + _base_/optimizer.yml + _base_/dataset.yml; returns ours."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    _coco(tmp / "data" / "train.json", N_IMAGES)
    base = tmp / "ppdet" / "_base_"
    base.mkdir(parents=True, exist_ok=True)
    (base / "optimizer.yml").write_text(
        f"epoch: 1000\n{textwrap.dedent(lr_block)}\n"
        "OptimizerBuilder:\n  optimizer: {momentum: 0.9, type: Momentum}\n"
        "  regularizer: {factor: 0.0005, type: L2}\n  clip_grad_by_norm: 35.0\n"
    )
    (base / "dataset.yml").write_text(
        f"metric: COCO\nnum_classes: 1\nTrainDataset:\n  !COCODataSet\n    image_dir: .\n"
        f"    anno_path: train.json\n    dataset_dir: {tmp / 'data'}\n"
        f"TrainReader:\n  batch_size: {BATCH}\n"
    )
    (tmp / "ppdet" / "main.yml").write_text(
        f"_BASE_: ['_base_/dataset.yml', '_base_/optimizer.yml']\nepoch: {epoch}\narchitecture: PicoDet\n{extra}"
    )
    ours = tmp / "ours.yaml"
    ours.write_text(f"task: {{kind: detection, options: {{ppdet_config: {tmp / 'ppdet' / 'main.yml'}}}}}\n")
    return ours


def ppdet_table(main_yml: Path, spe: int, steps: int) -> list[float]:
    import ppdet.core.workspace as ws

    from app.tasks.det.workspace import load_ppdet_config

    load_ppdet_config(main_yml)
    sched = ws.create("LearningRate")(spe)
    out = []
    for _ in range(steps):
        out.append(float(sched()))
        sched.step()
    return out


CASES = {
    "cosine+linear_warmup": (
        """
        LearningRate:
          base_lr: 0.04
          schedulers:
          - !CosineDecay {max_epochs: 6}
          - !LinearWarmup {start_factor: 0.1, steps: 5}
        """,
        6,
    ),
    "cosine_min_ratio_plateau+warmup_epochs": (
        """
        LearningRate:
          base_lr: 0.01
          schedulers:
          - !CosineDecay {max_epochs: 8, min_lr_ratio: 0.05, last_plateau_epochs: 2}
          - !LinearWarmup {start_factor: 0.0, epochs: 1}
        """,
        8,
    ),
    "piecewise_scalar_gamma+linear_warmup": (
        """
        LearningRate:
          base_lr: 0.001
          schedulers:
          - !PiecewiseDecay {gamma: 0.1, milestones: [3, 5]}
          - !LinearWarmup {start_factor: 0.0, steps: 4}
        """,
        6,
    ),
    "piecewise_gamma_list+exp_warmup": (
        """
        LearningRate:
          base_lr: 0.002
          schedulers:
          - name: PiecewiseDecay
            gamma: [0.5, 0.1]
            milestones: [2, 4]
          - name: ExpWarmup
            steps: 7
            power: 2
        """,
        5,
    ),
    "cosine_no_warmup": (
        """
        LearningRate:
          base_lr: 0.02
          schedulers:
          - !CosineDecay {max_epochs: 4, use_warmup: false}
        """,
        4,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_lr_table_equals_ppdet_learning_rate(tmp_path: Path, case: str) -> None:
    block, epoch = CASES[case]
    ours = upstream(tmp_path, block, epoch)
    cfg = load_config(ours, env={})
    spe = N_IMAGES // BATCH
    built = build_schedule(
        cfg.schedule, steps_per_epoch=spe, global_batch=BATCH, optimizer_name=cfg.optim.name
    )
    run = epoch * spe
    assert built.total_steps >= run
    theirs = ppdet_table(tmp_path / "ppdet" / "main.yml", spe, run)
    np.testing.assert_allclose(
        built.lr_table()[:run], theirs, rtol=1e-12 if "no_warmup" not in case else 1e-9
    )


def test_translated_values_and_optimizer(tmp_path: Path) -> None:
    ours = upstream(tmp_path, CASES["cosine+linear_warmup"][0], 6)
    cfg = load_config(ours, env={})
    s = cfg.schedule
    assert (s.base_lr, s.epochs, s.warmup.kind, s.warmup.steps) == (0.04, 6, "linear", 5)
    assert s.warmup.start_lr == pytest.approx(0.004) and (s.decay.kind, s.decay.min_lr) == ("cosine", 0.0)
    o = cfg.optim
    assert (o.name, o.momentum, o.weight_decay, o.grad_clip_norm) == ("momentum", 0.9, 0.0005, 35.0)
    assert (cfg.train.batch_size, cfg.train.metric, cfg.train.metric_mode) == (BATCH, "bbox_map", "max")
    table = build_schedule(s, steps_per_epoch=10, global_batch=BATCH, optimizer_name="momentum").lr_table()
    assert table[:6] == pytest.approx([0.004, 0.0112, 0.0184, 0.0256, 0.0328, 0.04], rel=1e-12)


def test_user_keys_win_over_translated_ones(tmp_path: Path) -> None:
    ours = upstream(tmp_path, CASES["piecewise_scalar_gamma+linear_warmup"][0], 6)
    sets = ["schedule.total_steps=30", "schedule.base_lr=0.5", "optim.name=adamw", "train.batch_size=2"]
    cfg = load_config(ours, sets, env={})
    assert (cfg.schedule.total_steps, cfg.schedule.epochs, cfg.schedule.base_lr) == (30, None, 0.5)
    assert (cfg.optim.name, cfg.train.batch_size) == ("adamw", 2)
    # steps per epoch follow the batch actually used: 40 images / 2 = 20 -> milestones 3, 5 epochs
    assert cfg.schedule.decay.boundaries == [60 - 4, 100 - 4]


def test_plan_prints_the_translated_schedule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = upstream(tmp_path, CASES["piecewise_scalar_gamma+linear_warmup"][0], 6)
    assert main(["plan", "--config", str(ours), "--steps-per-epoch", "10", "--json"]) == 0
    lrs = json.loads(capsys.readouterr().out)["lr"]
    expected = [0.0, 0.00025, 0.0005, 0.00075] + [0.001] * 26 + [0.0001] * 20 + [0.00001] * 10
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_unsupported_scheduler_is_a_config_error(tmp_path: Path) -> None:
    block = "LearningRate:\n  base_lr: 0.01\n  schedulers:\n  - !CyclicLRDecay {cycle: 3}\n"
    with pytest.raises(ConfigError, match=r"schedulers\[0\] 'CyclicLRDecay' is not translated"):
        load_config(upstream(tmp_path, block, 3), env={})


def test_faster_rcnn_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ours = upstream(tmp_path, CASES["cosine+linear_warmup"][0], 6)
    main_yml = tmp_path / "ppdet" / "main.yml"
    main_yml.write_text(main_yml.read_text().replace("architecture: PicoDet", "architecture: FasterRCNN"))
    rc = main(["train", "--config", str(ours), "--set", f"run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("warmstart: config: task.options.ppdet_config")
    assert (
        "architecture FasterRCNN is not supported" in err[-1] and "use PicoDet, PPYOLOE or YOLOv3" in err[-1]
    )


@pytest.mark.parametrize("case", ["piecewise_scalar_gamma+linear_warmup", "piecewise_gamma_list+exp_warmup"])
def test_ppdets_own_warmup_from_zero_is_not_linted(tmp_path: Path, case: str) -> None:
    """ppdet's LinearWarmup start_factor 0 / ExpWarmup start at LR 0 by the toolkit's design: the start_lr
    lint (meant for hand-written configs) stays quiet for them, also with an adaptive optimizer."""
    cfg = load_config(upstream(tmp_path, CASES[case][0], CASES[case][1]), env={})
    assert cfg.schedule.warmup.start_lr == 0.0
    built = build_schedule(cfg.schedule, steps_per_epoch=10, global_batch=BATCH, optimizer_name="adamw")
    assert [w for w in built.warnings if "start_lr is 0" in w] == []
    hand = dataclasses.replace(cfg.schedule.warmup, start_lr_lint=True)  # what a hand-written section gets
    built = build_schedule(
        dataclasses.replace(cfg.schedule, warmup=hand), steps_per_epoch=10, global_batch=BATCH,
        optimizer_name="adamw",
    )  # fmt: skip
    assert len([w for w in built.warnings if "start_lr is 0" in w]) == 1
