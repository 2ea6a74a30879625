"""PaddleOCR's Architecture / Loss / PostProcess / Metric blocks and Global.character_dict_path.

``UPSTREAM`` is written here from the key names and values of PaddleOCR release 2.8's
``configs/rec/PP-OCRv4/ch_PP-OCRv4_rec.yml`` (its Global, Optimizer and model blocks; the data sections
are described in task.options instead).
"""

from __future__ import annotations

import copy
import logging

import pytest
import yaml

from app.config import load_config
from app.config.typed import to_data
from app.errors import ConfigError
from app.tasks.ocr.translate import translate

UPSTREAM = yaml.safe_load(
    """
Global:
  use_gpu: true
  epoch_num: 200
  print_batch_step: 10
  save_model_dir: ./output/rec_ppocr_v4
  eval_batch_step: [0, 2000]
  character_dict_path: ppocr/utils/ppocr_keys_v1.txt
  max_text_length: 25
  use_space_char: true
Optimizer:
  name: Adam
  beta1: 0.9
  beta2: 0.999
  lr: {name: Cosine, learning_rate: 0.001, warmup_epoch: 5}
  regularizer: {name: L2, factor: 3.0e-05}
Architecture:
  model_type: rec
  algorithm: SVTR_LCNet
  Transform:
  Backbone: {name: PPLCNetV3, scale: 0.95}
  Head:
    name: MultiHead
    head_list:
      - CTCHead:
          Neck: {name: svtr, dims: 120, depth: 2, hidden_dims: 120, kernel_size: [1, 3], use_guide: true}
          Head: {fc_decay: 0.00001}
      - NRTRHead: {nrtr_dim: 384, max_text_length: 25}
Loss:
  name: MultiLoss
  loss_config_list:
    - CTCLoss:
    - NRTRLoss:
PostProcess:
  name: CTCLabelDecode
Metric:
  name: RecMetric
  main_indicator: acc
"""
)
TASK = {"kind": "ocr_rec", "options": {"data_dir": "data/ocr"}}

CRNN = {
    "Architecture": {
        "model_type": "rec",
        "algorithm": "CRNN",
        "Transform": None,
        "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large"},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 96},
        "Head": {"name": "CTCHead", "fc_decay": 0},
    },
    "Loss": {"name": "CTCLoss"},
    "PostProcess": {"name": "CTCLabelDecode"},
    "Metric": {"name": "RecMetric", "main_indicator": "acc"},
}


def test_pp_ocrv4_blocks_translate_to_svtr_lcnet() -> None:
    out = translate({"task": copy.deepcopy(TASK), **copy.deepcopy(UPSTREAM)})
    model = out["task"]["options"]["model"]
    assert model == {
        "algorithm": "svtr_lcnet",
        "svtr_lcnet": {
            "backbone_scale": 0.95,
            "neck_dims": 120,
            "neck_depth": 2,
            "neck_hidden_dims": 120,
            "neck_kernel_size": [1, 3],
            "use_guide": True,
            "ctc_fc_decay": 1e-05,
            "nrtr_dim": 384,
            "nrtr_max_text_length": 25,
            "nrtr_num_decoder_layers": 4,
        },
    }
    assert out["task"]["options"]["builtin_dict"] == "ppocr_keys_v1.txt"
    assert "character_dict_path" not in out["task"]["options"]
    assert out["train"]["metric"] == "word_accuracy"
    assert out["schedule"]["decay"] == {"kind": "cosine", "min_lr": 0.0, "period": "run"}
    assert out["optim"] == {"beta1": 0.9, "beta2": 0.999, "name": "adam", "weight_decay": 3.0e-05}
    assert not {"Architecture", "Loss", "PostProcess", "Metric", "Global", "Optimizer"} & set(out)


def test_crnn_recipe_validates(tmp_path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "c.yaml"
    raw = {"task": {**TASK, "options": {**TASK["options"], "builtin_dict": "en_dict.txt"}}, **CRNN}
    path.write_text(yaml.safe_dump({**raw, "schedule": {"total_steps": 10}}))
    with caplog.at_level(logging.WARNING):
        cfg = to_data(load_config(path, env={}))
    model = cfg["task"]["options"]["model"]
    assert (model["encoder"], model["hidden_size"]) == ("bilstm", 96)
    assert "Architecture.Backbone (MobileNetV3) is not rebuilt" in caplog.text


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("Architecture", "algorithm"), "SAR", "Architecture.algorithm: 'SAR' is not a supported"),
        (
            ("Architecture", "Backbone", "name"),
            "MobileNetV1Enhance",
            "Architecture: 'SVTR_LCNet with MobileNetV1Enhance",
        ),
        (
            ("Architecture", "Head", "head_list"),
            [{"CTCHead": {}}, {"SARHead": {}}],
            "Architecture.Head.head_list: ['CTCHead', 'SARHead']",
        ),
        (("Architecture", "Backbone", "det"), True, "Architecture.Backbone.det: not read by Warmstart"),
        (
            ("Loss", "loss_config_list"),
            [{"CTCLoss": None}, {"SARLoss": None}],
            "Loss: ['MultiLoss', 'CTCLoss', 'SARLoss'] does not match",
        ),
        (("Loss", "name"), "CTCLoss", "Loss: ['CTCLoss'] does not match Architecture.algorithm SVTR_LCNet"),
        (
            ("PostProcess", "name"),
            "AttnLabelDecode",
            "PostProcess: {'name': 'AttnLabelDecode'} is not supported",
        ),
        (("Metric", "main_indicator"), "f1", "Metric.main_indicator: 'f1' is not one of acc, norm_edit_dis"),
        (("Metric", "is_filter"), True, "Metric: only RecMetric's defaults"),
    ],
)
def test_unsupported_blocks_are_one_line(path: tuple, value: object, message: str) -> None:
    raw = copy.deepcopy(UPSTREAM)
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        translate({"task": copy.deepcopy(TASK), **raw})
    assert info.value.message.startswith(message)
    assert "\n" not in info.value.message


@pytest.mark.parametrize("ours", [{"builtin_dict": "en_dict.txt"}, {"character_dict_path": "my_dict.txt"}])
def test_our_dictionary_key_wins_over_global(ours: dict, tmp_path, caplog) -> None:
    options = {"data_dir": "data/ocr", **ours}
    path = tmp_path / "c.yaml"
    raw = {
        "task": {"kind": "ocr_rec", "options": options},
        "Global": {"character_dict_path": "ppocr/utils/ppocr_keys_v1.txt"},
    }
    path.write_text(yaml.safe_dump({**raw, "schedule": {"total_steps": 10}}))
    with caplog.at_level(logging.WARNING):
        cfg = to_data(load_config(path, env={}))
    got = cfg["task"]["options"]
    assert {k: got[k] for k in ("builtin_dict", "character_dict_path") if got.get(k) is not None} == ours
    assert "Global.character_dict_path ignored" in caplog.text
    from app.config.typed import from_data
    from app.tasks.ocr.options import OcrRecOptions

    from_data(OcrRecOptions, got, "task.options")  # the task's own check: no "set exactly one" error


def test_own_dictionary_file_stays_a_path(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = translate({"task": copy.deepcopy(TASK), "Global": {"character_dict_path": "dicts/mine.txt"}})
    assert out["task"]["options"]["character_dict_path"] == "dicts/mine.txt"
    (tmp_path / "ppocr" / "utils").mkdir(parents=True)
    (tmp_path / "ppocr" / "utils" / "en_dict.txt").write_text("a\n")
    out = translate(
        {"task": copy.deepcopy(TASK), "Global": {"character_dict_path": "ppocr/utils/en_dict.txt"}}
    )
    assert out["task"]["options"]["character_dict_path"] == "ppocr/utils/en_dict.txt"  # the local file


def test_wheel_dictionary_resolves(tmp_path) -> None:
    from app.config.typed import from_data
    from app.tasks.ocr.options import OcrRecOptions
    from app.tasks.ocr.task import resolve_dict

    out = translate(
        {"task": copy.deepcopy(TASK), "Global": {"character_dict_path": "ppocr/utils/en_dict.txt"}}
    )
    opts = from_data(OcrRecOptions, out["task"]["options"], "task.options")
    path = resolve_dict(opts)
    assert path.name == "en_dict.txt" and path.parent.name == "utils" and path.parent.parent.name == "ppocr"
