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
            "scale": 0.95,
            "dims": 120,
            "depth": 2,
            "hidden_dims": 120,
            "kernel_size": [1, 3],
            "use_guide": True,
            "fc_decay": 1e-05,
            "nrtr_dim": 384,
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
        (  # PP-OCRv3's backbone with PP-OCRv4's NRTR guidance head
            ("Architecture", "Backbone", "name"),
            "MobileNetV1Enhance",
            "Architecture.Head.head_list: ['CTCHead', 'NRTRHead'] is not a supported",
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
        (("Metric", "is_filter"), "yes", "Metric.is_filter: expected true or false, got 'yes'"),
        (("Metric", "ignore_space"), 0, "Metric.ignore_space: expected true or false, got 0"),
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


TRAIN_EVAL = yaml.safe_load(
    """
Train:
  dataset:
    name: MultiScaleDataSet
    ds_width: false
    data_dir: ./train_data/
    ext_op_transform_idx: 1
    label_file_list: [./train_data/train_list.txt]
    transforms:
      - DecodeImage: {img_mode: BGR, channel_first: false}
      - RecConAug: {prob: 0.5, ext_data_num: 2, image_shape: [48, 320, 3], max_text_length: 25}
      - RecAug:
      - MultiLabelEncode: {gtc_encode: NRTRLabelEncode}
      - KeepKeys: {keep_keys: [image, label_ctc, label_gtc, length, valid_ratio]}
  sampler:
    name: MultiScaleSampler
    scales: [[320, 32], [320, 48], [320, 64]]
    first_bs: 128
    fix_bs: false
    divided_factor: [8, 16]
    is_training: true
  loader: {shuffle: true, batch_size_per_card: 128, drop_last: true, num_workers: 8}
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: ./train_data/
    label_file_list: [./train_data/val_list.txt]
    transforms:
      - DecodeImage: {img_mode: BGR, channel_first: false}
      - MultiLabelEncode: {gtc_encode: NRTRLabelEncode}
      - RecResizeImg: {image_shape: [3, 48, 320], eval_mode: true}
      - KeepKeys: {keep_keys: [image, label_ctc, label_gtc, length, valid_ratio]}
  loader: {shuffle: false, drop_last: false, batch_size_per_card: 1, num_workers: 4}
"""
)


def test_train_and_eval_sections_map_to_options(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = translate({"task": {"kind": "ocr_rec", "options": {}}, **copy.deepcopy(TRAIN_EVAL)})
    opts = out["task"]["options"]
    assert opts["data_dir"] == "./train_data/"
    assert opts["train_label_files"] == [str(tmp_path / "train_data" / "train_list.txt")]
    assert opts["eval_label_files"] == [str(tmp_path / "train_data" / "val_list.txt")]
    assert opts["image_shape"] == [3, 48, 320] and opts["eval_batch_size"] == 1
    assert opts["rec_aug"] == {} and opts["rec_con_aug"] == {
        "prob": 0.5,
        "ext_data_num": 2,
        "image_shape": [48, 320, 3],
    }
    assert opts["multiscale"] == {
        "scales": [[320, 32], [320, 48], [320, 64]],
        "first_bs": 128,
        "fix_bs": False,
        "divided_factor": [8, 16],
    }
    assert out["train"]["batch_size"] == 128
    assert "Train" not in out and "Eval" not in out


def test_whole_upstream_style_config_loads(tmp_path, monkeypatch) -> None:
    """Global + Optimizer + model blocks + Train/Eval: the config loads and validates, PP-OCRv4's data
    options included (they are fed to training: test_ocr_ppocrv4_e2e.py)."""
    from app.config.typed import from_data
    from app.tasks.ocr.options import OcrRecOptions

    monkeypatch.chdir(tmp_path)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"task": {"kind": "ocr_rec"}, **UPSTREAM, **TRAIN_EVAL}))
    cfg = to_data(load_config(path, env={}))
    assert cfg["schedule"]["epochs"] == 200.0 and cfg["schedule"]["warmup"]["epochs"] == 5.0
    assert cfg["schedule"]["decay"]["period"] == "run" and cfg["optim"]["weight_decay"] == 3.0e-05
    opts = dict(cfg["task"]["options"])
    assert opts["builtin_dict"] == "ppocr_keys_v1.txt" and opts["use_space_char"] is True
    parsed = from_data(OcrRecOptions, opts, "task.options")
    assert (
        parsed.multiscale is not None and parsed.multiscale.first_bs == 128 and not parsed.multiscale.ds_width
    )
    assert parsed.rec_aug is not None and parsed.rec_con_aug is not None
    assert parsed.model.algorithm == "svtr_lcnet"
    opts["model"] = {"algorithm": "crnn"}
    with pytest.raises(
        ConfigError, match=r"task\.options\.multiscale: PaddleOCR's PP-OCRv3/v4 training data needs"
    ):
        from_data(OcrRecOptions, opts, "task.options")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (("Train", "dataset", "transforms"), [{"RandAugment": None}]),
            "Train.dataset.transforms[0].RandAugment: RandAugment is not supported",
        ),
        ((("Train", "sampler", "name"), "BatchSampler"), "Train.sampler.name: only MultiScaleSampler"),
        (
            (("Eval", "dataset", "ds_width"), True),
            "Eval.dataset.ds_width: only Train batches are width-aware",
        ),
        (
            (("Eval", "dataset", "data_dir"), "./other/"),
            "Train.dataset.data_dir / Eval.dataset.data_dir: one data_dir",
        ),
    ],
)
def test_unsupported_data_settings_are_one_line(change: tuple, message: str) -> None:
    (path, value) = change
    raw = copy.deepcopy(TRAIN_EVAL)
    node = raw
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(ConfigError) as info:
        translate({"task": {"kind": "ocr_rec", "options": {}}, **raw})
    assert info.value.message.startswith(message)


def test_ds_width_and_max_w_map_to_multiscale(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    raw = copy.deepcopy(TRAIN_EVAL)
    raw["Train"]["dataset"]["ds_width"] = True
    raw["Train"]["sampler"]["max_w"] = 640
    ms = translate({"task": {"kind": "ocr_rec", "options": {}}, **raw})["task"]["options"]["multiscale"]
    assert ms["ds_width"] is True and ms["max_w"] == 640
    del raw["Train"]["sampler"]
    with pytest.raises(
        ConfigError, match="Train.dataset.ds_width: width-aware batches are made by Train.sampler"
    ):
        translate({"task": {"kind": "ocr_rec", "options": {}}, **raw})


def test_loss_block_follows_our_own_algorithm_key() -> None:
    task = {"kind": "ocr_rec", "options": {"data_dir": "d", "model": {"algorithm": "svtr_lcnet"}}}
    translate({"task": task, "Loss": copy.deepcopy(UPSTREAM["Loss"])})  # no error: MultiLoss fits
    with pytest.raises(
        ConfigError, match=r"Loss: \['CTCLoss'\] does not match Architecture.algorithm SVTR_LCNet"
    ):
        translate({"task": task, "Loss": {"name": "CTCLoss"}})


def test_multiloss_weights_map_and_other_loss_keys_are_refused() -> None:
    data = {"task": copy.deepcopy(TASK), **copy.deepcopy(UPSTREAM)}
    data["Loss"] = {**data["Loss"], "weight_1": 1.0, "weight_2": 0.5}
    svtr = translate(data)["task"]["options"]["model"]["svtr_lcnet"]
    assert (svtr["weight_ctc"], svtr["weight_nrtr"]) == (1.0, 0.5)
    data = {"task": copy.deepcopy(TASK), **copy.deepcopy(UPSTREAM)}
    data["Loss"] = {**data["Loss"], "weight_3": 1.0}
    with pytest.raises(ConfigError, match="with weight_3 does not match"):
        translate(data)
