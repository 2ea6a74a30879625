"""``warmstart ckpt`` commands: output and exit codes, on a local folder and on S3 (moto)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import flip_byte, save_steps

from app.checkpoint import open_source
from app.cli import main
from app.store import open_store
from app.store.config import StoreConfig


@pytest.fixture
def root(tmp_path: Path) -> str:
    uri = str(tmp_path / "ckpts")
    save_steps(open_store(uri), tmp_path / "stage", [(10, 0.5), (20, 0.9), (30, 0.4)])
    open_store(uri).put_bytes("step-00000040/model.safetensors", b"torn")
    return uri


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(["ckpt", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_committed_and_torn(root: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "ls", root)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["STEP", "TIME", "(UTC)", "SIZE", "STATUS", "TAGS", "METRICS"]
    assert [line.split()[0] for line in lines[1:]] == ["40", "30", "20", "10"]
    assert "TORN: manifest.json missing (not committed)" in lines[1]
    assert re.search(
        r"^30\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+[\d.]+ (B|KiB)\s+committed\s+-\s+accuracy=0.4$", lines[2]
    )


def test_ls_verify_flags_a_flipped_byte(root: str, capsys: pytest.CaptureFixture) -> None:
    flip_byte(open_store(root), "step-00000020/optimizer.safetensors")
    code, out, _ = run(capsys, "ls", root, "--verify")
    assert code == 4
    row = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "verified" in row["30"] and "verified" in row["10"]
    assert "CORRUPT:" in row["20"] and "optimizer.safetensors: sha256 mismatch" in row["20"]


def test_show_latest_step_and_tag(root: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "show", root)
    assert code == 0
    assert f"checkpoint:     {root}/step-00000030" in out and "step:           30" in out
    assert "metrics:      accuracy=0.4" in out and "config hash:  abc123" in out
    assert re.search(r"model\.safetensors\s+[\d.]+ (B|KiB)\s+sha256 [0-9a-f]{64}", out)
    assert "global_batch_size: 8" in out and "scheduler: <dict of 1>" in out
    code, out, _ = run(capsys, "show", root, "--step", "10")
    assert code == 0 and "step:           10" in out
    code, _, err = run(capsys, "show", root, "--step", "40")
    assert code == 4 and "step 40 is not a committed checkpoint" in err


def test_verify_ok_then_mismatch_names_the_file(root: str, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "verify", root)
    assert code == 0
    assert (
        out.splitlines()
        == [
            line
            for line in out.splitlines()
            if re.match(r"step (10|20|30): OK \(4 files, .*, sha256 verified\)", line)
        ]
        and len(out.splitlines()) == 3
    )
    flip_byte(open_store(root), "step-00000030/model.safetensors", offset=200)
    code, out, _ = run(capsys, "verify", root, "--step", "30")
    assert code == 4
    assert f"step 30: FAILED: {root}/step-00000030/model.safetensors: sha256 mismatch" in out
    code, out, _ = run(capsys, "verify", root, "--step", "20")
    assert code == 0 and out.startswith("step 20: OK")


def test_gc_dry_run_then_delete(root: str, capsys: pytest.CaptureFixture) -> None:
    args = ["gc", root, "--keep-last", "1", "--keep-best", "1", "--metric", "accuracy", "--mode", "max"]
    code, out, _ = run(capsys, *args, "--dry-run")
    assert code == 0
    assert "keep    step 20 (best)" in out and "keep    step 30 (last)" in out
    assert "would delete  step 10 (retention: keep_last=1, keep_best=1 by accuracy (max))" in out
    assert "step 40" not in out  # files but no start marker: age unknown, kept (and logged)
    assert "dry run: nothing deleted (1 would be)" in out
    assert sorted(p.name for p in Path(root).iterdir()) == [f"step-000000{n}0" for n in (1, 2, 3, 4)]
    code, out, _ = run(capsys, *args)
    assert code == 0 and out.splitlines()[-1] == "deleted 1 step folder(s)"
    assert sorted(p.name for p in Path(root).iterdir()) == ["step-00000020", "step-00000030", "step-00000040"]


def test_promote_protects_and_resolves_tag(root: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(capsys, "promote", root, "--tag", "v1", "--step", "10", "--note", "baseline")
    assert code == 0 and out.startswith(f"promoted step 10 of {root} as 'v1'")
    assert f"init.from={root}#v1" in out
    tag = json.loads((Path(root) / "tags" / "v1.json").read_text())
    assert tag["step"] == 10 and tag["note"] == "baseline" and len(tag["manifest_sha256"]) == 64
    code, _, err = run(capsys, "promote", root, "--tag", "v1")
    assert code == 4 and "tag 'v1' already exists" in err
    code, out, _ = run(capsys, "show", f"{root}#v1")
    assert code == 0 and "step:           10" in out and "tags:           v1" in out
    code, out, _ = run(capsys, "ls", root)
    assert re.search(r"^10\s.*\sv1\s+accuracy=0.5$", out, re.M)
    code, out, _ = run(capsys, "gc", root, "--keep-last", "1", "--keep-best", "0")
    assert "keep    step 10 (tag v1)" in out and (Path(root) / "step-00000010" / "manifest.json").exists()
    loaded = open_source(f"{root}#v1", None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert loaded.ref.step == 10
    code, _, err = run(capsys, "show", f"{root}#v2")
    assert code == 4 and "no tag 'v2'" in err and "known tags: v1" in err


def test_import_pdparams(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import paddle

    with paddle.utils.unique_name.guard():
        model = paddle.nn.Linear(3, 2)
    src = tmp_path / "pretrained.pdparams"
    paddle.save(model.state_dict(), str(src))
    dest = str(tmp_path / "imported")
    code, _, err = run(capsys, "import", str(src), dest)
    assert code == 4 and "is a pickle" in err and "--allow-pickle" in err
    assert not Path(dest).exists()
    code, out, _ = run(capsys, "import", str(src), dest, "--allow-pickle", "--step", "5")
    assert code == 0 and out.startswith(f"imported {src} -> {dest}/step-00000005 (manifest sha256 ")
    loaded = open_source(
        dest, None, allow_pickle=False, staging_dir=tmp_path / "s"
    )  # pickle-free from now on
    assert loaded.ref.step == 5 and loaded.meta["source"] == str(src)
    assert np.array_equal(loaded.tensors["model"]["weight"], model.weight.numpy())
    assert np.array_equal(loaded.tensors["model"]["bias"], model.bias.numpy())


def test_cli_on_s3_uses_env_store_options(
    s3_bucket: str,
    s3_store_config: StoreConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    uri = f"s3://{s3_bucket}/ckpts"
    save_steps(open_store(uri, s3_store_config), tmp_path / "stage", [(1, 0.1), (2, 0.2), (3, 0.3)])
    monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", s3_store_config.endpoint_url)
    monkeypatch.setenv("WARMSTART_S3_REGION", "us-east-1")
    monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    code, out, _ = run(capsys, "ls", uri, "--verify")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["3", "2", "1"]
    assert all("verified" in line for line in out.splitlines()[1:])
    assert run(capsys, "promote", uri, "--tag", "best")[0] == 0
    code, out, _ = run(capsys, "gc", uri, "--keep-last", "1", "--keep-best", "0")
    assert code == 0 and "delete  step 2 (retention" in out and "keep    step 3 (last, tag best)" in out
    keys = [info.key for info in open_store(uri, s3_store_config).list("")]
    assert not any(k.startswith(("step-00000001/", "step-00000002/")) for k in keys)
    assert "tags/best.json" in keys
    code, out, _ = run(capsys, "verify", f"{uri}#best")
    assert code == 0 and out.startswith("step 3: OK")
