"""The container ``entrypoint``: env vars -> arguments, direct subcommands, the fallback, and ``exec``.

Run as a container would: a clean environment holding only the variables under test. Some tests put a
stand-in ``warmstart`` (a shell script that prints its PID and arguments) first on PATH to see exactly
what the entrypoint runs; the others run the real console script from the venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "entrypoint"
VENV_BIN = Path(sys.executable).parent  # holds the `warmstart` console script
SYSTEM_PATH = "/usr/bin:/bin"

FAKE_WARMSTART = """#!/bin/sh
echo "pid=$$"
for a in "$@"; do echo "arg=$a"; done
"""


def base_env(path: str, **extra: str) -> dict[str, str]:
    """No WARMSTART_* from the developer's shell leaks in."""
    env = {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def make_fake(bin_dir: Path, name: str) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(FAKE_WARMSTART)
    path.chmod(0o755)
    return path


def fake_args(stdout: str) -> list[str]:
    return [line[4:] for line in stdout.splitlines() if line.startswith("arg=")]


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    make_fake(tmp_path / "bin", "warmstart")
    return tmp_path / "bin"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text("run:\n  name: from-file\n  seed: 1\ntrain:\n  batch_size: 16\n")
    return path


def test_is_executable_posix_sh() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(ENTRYPOINT)], check=True)  # parses as POSIX sh


def test_defaults_map_to_train_with_demo_config(fake_bin: Path) -> None:
    result = run([], base_env(f"{fake_bin}:{SYSTEM_PATH}"))
    assert result.returncode == 0, result.stderr
    assert fake_args(result.stdout) == ["train", "--config", "/app/configs/demo.yaml"]


def test_env_and_args_are_mapped_in_order_without_globbing(fake_bin: Path, tmp_path: Path) -> None:
    (tmp_path / "match-me").write_text("")  # a `*` that globbed would expand to this file
    env = base_env(
        f"{fake_bin}:{SYSTEM_PATH}",
        WARMSTART_COMMAND="plan",
        WARMSTART_CONFIG="/cfg/my job.yaml",
        WARMSTART_ARGS="  --set  run.notes=*   --set schedule.base_lr=0.01 ",
    )
    result = run(["--set", "run.seed=3", "two words"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert fake_args(result.stdout) == [
        "plan",
        "--config",
        "/cfg/my job.yaml",
        "--set",
        "run.notes=*",
        "--set",
        "schedule.base_lr=0.01",
        "--set",
        "run.seed=3",
        "two words",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["ckpt", "ls", "s3://bucket/run"],
        ["train", "--config", "x.yaml"],
        ["plan", "--config", "x.yaml"],
        ["config", "--config", "x.yaml"],
        ["plot", "runs/run"],
        ["--help"],
        ["-h"],
        ["--version"],
        ["-v", "train", "--config", "x.yaml"],
    ],
)
def test_subcommand_or_global_option_runs_as_given(fake_bin: Path, argv: list[str]) -> None:
    env = base_env(f"{fake_bin}:{SYSTEM_PATH}", WARMSTART_COMMAND="train", WARMSTART_ARGS="--set a=1")
    result = run(argv, env)
    assert result.returncode == 0, result.stderr
    assert fake_args(result.stdout) == argv  # neither WARMSTART_COMMAND, _CONFIG nor _ARGS added


def test_execs_so_signals_reach_warmstart(fake_bin: Path) -> None:
    """The shell's PID, the entrypoint's and warmstart's are one process: every step is an exec."""
    result = subprocess.run(
        ["sh", "-c", 'echo "shell=$$"; exec "$0"', str(ENTRYPOINT)],
        env=base_env(f"{fake_bin}:{SYSTEM_PATH}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["shell"] == lines["pid"]


def test_falls_back_to_python_module_when_not_installed(tmp_path: Path) -> None:
    make_fake(tmp_path / "bin", "python")
    result = run(["ckpt", "ls", "/tmp"], base_env(f"{tmp_path / 'bin'}:{SYSTEM_PATH}"))
    assert result.returncode == 0, result.stderr
    assert fake_args(result.stdout) == ["-m", "app.cli", "ckpt", "ls", "/tmp"]


def test_real_fallback_runs_the_cli(tmp_path: Path, config_file: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python"  # the venv's python (a symlink would lose the venv), no `warmstart`
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = base_env(f"{bin_dir}:{SYSTEM_PATH}", WARMSTART_COMMAND="config", WARMSTART_CONFIG=str(config_file))
    result = run(["--json"], env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["run"]["name"] == "from-file"


def real_env(**extra: str) -> dict[str, str]:
    return base_env(f"{VENV_BIN}:{SYSTEM_PATH}", **extra)


def test_env_only_resolves_file_env_var_and_set(config_file: Path, tmp_path: Path) -> None:
    env = real_env(
        WARMSTART_COMMAND="config",
        WARMSTART_CONFIG=str(config_file),
        WARMSTART_CHECKPOINT_URI="s3://ckpts/run-7",
        WARMSTART_INIT_FROM="s3://models/base#best",
        WARMSTART_ARGS="--set train.batch_size=8",
    )
    result = run(["--set", "run.seed=3", "--json"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    cfg = json.loads(result.stdout)
    assert cfg["run"]["name"] == "from-file"  # the file
    assert cfg["checkpoint"]["uri"] == "s3://ckpts/run-7"  # env var read by the config loader
    assert cfg["init"]["from"] == "s3://models/base#best"
    assert cfg["train"]["batch_size"] == 8  # WARMSTART_ARGS
    assert cfg["run"]["seed"] == 3  # arguments


def test_set_beats_env_var(config_file: Path, tmp_path: Path) -> None:
    env = real_env(WARMSTART_COMMAND="config", WARMSTART_CONFIG=str(config_file), WARMSTART_SEED="5")
    result = run(["--json"], env, cwd=tmp_path)
    assert json.loads(result.stdout)["run"]["seed"] == 5
    result = run(["--json", "--set", "run.seed=9"], env, cwd=tmp_path)
    assert json.loads(result.stdout)["run"]["seed"] == 9


def test_direct_subcommand_ignores_mapping_env(config_file: Path, tmp_path: Path) -> None:
    env = real_env(WARMSTART_COMMAND="train", WARMSTART_CONFIG="/does/not/exist.yaml")
    result = run(["config", "--config", str(config_file), "--json"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["train"]["batch_size"] == 16


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "does not exist"),
        ("run:\n  seed: [oops\n", "config file"),
        ("run:\n  nmae: x\n", "nmae"),
    ],
)
def test_bad_config_exits_2_with_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "bad.yaml"
    if content is not None:
        path.write_text(content)
    result = run([], real_env(WARMSTART_COMMAND="config", WARMSTART_CONFIG=str(path)), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("warmstart: config: ") and message in lines[0]
    assert result.stdout == ""


def test_header_and_docs_list_every_documented_env_var() -> None:
    from app.config.load import ENV_VARS

    header = ENTRYPOINT.read_text()
    docs = (ROOT / "docs" / "entrypoint.md").read_text()
    mapped = ["WARMSTART_CONFIG", "WARMSTART_COMMAND", "WARMSTART_ARGS"]
    credentials = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]
    credentials += ["OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_ENDPOINT", "OSS_REGION"]
    for var in [*ENV_VARS, *mapped, *credentials]:
        assert var in header, var
        assert f"`{var}`" in docs, var
    for var, key in ENV_VARS.items():
        assert f"| `{var}` | `{key}` |" in docs, var
