"""Security: poisoned pickles never run without the opt-in, manifests and keys cannot escape the
download folder, and the container image drops root. (Credential scans: test_fault_store.py.)"""

from __future__ import annotations

import json
import pathlib
import pickle
import re
import subprocess
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import s3_client
from tests.faults.harness import ROOT, VENV_BIN, base_overrides, clean_env, events, record, reference, sets

_FIGURES: dict[str, object] = {}


class _Poison:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204  (what a malicious checkpoint does: run code when unpickled)
        return (pathlib.Path.touch, (self.marker,))


def _poison(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"linear.weight": _Poison(marker)}, protocol=4))
    return path


def _note(key: str, value: object) -> None:
    _FIGURES[key] = value
    record("security", _FIGURES)


def _one_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    ("name", "allow", "words"),
    [
        (
            "w.pdparams",
            False,
            "is a pickle (found by its content); loading it can run arbitrary code, so it is refused",
        ),
        ("w.safetensors", True, "is a pickle/zip file, not safetensors; refusing to unpickle it"),
        # found by content, whatever the name: the same refusal for names that do not say "pickle"
        *(
            (name, False, "is a pickle (found by its content); loading it can run arbitrary code")
            for name in ("weights.bin", "model.pt", "noext", "vocab.txt")
        ),
    ],
)
def test_poisoned_pickle_never_runs_without_opt_in(tmp_path, capsys, monkeypatch, name, allow, words):
    monkeypatch.chdir(ROOT)
    marker = tmp_path / "PWNED"
    weights = _poison(tmp_path / name, marker)
    ov = base_overrides(
        tmp_path / "run", **{"init.from": str(weights), "init.allow_pickle": str(allow).lower()}
    )
    rc = main(["train", "-c", "configs/demo.yaml", *sets(ov)])
    line = _one_line(capsys.readouterr().err)
    assert rc == 4 and line.startswith("warmstart: checkpoint: ") and words in line
    assert not marker.exists()
    _note(f"poisoned {name} (allow_pickle={allow})", "refused, payload not run")


def test_ckpt_import_refuses_without_allow_pickle_and_the_payload_is_live(tmp_path):
    marker = tmp_path / "PWNED"
    weights = _poison(tmp_path / "w.pdparams", marker)
    cmd = [str(VENV_BIN / "warmstart"), "ckpt", "import", str(weights), str(tmp_path / "dest")]
    refused = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True)
    assert refused.returncode == 4 and "--allow-pickle" in _one_line(refused.stderr)
    assert not marker.exists() and not (tmp_path / "dest").exists()
    # Control: with the opt-in the same file does run its payload, so the test above could have failed.
    allowed = subprocess.run(
        [*cmd, "--allow-pickle"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
    )
    assert marker.exists(), allowed.stderr[-2000:]
    _note("ckpt import without --allow-pickle", "refused (exit 4), payload not run; with the flag it runs")


def _upload_reference(client, bucket: str, prefix: str, steps: tuple[int, ...]) -> None:
    for step in steps:
        for path in (reference() / f"step-{step:08d}").iterdir():
            client.put_object(
                Bucket=bucket, Key=f"{prefix}/step-{step:08d}/{path.name}", Body=path.read_bytes()
            )


@pytest.mark.parametrize("evil", ["../../escaped.json", "/tmp/escaped-abs.json", "sub/../../escaped.json"])
def test_manifest_naming_a_path_outside_the_folder_is_refused(
    tmp_path, s3_server, s3_bucket, capsys, monkeypatch, evil
):
    monkeypatch.chdir(ROOT)
    client = s3_client(s3_server)
    _upload_reference(client, s3_bucket, "run", (35, 40))
    key = "run/step-00000040/manifest.json"
    manifest = json.loads(client.get_object(Bucket=s3_bucket, Key=key)["Body"].read())
    manifest["files"].append({"name": evil, "size": 2, "sha256": "0" * 64})
    client.put_object(Bucket=s3_bucket, Key=key, Body=json.dumps(manifest).encode())
    client.put_object(Bucket=s3_bucket, Key=f"run/step-00000040/{evil.lstrip('/')}", Body=b"{}")
    monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    rc = main(["ckpt", "verify", f"s3://{s3_bucket}/run", "--step", "40"])
    out = capsys.readouterr()
    assert rc == 4 and "warmstart: checkpoint: step 40 is not a committed checkpoint" in out.err
    ov = base_overrides(
        tmp_path / "run", **{"checkpoint.uri": f"s3://{s3_bucket}/run", "schedule.total_steps": 36}
    )
    rc = main(["train", "-c", "configs/demo.yaml", *sets(ov)])
    err = capsys.readouterr().err
    assert rc == 0 and "skipping checkpoint step 40" in err and "invalid file name" in err, err[-1500:]
    assert [e["step"] for e in events(tmp_path / "run" / "log.jsonl", "resume")] == [35]
    written = [p for p in tmp_path.parent.rglob("escaped*")] + [p for p in Path("/tmp").glob("escaped*")]
    assert written == []
    _note(f"manifest naming {evil}", "refused; run fell back to the previous step; nothing written outside")


def test_object_key_with_dot_dot_in_a_step_folder_is_never_followed(
    tmp_path, s3_server, s3_bucket, capsys, monkeypatch
):
    monkeypatch.chdir(ROOT)
    client = s3_client(s3_server)
    _upload_reference(client, s3_bucket, "run", (35, 40))
    client.put_object(Bucket=s3_bucket, Key="run/step-00000040/../../../escaped-key.json", Body=b"{}")
    monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    ov = base_overrides(tmp_path / "run", **{"checkpoint.uri": f"s3://{s3_bucket}/run",
                                             "schedule.total_steps": 45})  # fmt: skip
    rc = main(["train", "-c", "configs/demo.yaml", *sets(ov)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert rc == 0, err[-2000:]
    assert [e["step"] for e in events(tmp_path / "run" / "log.jsonl", "resume")] == [40]
    assert [p for p in tmp_path.parent.rglob("escaped*")] + list(Path("/tmp").glob("escaped*")) == []
    _note("object key with '..' in a step folder", "listed but never downloaded or followed")


def _final_stage_user(text: str) -> str | None:
    stages = re.split(r"(?im)^\s*FROM\s", text)
    users = re.findall(r"(?im)^\s*USER\s+(\S+)", stages[-1])
    return users[-1] if users else None


def test_container_runs_as_non_root():
    dockerfile = ROOT / "Dockerfile"
    if not dockerfile.exists():
        pytest.skip("no Dockerfile in the repository yet: nothing to check")
    user = _final_stage_user(dockerfile.read_text())
    assert user is not None, "the final stage sets no USER: the container would run as root"
    assert user.split(":")[0] not in ("root", "0"), f"the final stage runs as {user}"
    _note("container user", user)
