"""NLP tasks end to end on a tiny random BERT/ERNIE folder: partial warm start into a new head, exact
resume, evaluation, export (PaddleNLP folder + inference program) and a model_dir on S3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.cli import main
from app.tasks.nlp.synthetic import make_model_dir, write_ner, write_reviews
from tests.train_helpers import assert_same_tensors, final_model, run_inprocess

SEQ = "configs/nlp_seq_cls.yaml"
TOK = "configs/nlp_token_cls.yaml"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    make_model_dir(root / "bert", "bert", seed=0)
    make_model_dir(root / "ernie", "ernie", seed=1)
    write_reviews(root / "three/train.csv", 300, seed=1, neutral_share=0.3, negation=0.0)
    write_reviews(root / "three/eval.csv", 60, seed=2, neutral_share=0.3, negation=0.0)
    write_reviews(root / "two/train.jsonl.csv", 300, seed=3, negation=0.0)
    write_reviews(root / "two/eval.csv", 100, seed=4, negation=0.0)
    write_ner(root / "ner/train.conll", 160, seed=5)
    write_ner(root / "ner/eval.conll", 60, seed=6)
    return root


def _seq(run: Path, toy: Path, data: str, **extra) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": toy / "bert",
        "task.options.train_file": toy / data / "train.jsonl.csv" if data == "two" else toy / data / "train.csv",
        "task.options.eval_file": toy / data / "eval.csv", "training_args.max_steps": 30,
        "training_args.save_steps": 10, "train.eval_every_steps": 15, "training_args.logging_steps": 1,
        "train.progress_bar": "off", "training_args.per_device_train_batch_size": 16,
        "training_args.learning_rate": 0.002,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _tok(run: Path, toy: Path, **extra) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": toy / "ernie",
        "task.options.train_file": toy / "ner/train.conll", "task.options.eval_file": toy / "ner/eval.conll",
        "schedule.total_steps": 30, "schedule.warmup.steps": 5, "checkpoint.every_steps": 10,
        "train.eval_every_steps": 15, "train.log_every_steps": 1, "train.progress_bar": "off",
        "train.batch_size": 16, "schedule.base_lr": 0.003,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _export(config: str, ov: list[str], out: Path) -> list[str]:
    args = ["export", "--config", config, "--out", str(out)] + [a for o in ov for a in ("--set", o)]
    assert main(args) == 0
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())


def _trained(kind: str, model_dir: Path, labels: list[str], weights: dict[str, np.ndarray]):
    from app.tasks.nlp.pretrained import load_model

    with paddle.utils.unique_name.guard():
        net = load_model(model_dir, kind, labels)
    if weights:
        net.set_state_dict({k: paddle.to_tensor(v) for k, v in weights.items()})
    net.eval()
    return net


def _check_exports(out: Path, kind: str, net, ids: np.ndarray) -> None:
    """Both exported formats give the trained model's logits."""
    from paddle import inference

    from app.tasks.nlp.pretrained import load_model

    types = np.zeros_like(ids)
    want = net(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)).numpy()
    with paddle.utils.unique_name.guard():
        back = load_model(out / "pretrained", kind, list(net.config.id2label.values()))
    back.eval()
    got = back(paddle.to_tensor(ids), token_type_ids=paddle.to_tensor(types)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    config = inference.Config(str(out / "inference.pdmodel"), str(out / "inference.pdiparams"))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    assert predictor.get_input_names() == ["input_ids", "token_type_ids"]
    for name, arr in zip(predictor.get_input_names(), (ids, types), strict=True):
        predictor.get_input_handle(name).copy_from_cpu(arr)
    predictor.run()
    got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def pretrained_3class(toy, tmp_path_factory) -> Path:
    """Our own run on a related 3-class task: the source of the partial warm start."""
    run = tmp_path_factory.mktemp("pre3")
    rc, session = run_inprocess(_seq(run, toy, "three"), config=SEQ)
    assert rc == 0 and session.task.labels == ["neg", "neutral", "pos"]
    return run / "checkpoints"


def test_seq_cls_partial_into_a_new_head_resumes_exactly_and_exports(toy, pretrained_3class, tmp_path):
    warm = {"init.from": pretrained_3class, "init.mode": "partial", "init.ignore": "['classifier.*']"}
    ov = _seq(tmp_path / "full", toy, "two", **warm, **{"task.options.format": "csv"})
    rc, session = run_inprocess(ov, config=SEQ)
    assert rc == 0 and session.task.labels == ["neg", "pos"]
    report = json.loads((tmp_path / "full/warmstart_report.json").read_text())
    pre = final_model(_seq(pretrained_3class.parent, toy, "three"), config=SEQ)
    assert sorted(report["ignored"]) == ["classifier.bias", "classifier.weight"]
    assert sorted(report["loaded"]) == sorted(k for k in pre if not k.startswith("classifier."))
    assert report["missing"] == report["mismatched"] == report["unexpected"] == []
    assert pre["classifier.weight"].shape == (32, 3) and session.net.classifier.weight.shape == [32, 2]
    assert session.metrics["accuracy"] >= 0.85 and session.metrics["macro_f1"] >= 0.85

    # stopped at step 17 (mid-epoch, between checkpoints), then the same command again
    ov_cut = _seq(tmp_path / "cut", toy, "two", **warm, **{"task.options.format": "csv"})
    assert run_inprocess(ov_cut, stop_at=17, config=SEQ)[0] == 143
    rc, resumed = run_inprocess(ov_cut, config=SEQ)
    assert rc == 0 and resumed.metrics == session.metrics
    full = final_model(ov, config=SEQ)
    assert_same_tensors(final_model(ov_cut, config=SEQ), full)

    files = _export(SEQ, ov, tmp_path / "export")
    assert files == ["inference.pdiparams", "inference.pdiparams.info", "inference.pdmodel", "pretrained/config.json",
                     "pretrained/model.safetensors", "pretrained/special_tokens_map.json",
                     "pretrained/tokenizer_config.json", "pretrained/vocab.txt"]  # fmt: skip
    config = json.loads((tmp_path / "export/pretrained/config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"}
    net = _trained("seq", toy / "bert", ["neg", "pos"], full)
    ids = np.array([[2, 40, 41, 3, 0, 0], [2, 30, 31, 32, 33, 3]], dtype="int64")
    _check_exports(tmp_path / "export", "seq", net, ids)


def test_token_cls_trains_resumes_exactly_and_exports(toy, tmp_path):
    ov = _tok(tmp_path / "full", toy)
    rc, session = run_inprocess(ov, config=TOK)
    assert rc == 0
    assert session.task.labels == ["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "O"]  # sorted
    assert set(session.metrics) == {"precision", "recall", "f1", "eval_loss"}
    assert session.metrics["f1"] >= 0.8
    first = [json.loads(x) for x in (tmp_path / "full/log.jsonl").read_text().splitlines()]
    evals = [e["metrics"]["f1"] for e in first if e["kind"] == "eval"]
    assert len(evals) == 2 and evals[0] <= evals[1]

    ov_cut = _tok(tmp_path / "cut", toy)
    assert run_inprocess(ov_cut, stop_at=23, config=TOK)[0] == 143
    assert run_inprocess(ov_cut, config=TOK)[0] == 0
    full = final_model(ov, config=TOK)
    assert_same_tensors(final_model(ov_cut, config=TOK), full)
    assert sorted(k for k in full if not k.startswith("ernie."))[:2] == [
        "classifier.bias",
        "classifier.weight",
    ]

    _export(TOK, ov, tmp_path / "export")
    net = _trained("token", toy / "ernie", session.task.labels, full)
    ids = np.array([[2, 40, 41, 42, 3, 0], [2, 30, 31, 32, 33, 3]], dtype="int64")
    _check_exports(tmp_path / "export", "token", net, ids)


def test_model_dir_on_s3_is_fetched_into_the_run_dir(toy, tmp_path, s3_bucket, s3_store_config):
    from app.config import load_config
    from app.store import open_store
    from app.tasks.base import build_task

    uri = f"s3://{s3_bucket}/models/ernie-tiny"
    store = open_store(uri, s3_store_config)
    names = sorted(p.name for p in (toy / "ernie").iterdir())
    for name in names:
        store.upload_file(toy / "ernie" / name, name)
    sc = s3_store_config
    ov = _tok(tmp_path / "run", toy, **{
        "task.options.model_dir": uri, "store.endpoint_url": sc.endpoint_url, "store.region": sc.region,
        "store.addressing_style": sc.addressing_style,
    })  # fmt: skip
    cfg = load_config(Path(__file__).parents[1] / TOK, ov, env={})
    assert cfg.task.options["cache_dir"] == f"{tmp_path}/run/pretrained"
    task = build_task(cfg.task, cfg.run.seed)
    assert task.source_dir == tmp_path / "run/pretrained"
    assert sorted(p.name for p in task.source_dir.iterdir()) == names
    assert sorted(p.name for p in task.model_dir.iterdir()) == names  # the checked copy PaddleNLP reads
    with paddle.utils.unique_name.guard():
        net = task.build_model()
    local = _trained("token", toy / "ernie", task.labels, {})
    want = {k: v.numpy() for k, v in local.state_dict().items() if not k.startswith("classifier.")}
    got = {k: v.numpy() for k, v in net.state_dict().items() if not k.startswith("classifier.")}
    assert_same_tensors(got, want)
