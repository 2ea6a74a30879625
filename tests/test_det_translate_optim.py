"""ppdet's OptimizerBuilder / LearningRate keys: each one mapped, refused with one line, or warned about.

Fixtures use the keys and values of PaddleDetection release-2.6 files (``ppyoloe/_base_/optimizer_80e.yml``,
``picodet/_base_/optimizer_300e.yml``, ``dino/_base_/optimizer_1x.yml``) and the ``param_groups`` shape
ppdet's ``OptimizerBuilder.__call__`` reads (``{params: [name substrings], <optimizer settings>}``).
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from app.config import load_config
from app.errors import ConfigError
from app.tasks.det.translate import translate
from tests.det_upstream_tree import PPYOLOE
from tests.train_helpers import ROOT

#: release 2.6 ppyoloe/_base_/optimizer_80e.yml, as the upstream-tree tests write it
PPYOLOE_80E = textwrap.dedent(PPYOLOE["ppyoloe/_base_/optimizer_80e.yml"])

PICODET_300E = """\
epoch: 300

LearningRate:
  base_lr: 0.32
  schedulers:
  - name: CosineDecay
    max_epochs: 300
  - name: LinearWarmup
    start_factor: 0.1
    steps: 300

OptimizerBuilder:
  optimizer:
    momentum: 0.9
    type: Momentum
  regularizer:
    factor: 0.00004
    type: L2
"""

DINO_1X_OPTIMIZER = """\
OptimizerBuilder:
  clip_grad_by_norm: 0.1
  regularizer: false
  optimizer:
    type: AdamW
    weight_decay: 0.0001
"""


def _translate(tmp: Path, body: str, **ours: object) -> dict:
    path = tmp / "ppdet.yml"
    path.write_text(textwrap.dedent(body))
    return translate({"task": {"kind": "detection", "options": {"ppdet_config": str(path)}}, **ours})


@pytest.mark.parametrize(
    ("body", "optim"),
    [
        (PPYOLOE_80E, {"name": "momentum", "momentum": 0.9, "weight_decay": 0.0005}),
        (PICODET_300E, {"name": "momentum", "momentum": 0.9, "weight_decay": 0.00004}),
        (DINO_1X_OPTIMIZER, {"name": "adamw", "weight_decay": 0.0001, "grad_clip_norm": 0.1}),
    ],
)
def test_upstream_optimizer_blocks_translate(tmp_path: Path, body: str, optim: dict) -> None:
    assert _translate(tmp_path, body)["optim"] == optim


def test_param_groups_without_decay_become_no_decay_and_adam_betas_are_kept(tmp_path: Path) -> None:
    body = DINO_1X_OPTIMIZER + (
        "    beta1: 0.8\n    beta2: 0.99\n    epsilon: 1.0e-6\n"
        "    param_groups:\n"
        "      - params: ['pos_embed', 'norm', 'bias_[x]']\n"
        "        weight_decay: 0.\n"
    )
    optim = _translate(tmp_path, body)["optim"]
    assert optim["no_decay"] == ["*pos_embed*", "*norm*", "*bias_[[]x]*"]
    assert (optim["beta1"], optim["beta2"], optim["epsilon"]) == (0.8, 0.99, 1e-6)
    # our own optim.no_decay wins, as every key of our sections does
    assert _translate(tmp_path, body, optim={"no_decay": ["*bias*"]})["optim"]["no_decay"] == ["*bias*"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("    param_groups:\n      - params: ['backbone']\n        learning_rate: 0.1\n",
         "task.options.ppdet_config: OptimizerBuilder.optimizer.param_groups[0] sets learning_rate: 0.1; "
         "only groups that turn weight decay off (weight_decay: 0) are translated"),
        ("    param_groups:\n      - params: ['head']\n        weight_decay: 0.05\n",
         "task.options.ppdet_config: OptimizerBuilder.optimizer.param_groups[0] sets weight_decay: 0.05; "
         "only groups that turn weight decay off (weight_decay: 0) are translated"),
        ("    lazy_mode: true\n",
         "task.options.ppdet_config: OptimizerBuilder.optimizer.lazy_mode: True is not supported (only False)"),
        ("  clip_grad_by_value: 1.0\n",
         "task.options.ppdet_config: OptimizerBuilder.clip_grad_by_value: clipping each gradient element is "
         "not supported"),
        ("  clip_grad_by_nrom: 1.0\n",
         "task.options.ppdet_config: OptimizerBuilder: unknown key(s) clip_grad_by_nrom (ppdet's "
         "OptimizerBuilder takes clip_grad_by_norm, clip_grad_by_value, regularizer, optimizer)"),
    ],
)  # fmt: skip
def test_what_cannot_be_translated_is_refused_in_one_line(tmp_path: Path, extra: str, message: str) -> None:
    if extra.startswith("    "):
        body = DINO_1X_OPTIMIZER + extra
    else:
        body = DINO_1X_OPTIMIZER.replace("OptimizerBuilder:\n", "OptimizerBuilder:\n" + extra)
    with pytest.raises(ConfigError) as err:
        _translate(tmp_path, body)
    assert err.value.message == message


def test_nesterov_is_refused_and_precision_keys_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(ConfigError, match=r"optimizer.use_nesterov: True is not supported"):
        _translate(
            tmp_path,
            PPYOLOE_80E.replace("    type: Momentum\n", "    type: Momentum\n    use_nesterov: true\n"),
        )
    caplog.set_level(logging.WARNING)
    body = PPYOLOE_80E.replace(
        "    type: Momentum\n", "    type: Momentum\n    multi_precision: true\n    foo: 1\n"
    )
    assert _translate(tmp_path, body)["optim"]["momentum"] == 0.9
    assert (
        "task.options.ppdet_config: OptimizerBuilder.optimizer: keys not used by warmstart: multi_precision "
        "(precision follows train.amp); foo (not translated for Momentum)" in caplog.text
    )


def test_a_regularizer_next_to_adamw_is_ignored_as_ppdet_does_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    body = DINO_1X_OPTIMIZER.replace("regularizer: false", "regularizer: {type: L2, factor: 0.0005}")
    assert _translate(tmp_path, body)["optim"]["weight_decay"] == 0.0001
    assert (
        "OptimizerBuilder.regularizer {'type': 'L2', 'factor': 0.0005} is ignored with AdamW" in caplog.text
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("  base_lr: 0.001\n", "  base_lr: 0.001\n  warmup: 5\n",
         "task.options.ppdet_config: LearningRate: unknown key(s) warmup (it takes base_lr, schedulers)"),
        ("      max_epochs: 96\n", "      max_epochs: 96\n      min_lr: 0.0\n",
         "task.options.ppdet_config: LearningRate.schedulers[0] CosineDecay: unknown key(s) min_lr (it takes "
         "max_epochs, use_warmup, min_lr_ratio, last_plateau_epochs)"),
    ],
)  # fmt: skip
def test_learning_rate_keys_ppdet_would_reject_are_refused(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _translate(tmp_path, PPYOLOE_80E.replace(old, new))
    assert err.value.message == message


def test_translated_no_decay_reaches_the_validated_config(tmp_path: Path) -> None:
    body = DINO_1X_OPTIMIZER + "    param_groups:\n      - params: ['norm']\n        weight_decay: 0.\n"
    path = tmp_path / "ppdet.yml"
    path.write_text(body)
    cfg = load_config(ROOT / "configs/det_picodet_s.yaml", [f"task.options.ppdet_config={path}"], env={})
    # configs/det_picodet_s.yaml sets optim.name/momentum/weight_decay itself: those stay; no_decay is new
    assert (cfg.optim.name, cfg.optim.no_decay, cfg.optim.grad_clip_norm) == ("momentum", ["*norm*"], 0.1)


# -- reader sections --------------------------------------------------------------------------------------
def test_reader_keys_matching_what_we_do_are_quiet_others_are_named() -> None:
    from app.tasks.det.reader_keys import reader_key_warnings

    upstream = {"sample_transforms": [], "batch_transforms": [], "batch_size": 64, "shuffle": True,
                "drop_last": True, "use_shared_memory": True}  # fmt: skip
    assert reader_key_warnings("TrainReader", upstream) == []
    changed = {**upstream, "shuffle": False, "mixup_epoch": 250}
    assert reader_key_warnings("TrainReader", changed) == [
        "TrainReader.shuffle: False (warmstart behaves as True: training order is a seeded permutation per epoch)",
        "TrainReader.mixup_epoch (not used by warmstart)",
    ]
    assert reader_key_warnings("EvalReader", {"batch_size": 8, "drop_last": True}) == [
        "EvalReader.drop_last: True (warmstart behaves as False: evaluation uses every image)"
    ]


def test_loader_worker_keys_name_train_data_workers() -> None:
    """ppdet's top-level ``worker_num`` is translated to ``train.data_workers`` (tests/test_det_worker_num.py);
    one inside a reader, which ppdet does not read, is named; ``use_shared_memory`` says what does the job."""
    from app.tasks.det.keys import IGNORED, TRANSLATED
    from app.tasks.det.reader_keys import MECHANICS, MISPLACED

    assert TRANSLATED["worker_num"] == "train.data_workers" and "worker_num" not in IGNORED
    assert "worker_num" not in MECHANICS
    assert (
        MISPLACED["worker_num"]
        == "ppdet reads only the top-level worker_num, which becomes train.data_workers"
    )
    assert MECHANICS["use_shared_memory"] == "train.data_workers' processes choose their own transport"


def test_the_task_warns_about_reader_keys_it_does_not_honour(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from app.tasks.det.task import DetectionTask

    options = {
        "ppdet_config": str(ROOT / "configs/ppdet/picodet_s_lcnet.yml"), "dataset_dir": str(tmp_path / "d"),
        "synthetic": {"n_train": 4, "n_eval": 2, "size": 64},
        "overrides": {"TrainReader": {"shuffle": False}, "EvalReader": {"drop_last": False}},
    }  # fmt: skip
    caplog.set_level(logging.WARNING)
    DetectionTask(options, seed=0)
    lines = [r.getMessage() for r in caplog.records if "reader keys not used" in r.getMessage()]
    assert lines == [
        "task.options.ppdet_config: reader keys not used by warmstart: TrainReader.shuffle: False (warmstart "
        "behaves as True: training order is a seeded permutation per epoch)"
    ]


@pytest.mark.parametrize("key", ["LearningRate", "OptimizerBuilder"])
def test_a_translated_section_that_is_not_a_mapping_is_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _translate(tmp_path, f"{key}: 0.01\n")
    assert err.value.message == f"task.options.ppdet_config: {key} must be a mapping, got 0.01"
