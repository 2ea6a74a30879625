"""A PaddleNLP model name as ``model_dir`` (or ``training_args.model_name_or_path``): read from PaddleNLP's
cache (``<PPNLP_HOME>/models/<name>``, pre-populated here with a locally built tiny ERNIE), through the same
pickle gate; offline and not cached, or unreachable → exit 5 naming the folder. No network is used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.config import load_config
from app.errors import CheckpointError
from app.tasks.base import build_task
from app.tasks.nlp.synthetic import make_model_dir, write_reviews
from tests.train_helpers import ROOT, assert_same_tensors, clean_env, final_model

NAME = "ernie-3.0-medium-zh"
SEQ = ROOT / "configs/nlp_seq_cls.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A PPNLP_HOME whose cache holds NAME (as from_pretrained / save_pretrained leave it) and some data."""
    root = tmp_path_factory.mktemp("ppnlp")
    make_model_dir(root / "home/models" / NAME, "ernie", seed=3)
    write_reviews(root / "data/train.csv", 120, seed=1, negation=0.0)
    write_reviews(root / "data/eval.csv", 40, seed=2, negation=0.0)
    return root


def _overrides(home: Path, run: Path, **extra: object) -> list[str]:
    base = {
        "run.dir": run, "task.options.model_dir": NAME, "task.options.train_file": home / "data/train.csv",
        "task.options.eval_file": home / "data/eval.csv", "training_args.max_steps": 6,
        "training_args.save_steps": 3, "train.eval_every_steps": 6, "train.progress_bar": "off",
        "training_args.warmup_ratio": 0.0,
    }  # fmt: skip
    base.update(extra)
    return [f"{k}={v}" for k, v in base.items()]


def _cached_weights(home: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return {f"ernie.{k}": v for k, v in load_file(home / "home/models" / NAME / "model.safetensors").items()}


def _cli(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    env = clean_env(PPNLP_HOME=str(home / "home"), PYTHONPATH=str(ROOT), **env)
    cmd = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cache_rule_is_paddlenlps(home):
    code = "import zlib; from paddlenlp.utils.env import MODEL_HOME; print(MODEL_HOME)"
    env = clean_env(PPNLP_HOME=str(home / "home"))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    from app.tasks.nlp import model_name

    assert out.stdout.strip().splitlines()[-1] == str(home / "home/models")
    assert model_name.looks_like_name(NAME) and model_name.looks_like_name("PaddlePaddle/ernie-3.0-mini-zh")
    for path in ("./ernie", "/models/ernie", "a/b/c", "../x", "s3://b/m"):
        assert not model_name.looks_like_name(path)


def test_name_builds_the_model_from_the_cached_weights(home, tmp_path, monkeypatch):
    monkeypatch.setenv("PPNLP_HOME", str(home / "home"))
    monkeypatch.setenv("WARMSTART_OFFLINE", "1")
    cfg = load_config(SEQ, _overrides(home, tmp_path / "run"), env={})
    task = build_task(cfg.task, cfg.run.seed)
    assert task.source_dir == home / "home/models" / NAME
    with paddle.utils.unique_name.guard():
        net = task.build_model()
    got = {k: v.numpy() for k, v in net.state_dict().items() if not k.startswith("classifier.")}
    assert_same_tensors(got, _cached_weights(home))  # loaded fraction 1.0 of the backbone


def test_model_name_or_path_trains_from_the_cache_offline(home, tmp_path):
    config = tmp_path / "args.yaml"  # the shipped config with the name in training_args instead of model_dir
    lines = SEQ.read_text().splitlines()
    lines = [x for x in lines if "model_dir:" not in x] + [f"  model_name_or_path: {NAME}"]
    config.write_text("\n".join(lines) + "\n")
    ov = [o for o in _overrides(home, tmp_path / "run") if not o.startswith("task.options.model_dir")]
    args = ["train", "-c", str(config)] + [a for o in ov for a in ("--set", o)]
    done = _cli(args, home, WARMSTART_OFFLINE="1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"model_dir {NAME}: PaddleNLP's cache {home}/home/models/{NAME}" in done.stderr
    log = [json.loads(x) for x in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert max(e.get("step", 0) for e in log) == 6
    trained = final_model(ov, config=str(config))
    cached = _cached_weights(home)
    assert sorted(k for k in trained if not k.startswith("classifier.")) == sorted(cached)
    assert not np.array_equal(trained["ernie.pooler.dense.weight"], cached["ernie.pooler.dense.weight"])


def test_uncached_name_offline_is_one_line_exit_5(home, tmp_path):
    args = ["train", "-c", str(SEQ)] + [a for o in _overrides(home, tmp_path / "r") for a in ("--set", o)]
    args[args.index(f"task.options.model_dir={NAME}")] = "task.options.model_dir=org/not-cached-zh"
    done = _cli(args, home, WARMSTART_OFFLINE="1")
    assert done.returncode == 5, done.stderr[-3000:]
    lines = [x for x in done.stderr.splitlines() if x.startswith("warmstart:")]
    folder = home / "home/models/org/not-cached-zh"
    assert lines == [
        "warmstart: task: model_dir 'org/not-cached-zh' is neither a local folder nor in PaddleNLP's cache "
        "(not cached; WARMSTART_OFFLINE/HF_HUB_OFFLINE set, no download) (put the files save_pretrained "
        "writes (config.json, model.safetensors or model_state.pdparams, tokenizer_config.json, vocab) into "
        f"{folder}, or set task.options.model_dir to a folder)"
    ]
    assert "Traceback" not in done.stderr


def test_uncached_name_with_the_network_blocked_is_exit_5(home, tmp_path):
    """Not offline, but every connection goes to a closed port: PaddleNLP's download fails fast → exit 5."""
    args = ["train", "-c", str(SEQ)] + [a for o in _overrides(home, tmp_path / "r") for a in ("--set", o)]
    args[args.index(f"task.options.model_dir={NAME}")] = "task.options.model_dir=not-cached-zh"
    closed = "http://127.0.0.1:9"
    proxies = {"HTTP_PROXY": closed, "HTTPS_PROXY": closed, "http_proxy": closed, "https_proxy": closed}
    done = _cli(args, home, HF_HUB_OFFLINE="0", **proxies)
    assert done.returncode == 5, done.stderr[-3000:]
    line = [x for x in done.stderr.splitlines() if x.startswith("warmstart:")][0]
    assert line.startswith("warmstart: task: model_dir 'not-cached-zh' is neither a local folder nor in ")
    assert "download failed" in line and str(home / "home/models/not-cached-zh") in line


def test_a_cached_pickle_needs_the_opt_in(home, tmp_path, monkeypatch):
    """The cache is not trusted more than a folder: a model_state.pdparams there is a pickle."""
    from safetensors.numpy import load_file

    folder = tmp_path / "home/models/pickled-zh"
    make_model_dir(folder, "ernie", seed=4)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    paddle.save({k: paddle.to_tensor(v) for k, v in weights.items()}, str(folder / "model_state.pdparams"))
    monkeypatch.setenv("PPNLP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("WARMSTART_OFFLINE", "1")
    cfg = load_config(
        SEQ, _overrides(home, tmp_path / "run", **{"task.options.model_dir": "pickled-zh"}), env={}
    )
    with pytest.raises(CheckpointError, match="model_state.pdparams is a pickle"):
        build_task(cfg.task, cfg.run.seed)
    assert build_task(cfg.task, cfg.run.seed, allow_pickle=True).source_dir == folder
