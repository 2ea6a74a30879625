"""Hostile config input (issue #13 item 8): every bad YAML file, ``--set`` or ``WARMSTART_*`` value ends in
one ``warmstart: config: ...`` line with exit 2 that names the field or the line, never a traceback."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import typing
from pathlib import Path

import pytest

from app.cli import main
from app.config import load_config
from app.config.schema import Config
from app.config.typed import field_range, from_data
from app.errors import ConfigError
from tests.train_helpers import ROOT, VENV_BIN, clean_env

DEEP = "[" * 500 + "]" * 500  # ~1 KB, 500 levels


def _run(
    capsys, args: list[str], monkeypatch=None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    if env and monkeypatch is not None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    code = main(["config", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_config_error(code: int, err: str, *words: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("warmstart: config: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text("run: {name: x}\n")
    return path


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


# -- YAML files ---------------------------------------------------------------------------------------
def _laughs() -> str:
    lines = ['  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "task:\n options:\n" + "\n".join(" " + line for line in lines) + "\n"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (f"a: {DEEP}\n", ["nesting deeper than", "line 1"]),
        ("task:\n  options: " + "{a: " * 500 + "1" + "}" * 500 + "\n", ["nesting deeper than"]),
        (
            "run:\n  name: a\ncheckpoint:\n  uri: /tmp/ws-a\nrun:\n  name: b\n",
            ["duplicate key 'run'", "line 5", "line 1"],
        ),
        (
            "checkpoint:\n  uri: /data/a\n  every_steps: 5\n  uri: /data/b\n",
            ["duplicate key 'uri'", "line 4", "line 2"],
        ),
        ("x: &x {a: 1}\nrun: {name: a, name: b}\n", ["duplicate key 'name'", "line 2"]),
        (_laughs(), ["more than", "aliases are expanded"]),
        ("task:\n  options: &a {x: *a}\n", ["alias *a"]),
        ("- 1\n- 2\n", ["top level must be a mapping"]),
        ("just text\n", ["top level must be a mapping"]),
        ("1: 2\n", ["keys must be strings"]),
        ("run: {1.5: x}\n", ["keys must be strings"]),
        ("? [a, b]\n: 1\n", ["unhashable"]),
        ("run: {seed: " + "1" * 5000 + "}\n", ["cannot be read"]),
        ("run: {name: [unclosed\n", ["line"]),
        ("schedule: {base_lr: .nan}\n", ["schedule.base_lr", "finite"]),
        ("schedule: {base_lr: -.inf}\n", ["schedule.base_lr", "finite"]),
        ("schedule: {base_lr: 1.0e309}\n", ["schedule.base_lr", "finite"]),
        ("run: !!python/object:os.system {}\n", ["line"]),
        ("schedule: {base_lr: !!float ''}\n", ["cannot be read"]),
        (
            "task: {kind: ocr_rec}\nOptimizer: {lr: {learning_rate: 0.1}}\nschedule: [1]\n",
            ["schedule: expected a mapping"],
        ),
        ("task: {kind: detection, options: just-a-string}\n", ["task.options: expected a mapping"]),
        ('init: {from: "a\\0b"}\n', ["init.from", "control character"]),
        ('checkpoint: {uri: "s3://bucket/a\\nb"}\n', ["checkpoint.uri", "control character"]),
        ('run: {dir: "runs/a\\0b"}\n', ["run.dir", "not a usable folder path"]),
        ("checkpoint: {uri: 's3://admin:pw@bucket/x'}\n", ["checkpoint.uri", "s3://***@bucket/x"]),
    ],
)
def test_bad_yaml_files_are_one_config_error(tmp_path, capsys, text, words):
    code, _, err = _run(capsys, ["-c", str(_yaml(tmp_path, text))])
    _one_config_error(code, err, *words)


def test_huge_yaml_file_is_refused_before_parsing(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("run: {notes: '" + "x" * (2 * 1024 * 1024) + "'}\n")
    code, _, err = _run(capsys, ["-c", str(path)])
    _one_config_error(code, err, "larger than")


def test_anchors_and_merge_keys_still_work(tmp_path):
    path = _yaml(
        tmp_path,
        "defaults: &d {batch_size: 8, log_every_steps: 2}\n"
        "train:\n  <<: *d\n  batch_size: 4\n"
        "run: {name: x}\n",
    )
    with pytest.raises(ConfigError, match="defaults: unknown key"):  # the anchor holder itself is unknown
        load_config(path, env={})
    path.write_text("train: &t {batch_size: 8}\nrun: {name: x}\n")
    assert load_config(path, env={}).train.batch_size == 8


# -- --set and WARMSTART_* ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("=1", ["expected KEY=VALUE"]),
        ("schedule.base_lr", ["expected KEY=VALUE"]),
        ("a..b=1", ["empty part"]),
        (".a=1", ["empty part"]),
        ("a.=1", ["empty part"]),
        (".".join(["task", "options"] + ["a"] * 500) + "=1", ["dotted parts"]),
        (f"task.options={DEEP}", ["--set task.options", "nesting deeper than"]),
        ("task.options={a: 1, a: 2}", ["duplicate key 'a'"]),
        ("schedule.base_lr=1e309", ["schedule.base_lr", "finite"]),
        ("schedule.base_lr=-inf", ["schedule.base_lr", "expected a number"]),
        ("schedule.base_lr=.nan", ["schedule.base_lr", "finite"]),
        ("schedule.base_lr=0", ["schedule.base_lr", "within (0, 1000]"]),
        ("optim.grad_clip_norm=-1", ["optim.grad_clip_norm", "> 0"]),
        ("optim.grad_clip_norm=.inf", ["optim.grad_clip_norm", "finite"]),
        (f"run.seed={10**400}", ["run.seed", "out of range"]),
        (f"schedule.total_steps={2**63}", ["schedule.total_steps", "out of range"]),
        ("run.seed=-1", ["run.seed", ">= 0"]),
        ("train.batch_size=true", ["train.batch_size", "expected an integer"]),
        ("schedule.base_lr=true", ["schedule.base_lr", "expected a number"]),
        ("optim.beta2=1.0", ["optim.beta2", "within [0, 1)"]),
        ("optim.momentum=-0.1", ["optim.momentum"]),
        ("optim.epsilon=0", ["optim.epsilon", "> 0"]),
        ("optim.weight_decay=-1", ["optim.weight_decay", ">= 0"]),
        ("schedule.warmup.start_lr=-1", ["schedule.warmup.start_lr", "within [0, 1000]"]),
        ("schedule.warmup.power=1000", ["schedule.warmup.power"]),
        ("schedule.decay.gamma=1e300", ["schedule.decay.gamma", "within (0, 1]"]),
        ("schedule.epochs=1e300", ["schedule.epochs"]),
        ("schedule.base_lr=1e300", ["schedule.base_lr"]),
        ("schedule.decay.decay_fraction=1.5", ["schedule.decay.decay_fraction", "within [0, 1]"]),
        ("schedule.decay.boundaries=[1, .inf]", ["schedule.decay.boundaries[1]"]),
        ("schedule.decay.values=[0.1, .nan]", ["schedule.decay.values[1]", "finite"]),
        ("schedule.stages=[{steps: 0}]", ["schedule.stages[0].steps", "> 0"]),
        ("freeze=[{until_step: -1}]", ["freeze[0].until_step", ">= 0"]),
        ("freeze=[{lr_factor: .nan}]", ["freeze[0].lr_factor", "finite"]),
        ("checkpoint.every_minutes=.nan", ["checkpoint.every_minutes", "finite"]),
        ("checkpoint.leftover_minutes=1e300", ["checkpoint.leftover_minutes"]),
        ("checkpoint.keep_best=-1", ["checkpoint.keep_best", ">= 0"]),
        ("store.read_timeout_s=1e300", ["store.read_timeout_s"]),
        ("store.backoff_base_s=.nan", ["store.backoff_base_s", "finite"]),
        ("store.part_size_mb=100000", ["store.part_size_mb"]),
        ("preempt.grace_seconds=.inf", ["preempt.grace_seconds", "finite"]),
        ("preempt.spot.interval_s=-5", ["preempt.spot.interval_s"]),
        ("init.min_loaded_fraction=.nan", ["init.min_loaded_fraction", "finite"]),
        ("store.endpoint_url=ftp://host", ["store.endpoint_url", "not an endpoint URL"]),
        ("store.endpoint_url=http://[::1", ["store.endpoint_url", "not an endpoint URL"]),
        ("checkpoint.uri=~no-such-user-4711/ck", ["checkpoint.uri", "no such user"]),
        ("store.endpoint_url=http://host:99999", ["store.endpoint_url"]),
        ("preempt.spot.endpoint=not a url", ["preempt.spot.endpoint"]),
    ],
)
def test_bad_set_values_are_one_config_error(cfg, capsys, item, words):
    code, _, err = _run(capsys, ["-c", str(cfg), "--set", item])
    _one_config_error(code, err, *words)


@pytest.mark.parametrize(
    ("var", "value", "words"),
    [
        ("WARMSTART_BASE_LR", "NaN", ["schedule.base_lr"]),
        ("WARMSTART_BASE_LR", ".nan", ["schedule.base_lr", "finite"]),
        ("WARMSTART_BASE_LR", "-inf", ["schedule.base_lr"]),
        ("WARMSTART_BASE_LR", "1e309", ["schedule.base_lr", "finite"]),
        ("WARMSTART_GRACE_SECONDS", "1e309", ["preempt.grace_seconds", "finite"]),
        ("WARMSTART_TOTAL_STEPS", "1e400", ["schedule.total_steps"]),
        ("WARMSTART_SEED", DEEP, ["env WARMSTART_SEED", "nesting deeper than"]),
        ("WARMSTART_RUN_NAME", "{a: 1, a: 2}", ["env WARMSTART_RUN_NAME", "duplicate key"]),
        ("WARMSTART_CHECKPOINT_URI", "file:///etc", ["checkpoint.uri", "/etc"]),
    ],
)
def test_bad_env_values_are_one_config_error(cfg, capsys, monkeypatch, var, value, words):
    code, _, err = _run(capsys, ["-c", str(cfg)], monkeypatch, {var: value})
    _one_config_error(code, err, *words)


@pytest.mark.parametrize("text", ["[not yaml", "*bold*", "=", "!foo bar", "&a [*a]", "2024-01-01"])
def test_text_that_is_not_plain_yaml_data_stays_a_string(cfg, text):
    assert load_config(cfg, [f"run.notes={text}"], env={}).run.notes == text


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("task.options.x=!!binary aGVsbG8=", ["binary", "not supported"]),
        ("task.options.x=!!set {a, b}", ["set", "not supported"]),
        ("task.options=[1, .inf]", ["task.options[1]", "finite"]),
        ("task.options.deep={a: {b: [1, .nan]}}", ["task.options.deep.a.b[1]", "finite"]),
    ],
)
def test_free_form_values_are_plain_finite_data(cfg, capsys, item, words):
    code, _, err = _run(capsys, ["-c", str(cfg), "--set", item])
    _one_config_error(code, err, *words)


def test_dates_in_free_form_options_stay_strings(tmp_path):
    path = _yaml(tmp_path, "task: {kind: digits}\nrun: {notes: 2024-01-01}\n")
    assert load_config(path, env={}).run.notes == "2024-01-01"


# -- every numeric field has a declared range and rejects non-finite values ---------------------------
def _numeric_fields() -> list[tuple[list[tuple[str, bool]], dataclasses.Field, bool]]:
    """(path as (key, is_list) parts, field, is_float) for every int/float field under Config."""
    out = []
    pending: list[tuple[type, list[tuple[str, bool]]]] = [(Config, [])]
    while pending:
        cls, prefix = pending.pop()
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key = f.metadata.get("key", f.name)
            tp = hints[f.name]
            listed = typing.get_origin(tp) is list
            args = {tp} if listed else {tp, *typing.get_args(tp)}
            for a in args:
                if dataclasses.is_dataclass(a):
                    pending.append((a, [*prefix, (key, False)]))
                if typing.get_origin(a) is list and dataclasses.is_dataclass(typing.get_args(a)[0]):
                    pending.append((typing.get_args(a)[0], [*prefix, (key, True)]))
            flat = args | {x for a in args for x in typing.get_args(a)}
            if int in flat or float in flat:
                out.append(([*prefix, (key, False)], f, float in flat))
    return out


def _shown(parts: list[tuple[str, bool]]) -> str:
    return ".".join(name + ("[0]" if is_list else "") for name, is_list in parts)


def _nested(parts: list[tuple[str, bool]], value: object) -> object:
    for name, is_list in reversed(parts):
        value = {name: [value] if is_list else value}
    return value


def test_every_numeric_config_field_declares_a_range():
    fields = _numeric_fields()
    assert len(fields) > 40
    assert [_shown(p) for p, f, _ in fields if field_range(f) is None] == []


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_field_rejects_non_finite_naming_it(bad):
    floats = [parts for parts, _, is_float in _numeric_fields() if is_float]
    assert len(floats) > 25
    for parts in floats:
        with pytest.raises(ConfigError) as err:
            from_data(Config, _nested(parts, bad))
        assert err.value.line().startswith(_shown(parts) + ": "), err.value.line()


@pytest.mark.parametrize("bad", [True, 10**400, 2**63])
def test_every_int_field_rejects_bools_and_huge_ints_naming_it(bad):
    ints = [parts for parts, f, is_float in _numeric_fields() if not is_float]
    assert len(ints) > 15
    for parts in ints:
        with pytest.raises(ConfigError) as err:
            from_data(Config, _nested(parts, bad))
        assert err.value.line().startswith(_shown(parts)), err.value.line()


@pytest.mark.parametrize(
    ("sets", "words"),
    [
        (["task.options.dropout=.nan"], ["task.options.dropout", "finite"]),
        (["task.options.eval_fraction=1.5"], ["task.options.eval_fraction", "within (0, 1)"]),
        (["task.options.classes=[1, 99]"], ["task.options.classes[1]", "within [0, 9]"]),
        (["task.kind=ocr_rec", "task.options.augment.rotate_prob=2"], ["task.options.augment.rotate_prob"]),
        (["task.kind=ocr_rec", "task.options.model.dropout=.inf"], ["task.options.model.dropout", "finite"]),
        (["task.kind=nlp_seq_cls", "task.options.max_seq_len=-1"], ["task.options.max_seq_len", ">= 8"]),
        (["task.kind=detection", "task.options.max_eval_images=0"], ["task.options.max_eval_images", "> 0"]),
    ],
)
def test_task_options_are_checked_when_the_config_loads(cfg, capsys, sets, words):
    args = ["-c", str(cfg)]
    for item in sets:
        args += ["--set", item]
    code, _, err = _run(capsys, args)
    _one_config_error(code, err, *words)


def test_every_numeric_task_option_declares_a_range():
    from app.tasks.registry import TASK_OPTIONS, TASKS, resolve

    assert set(TASK_OPTIONS) == set(TASKS) - {"synth"}
    missing = []
    for target in TASK_OPTIONS.values():
        pending = [resolve(target)]
        while pending:
            cls = pending.pop()
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                flat = {hints[f.name], *typing.get_args(hints[f.name])}
                flat |= {x for a in flat for x in typing.get_args(a)}
                pending += [
                    a for a in flat if dataclasses.is_dataclass(a) and a.__module__.startswith("app.tasks")
                ]
                if (int in flat or float in flat) and field_range(f) is None:
                    missing.append(f"{cls.__name__}.{f.name}")
    assert missing == []


# -- local output folders -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("item", "field"),
    [
        ("checkpoint.uri=file:///etc", "checkpoint.uri"),
        ("checkpoint.uri=file://localhost/etc/x", "checkpoint.uri"),
        ("checkpoint.uri=" + "../" * 40 + "etc", "checkpoint.uri"),
        ("checkpoint.uri=/", "checkpoint.uri"),
        ("checkpoint.uri=/usr/lib/python3", "checkpoint.uri"),
        ("checkpoint.uri=/proc/self", "checkpoint.uri"),
        ("run.dir=/", "run.dir"),
        ("run.dir=/etc/warmstart", "run.dir"),
        ("run.dir=" + "../" * 40 + "boot", "run.dir"),
        ("run.dir=/var", "run.dir"),
        ("run.dir=/home", "run.dir"),
        ("run.dir=/usr", "run.dir"),
        ("task.kind=nlp_seq_cls", "task.options.cache_dir"),
    ],
)
def test_system_directories_are_refused(cfg, capsys, item, field):
    extra = ["--set", "task.options.cache_dir=/etc/models"] if field.endswith("cache_dir") else []
    code, _, err = _run(capsys, ["-c", str(cfg), "--set", item, *extra])
    line = _one_config_error(code, err, field, "system directory")
    assert "docs/config.md" in line


def test_a_symlink_into_a_system_directory_is_refused(cfg, tmp_path, capsys):
    link = tmp_path / "looks-fine"
    link.symlink_to("/etc")
    code, _, err = _run(capsys, ["-c", str(cfg), "--set", f"checkpoint.uri={link}/ckpt"])
    _one_config_error(code, err, "checkpoint.uri", "resolves to /etc/ckpt")


@pytest.mark.parametrize(
    "path", ["runs/x", "/usr/src/app/runs", "/var/lib/jenkins/ws/run", "/home/me/r", "/tmp/w"]
)
def test_ordinary_folders_are_accepted(path):
    cfg = load_config(None, [f"run.dir={path}", f"checkpoint.uri={path}/ck"], env={})
    assert cfg.run.dir == path  # the config keeps what was written; the absolute path is printed at start


def test_the_real_cli_prints_one_line_for_deep_yaml_and_etc(tmp_path):
    """Through the installed entry point, in a fresh process: no traceback reaches the user."""
    deep = _yaml(tmp_path, f"a: {DEEP}\n")
    env = clean_env()
    env["PYTHONPATH"] = str(ROOT)
    for args in (["-c", str(deep)], ["-c", str(deep), "--set", "checkpoint.uri=file:///etc"]):
        proc = subprocess.run(
            [str(VENV_BIN / "warmstart"), "config", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = subprocess.run(
        [str(VENV_BIN / "warmstart"), "config", "-c", str(ROOT / "configs/demo.yaml"), "--set", "checkpoint.uri=" + "../" * 40 + "etc"],
        env=env, capture_output=True, text=True, timeout=300, cwd=os.path.join(str(tmp_path)),
    )  # fmt: skip
    assert proc.returncode == 2 and "checkpoint.uri" in proc.stderr and "/etc" in proc.stderr, proc.stderr


def test_start_summary_prints_absolute_run_and_checkpoint_folders(tmp_path, monkeypatch, caplog):
    from tests.train_helpers import run_inprocess, tiny_overrides

    monkeypatch.chdir(tmp_path)
    overrides = tiny_overrides(Path("rel/run"), **{"schedule.total_steps": 4, "schedule.warmup.steps": 1})
    with caplog.at_level("INFO", logger="app.train.start"):
        rc, _ = run_inprocess([*overrides, "checkpoint.uri=rel/ck"], config=str(ROOT / "configs/demo.yaml"))
    assert rc == 0
    text = caplog.text
    assert f"in {tmp_path.resolve()}/rel/run (seed" in text
    assert f"checkpoints: {tmp_path.resolve()}/rel/ck;" in text


def test_export_refuses_a_system_folder_before_any_work(capsys):
    code = main(["export", "-c", str(ROOT / "configs/demo.yaml"), "--out", "/etc/warmstart-export"])
    _, err = capsys.readouterr()
    _one_config_error(code, err, "--out", "/etc")


def test_loading_a_config_of_any_task_kind_does_not_import_paddle():
    """Importing Paddle replaces the SIGTERM handler, so checking a config (task options included) must not."""
    code = (
        "import sys\n"
        "from app.config import load_config\n"
        "for kind in ('digits', 'ocr_rec', 'detection', 'nlp_seq_cls', 'nlp_token_cls'):\n"
        "    load_config(None, ['task.kind=' + kind], env={})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('paddle', 'paddlenlp', 'ppdet', 'paddleocr')))\n"
    )
    proc = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code], env=clean_env(PYTHONPATH=str(ROOT)), cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["ckpt", "gc", "/etc"], "URI"),
        (["ckpt", "gc", "file:///usr/lib/x"], "URI"),
        (["ckpt", "promote", "/etc", "--tag", "good"], "URI"),
        (["ckpt", "import", "/dev/null", "/etc"], "DEST_URI"),
        (["plot", "/tmp", "--out", "/etc/x.png"], "--out"),
        (["plan", "-c", "configs/demo.yaml", "--plot", "/etc/x.png"], "--plot"),
        (["launch", "--log-dir", "/etc", "--", "train", "-c", "configs/demo.yaml"], "--log-dir"),
    ],
)
def test_every_command_writing_locally_refuses_system_folders(argv, field, capsys, monkeypatch):
    """The output-folder rule holds for every command that writes or deletes in a local folder, checked
    before any work (nothing is read, written or deleted)."""
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"warmstart: config: {field}: "), err
    assert "system directory" in err[0]
