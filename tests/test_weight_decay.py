"""``optim.no_decay``: per-task defaults (PaddleNLP's Trainer rule for NLP), the exact list of decayed
parameters, and that the optimizer really exempts the others (one step with zero gradients)."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from app.config.load import load_config
from app.errors import ConfigError
from app.tasks.digits import DigitsNet
from app.tasks.nlp.pretrained import load_model
from app.tasks.nlp.synthetic import make_model_dir
from app.train.setup import build_optimizer, decayed_names

#: Every parameter of the tiny one-layer BERT classifier that PaddleNLP's Trainer decays (its rule:
#: no "bias" / "norm" substring in the structured name).
BERT_DECAYED = [
    "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.position_embeddings.weight",
    "bert.embeddings.token_type_embeddings.weight",
    "bert.encoder.layers.0.self_attn.q_proj.weight",
    "bert.encoder.layers.0.self_attn.k_proj.weight",
    "bert.encoder.layers.0.self_attn.v_proj.weight",
    "bert.encoder.layers.0.self_attn.out_proj.weight",
    "bert.encoder.layers.0.linear1.weight",
    "bert.encoder.layers.0.linear2.weight",
    "bert.pooler.dense.weight",
    "classifier.weight",
]
DIGITS_ALL = [
    "backbone.0.weight", "backbone.0.bias", "backbone.2.weight", "backbone.2.bias", "head.weight", "head.bias",
]  # fmt: skip


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> paddle.nn.Layer:
    folder = make_model_dir(tmp_path_factory.mktemp("wd") / "bert", "bert", seed=0, layers=1)
    with paddle.utils.unique_name.guard():
        return load_model(folder, "seq", ["neg", "pos"])


def _digits_net() -> paddle.nn.Layer:
    with paddle.utils.unique_name.guard():
        return DigitsNet(10, 8, 0.0)


@pytest.mark.parametrize(
    "config, expected",
    [
        ("configs/nlp_seq_cls.yaml", ["*bias*", "*norm*"]),
        ("configs/nlp_token_cls.yaml", ["*bias*", "*norm*"]),
        ("configs/digits_finetune.yaml", []),
        ("configs/det_picodet_s.yaml", []),
        ("configs/ocr_rec_small.yaml", []),
    ],
)
def test_task_defaults_are_written_into_the_resolved_config(config: str, expected: list[str]) -> None:
    assert load_config(config).optim.no_decay == expected


def test_shipped_nlp_config_decays_exactly_what_paddlenlp_decays(bert) -> None:
    cfg = load_config("configs/nlp_seq_cls.yaml")
    assert decayed_names(cfg.optim.no_decay, bert) == BERT_DECAYED
    paddlenlp_rule = [n for n, _ in bert.named_parameters() if not any(s in n for s in ("bias", "norm"))]
    assert BERT_DECAYED == paddlenlp_rule


def test_digits_decays_everything_and_patterns_select_by_name() -> None:
    net = _digits_net()
    assert [n for n, _ in net.named_parameters()] == DIGITS_ALL
    assert decayed_names(load_config("configs/digits_finetune.yaml").optim.no_decay, net) == DIGITS_ALL
    assert decayed_names(["*.bias", "head.*"], net) == ["backbone.0.weight", "backbone.2.weight"]


def test_user_patterns_replace_the_task_default() -> None:
    cfg = load_config("configs/nlp_seq_cls.yaml", ["optim.no_decay=['classifier.*']"])
    assert cfg.optim.no_decay == ["classifier.*"]
    assert load_config("configs/nlp_seq_cls.yaml", ["optim.no_decay=[]"]).optim.no_decay == []


def test_a_pattern_matching_nothing_or_empty_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"optim.no_decay\[1\]: 'Head\.\*' matches no parameter"):
        decayed_names(["*bias", "Head.*"], _digits_net())
    with pytest.raises(ConfigError, match=r"optim.no_decay\[0\]: empty pattern"):
        load_config("configs/digits_finetune.yaml", ["optim.no_decay=['  ']"])


def _one_step_zero_grads(net: paddle.nn.Layer, overrides: list[str]) -> dict[str, float]:
    """Relative change of each parameter after one step with lr 0.1 and all-zero gradients."""
    cfg = load_config("configs/nlp_seq_cls.yaml", ["training_args.weight_decay=0.5", *overrides])
    before = {n: p.numpy().copy() for n, p in net.named_parameters()}
    opt = build_optimizer(cfg.optim, paddle.optimizer.lr.LambdaDecay(0.1, lambda _: 1.0), net)
    for p in net.parameters():
        p.grad = paddle.zeros_like(p)
    opt.step()
    ratios = {}
    for n, p in net.named_parameters():
        b = before[n]
        nz = np.abs(b) > 1e-6
        ratios[n] = float(np.median(p.numpy()[nz] / b[nz])) if nz.any() else 1.0
        p.set_value(paddle.to_tensor(b))
    return ratios


@pytest.mark.parametrize("name", ["adamw", "sgd", "momentum", "adam"])
def test_one_step_shrinks_only_the_decayed_parameters(bert, name: str) -> None:
    ratios = _one_step_zero_grads(bert, [f"optim.name={name}"])
    decayed = {n for n, r in ratios.items() if abs(r - 1.0) > 1e-6}
    assert sorted(decayed) == sorted(BERT_DECAYED)
    if name == "adamw":  # decoupled decay: p *= 1 - lr * wd
        assert all(abs(ratios[n] - 0.95) < 1e-5 for n in BERT_DECAYED)
    if name in ("sgd", "momentum"):  # L2 term wd * p in the gradient: p -= lr * wd * p
        assert all(abs(ratios[n] - 0.95) < 1e-5 for n in BERT_DECAYED)


OCR_TASK = {"kind": "ocr_rec", "options": {"data_dir": "data/ocr", "builtin_dict": "en_dict.txt"}}


def test_paddleocr_adamw_no_weight_decay_name_becomes_substring_globs(caplog) -> None:
    from app.tasks.ocr.translate import translate as ocr_translate

    opt = {"name": "AdamW", "weight_decay": 0.05, "no_weight_decay_name": "norm pos_embed [x]"}
    out = ocr_translate({"task": OCR_TASK, "Optimizer": opt})
    assert out["optim"]["no_decay"] == ["*norm*", "*pos_embed*", "*[[]x]*"]
    mine = ocr_translate({"task": OCR_TASK, "optim": {"no_decay": ["head.*"]}, "Optimizer": opt})
    assert mine["optim"]["no_decay"] == ["head.*"]  # our own section wins, with a warning
    assert "Optimizer.no_weight_decay_name ignored: optim.no_decay is set" in caplog.text
    with pytest.raises(ConfigError, match=r"^Optimizer.one_dim_param_no_weight_decay: not supported"):
        ocr_translate({"task": OCR_TASK, "Optimizer": {**opt, "one_dim_param_no_weight_decay": True}})


def test_substring_globs_select_what_paddleocr_selects() -> None:
    net = _digits_net()
    from app.tasks.ocr.translate import _glob_substring

    assert decayed_names([_glob_substring("bias")], net) == [n for n in DIGITS_ALL if "bias" not in n]


def test_train_with_a_pattern_matching_nothing_is_one_line_exit_2(tmp_path, capsys) -> None:
    from app.cli import main

    argv = ["train", "--config", "configs/demo.yaml", "--set", f"run.dir={tmp_path / 'run'}",
            "--set", "optim.no_decay=['nope*']", "--set", "train.progress_bar=off"]  # fmt: skip
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "warmstart: config: optim.no_decay[0]: 'nope*' matches no parameter (parameters look like: "
        "backbone.0.weight, backbone.0.bias, backbone.2.weight, backbone.2.bias) "
        "(patterns are case-sensitive globs on the whole name, e.g. '*bias*')"
    ]
