"""Config loading: precedence, unknown keys, types, env vars, and `warmstart config --print`."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest
import yaml

from app.cli import main
from app.config import ENV_VARS, config_hash, load_config
from app.errors import ConfigError

BASE = textwrap.dedent(
    """
    run: {name: base, seed: 1}
    schedule: {base_lr: 0.01, total_steps: 100}
    checkpoint: {uri: /from/yaml}
    """
)


@pytest.fixture
def cfg_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    return path


def test_precedence_defaults_yaml_env_set(cfg_file):
    """Documented once: defaults < YAML < WARMSTART_* env < --set."""
    env = {"WARMSTART_CHECKPOINT_URI": "s3://env/run", "WARMSTART_SEED": "7", "WARMSTART_BASE_LR": "0.02"}
    cfg = load_config(cfg_file, ["schedule.base_lr=0.03"], env=env)
    assert cfg.run.name == "base"  # yaml
    assert cfg.run.seed == 7  # env over yaml
    assert cfg.checkpoint.uri == "s3://env/run"  # env over yaml
    assert cfg.schedule.base_lr == 0.03  # --set over env
    assert cfg.schedule.total_steps == 100  # yaml
    assert cfg.train.batch_size == 32  # default


def test_every_documented_env_var_reaches_its_key(cfg_file):
    samples = {
        "run.dir": "/r", "run.name": "n", "run.seed": "3", "checkpoint.uri": "/c", "init.from": "/i",
        "init.mode": "partial", "schedule.total_steps": "50", "schedule.base_lr": "0.5",
        "store.endpoint_url": "http://x", "store.region": "eu", "store.addressing_style": "path",
        "preempt.grace_seconds": "9", "preempt.peer_timeout_seconds": "30", "preempt.spot.provider": "aws", "preempt.spot.endpoint": "http://m",
    }  # fmt: skip
    assert sorted(samples) == sorted(ENV_VARS.values())
    env = {var: samples[key] for var, key in ENV_VARS.items()}
    data = json.loads(json.dumps(load_config(cfg_file, env=env), default=lambda o: o.__dict__))
    for key, text in samples.items():
        node = data
        for part in key.split("."):
            node = node["from_" if part == "from" else part]
        assert node == yaml.safe_load(text), key


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["schedul.base_lr=1"], "schedul: unknown key; did you mean 'schedule'?"),
        (["schedule.warmup.stpes=3"], "schedule.warmup.stpes: unknown key; did you mean 'steps'?"),
        (["optim.name=adamm"], "optim.name: 'adamm' is not one of 'sgd', 'momentum', 'adam', 'adamw'; did you mean 'adam'?"),
        (["train.batch_size=abc"], "train.batch_size: expected an integer, got 'abc'"),
        (["train.batch_size=0"], "train.batch_size: must be > 0, got 0"),
        (["schedule.base_lr=-1"], "schedule.base_lr: must be within (0, 1000], got -1.0"),
        (["train.amp=yes"], "train.amp: True is not one of 'auto', 'off', 'fp16', 'bf16'"),
        (["init.min_loaded_fraction=2"], "init.min_loaded_fraction: must be within [0, 1], got 2.0"),
        (["freeze=notalist"], "freeze: expected a list, got 'notalist'"),
        (["run.seed"], "--set 'run.seed': expected KEY=VALUE"),
        (["run.name.x=1"], "--set run.name.x: run.name is not a mapping"),
        (["preempt.grace_seconds=-1"], "preempt.grace_seconds: must be within (0, 86400], got -1.0"),
        (["preempt.spot.interval_s=0"], "preempt.spot.interval_s: must be within (0, 86400], got 0.0"),
        (["task.kind=digitz"], "task.kind: unknown task 'digitz'; did you mean 'digits'?"),
        (["init.from=ftp://host/w.pdparams"], "init.from: 'ftp://host/w.pdparams' has an unsupported scheme"),
        (["init.from=https://host/models/"], "init.from: 'https://host/models/' names no file"),
        (["checkpoint.uri=gs://b/x"], "checkpoint.uri: 'gs://b/x' has an unsupported scheme"),
    ],
)  # fmt: skip
def test_errors_name_the_field_and_value(cfg_file, overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(cfg_file, overrides, env={})
    assert message in err.value.line()


def test_yaml_problems_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml': .* at line 3, column 1"):
        load_config(bad, env={})
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a mapping, got list"):
        load_config(top, env={})


def test_scientific_floats_and_on_off_literals(cfg_file):
    cfg = load_config(cfg_file, ["schedule.base_lr=1e-5", "train.progress_bar=off"], env={})
    assert cfg.schedule.base_lr == 1e-5 and cfg.train.progress_bar == "off"


def test_hash_changes_with_content_only(cfg_file):
    a = load_config(cfg_file, env={})
    b = load_config(cfg_file, env={})
    c = load_config(cfg_file, ["run.seed=2"], env={})
    assert config_hash(a) == config_hash(b) != config_hash(c)
    assert len(config_hash(a)) == 64


def test_config_print_shows_resolved_yaml(cfg_file, capsys, monkeypatch):
    monkeypatch.setenv("WARMSTART_CHECKPOINT_URI", "s3://bucket/x")
    assert main(["config", "--config", str(cfg_file), "--print", "--set", "run.seed=5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# resolved config (sha256 ")
    data = yaml.safe_load(out)
    assert data["run"]["seed"] == 5 and data["checkpoint"]["uri"] == "s3://bucket/x"
    assert data["init"]["from"] is None  # YAML spelling of init.from, not the field name
    assert main(["config", "--config", str(cfg_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["schedule"]["base_lr"] == 0.01


def test_config_error_is_one_line_exit_2(cfg_file, capsys):
    assert main(["config", "--config", str(cfg_file), "--set", "optim.nam=sgd"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warmstart: config: optim.nam: unknown key; did you mean 'name'? "
                   "(known keys: beta1, beta2, epsilon, grad_clip, grad_clip_norm, momentum, name, no_decay, weight_decay)"]  # fmt: skip


def test_reading_a_config_does_not_import_paddle():
    import subprocess

    code = "import sys, app.config; app.config.load_config(None, env={}); print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
