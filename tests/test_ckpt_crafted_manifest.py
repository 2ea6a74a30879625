"""Crafted manifests and step folders (issue #13 items 4, 6, 9): on a local folder and on S3 (moto).

A manifest that exists but cannot be read makes its step *unusable, kept*: ``ckpt ls`` shows it, ``ckpt
verify`` reports it and exits 4, resume skips it with a warning, and neither ``ckpt gc`` nor retention
after the next commit deletes it. Every command answers with one line, never a traceback, and the good
steps keep every file with the same sha256.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from ckpt_helpers import ckpt_cli as _cli
from ckpt_helpers import crafted_root, make_snapshot, manifest_of, save_steps, store_hashes

from app.checkpoint import CheckpointConfig, CheckpointManager, open_source
from app.checkpoint.catalog import scan
from app.errors import CheckpointError
from app.store.base import ObjectStore

BAD = 20  # the crafted step sits between two good ones: older than keep_last, newer than the oldest
GOOD = (10, 30)


def _valid() -> dict:
    return {
        "format": "warmstart-checkpoint",
        "version": 1,
        "step": BAD,
        "created_utc": "2026-01-01T00:00:00Z",
    }


def _with(data: dict, **changes: object) -> bytes:
    return json.dumps({**data, **changes}).encode()


def _file(name: object = "model.safetensors", size: object = 10, sha: object = "0" * 64) -> dict:
    return {"name": name, "size": size, "sha256": sha}


def _crafted(real: dict) -> dict[str, bytes]:
    """Manifests an attacker or a newer tool might leave; ``real`` is the step's own manifest."""
    files = real["files"]
    step = f'"step": {real["step"]}'.encode()
    return {
        "version 2": _with(real, version=2),
        "version missing": json.dumps({k: v for k, v in real.items() if k != "version"}).encode(),
        "version as string": _with(real, version="1"),
        "not json": b'{"format": "warmstart-checkpoint", "step": ',
        "a list": b"[1, 2, 3]",
        "a string": b'"manifest"',
        "a number": b"30",
        "null": b"null",
        "empty file": b"",
        "step 1e999": _with(real).replace(step, b'"step": 1e999'),
        "step huge int": _with(real).replace(step, b'"step": ' + b"9" * 40),
        "step 2**64": _with(real, step=2**64),
        "step negative": _with(real, step=-1),
        "step bool": _with(real, step=True),
        "step string": _with(real, step=str(BAD)),
        "step NaN": _with(real).replace(step, b'"step": NaN'),
        "step float": _with(real, step=20.0),
        "deep nesting": b'{"format": "warmstart-checkpoint", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        "duplicate key": _with(real).replace(b'"version": 1', b'"version": 1, "version": 1'),
        "not utf-8": b'{"format": "warmstart-\xff\xfe"}',
        "lone surrogate": _with(real, created_utc="\ud800"),
        "2 MB": _with(real, pad="x" * (2 << 20)),
        "files not a list": _with(real, files={"model.safetensors": 1}),
        "files missing": json.dumps({k: v for k, v in real.items() if k != "files"}).encode(),
        "entry not an object": _with(real, files=[*files, "meta.json"]),
        "entry extra key": _with(real, files=[{**files[0], "x": 1}, *files[1:]]),
        "backslash name": _with(real, files=[*files, _file("..\\..\\x")]),
        "dotdot name": _with(real, files=[*files, _file("..")]),
        "slash name": _with(real, files=[*files, _file("../../etc/passwd")]),
        "absolute name": _with(real, files=[*files, _file("/etc/passwd")]),
        "control char name": _with(real, files=[*files, _file("a\nb")]),
        "nul name": _with(real, files=[*files, _file("a\u0000b")]),
        "empty name": _with(real, files=[*files, _file("")]),
        "manifest as name": _with(real, files=[*files, _file("manifest.json")]),
        "name not a string": _with(real, files=[*files, _file(7)]),
        "duplicate names": _with(real, files=[*files, files[0]]),
        "negative size": _with(real, files=[{**files[0], "size": -5}, *files[1:]]),
        "size as string": _with(real, files=[{**files[0], "size": str(files[0]["size"])}, *files[1:]]),
        "size float": _with(real, files=[{**files[0], "size": 1.5}, *files[1:]]),
        "size 2**70": _with(real, files=[{**files[0], "size": 2**70}, *files[1:]]),
        "sha256 not hex": _with(real, files=[{**files[0], "sha256": "z" * 64}, *files[1:]]),
        "sha256 short": _with(real, files=[{**files[0], "sha256": "ab"}, *files[1:]]),
        "sha256 upper case": _with(
            real, files=[{**files[0], "sha256": files[0]["sha256"].upper()}, *files[1:]]
        ),
        "format wrong": _with(real, format="other"),
    }


CASES = sorted(_crafted({**_valid(), "files": [_file()]}))


#: Every case runs on the local store; these also on S3 (each S3 case costs a few seconds).
S3_CASES = {
    "version 2",
    "not json",
    "step 1e999",
    "deep nesting",
    "backslash name",
    "2 MB",
    "duplicate names",
}


@pytest.fixture
def root(store_uri: str, request: pytest.FixtureRequest) -> ObjectStore:
    return crafted_root(request, store_uri, [(10, 0.5), (BAD, 0.9), (30, 0.4)], S3_CASES)


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("warmstart:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("case", CASES)
def test_unreadable_manifest_is_unusable_and_kept(
    root: ObjectStore, case: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    crafted = _crafted(manifest_of(root, BAD))[case]
    root.put_bytes(f"step-{BAD:08d}/manifest.json", crafted, overwrite=True)
    bad_before = store_hashes(root, BAD)
    good_before = store_hashes(root, *GOOD)

    code, out, _ = _cli(capsys, "ls", root.uri)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "UNUSABLE (kept):" in rows[str(BAD)], out
    assert "committed" in rows["10"] and "committed" in rows["30"]

    code, out, _ = _cli(capsys, "ls", root.uri, "--verify")
    assert code == 4 and "UNUSABLE (kept):" in out and out.count("verified") == 2
    code, out, _ = _cli(capsys, "verify", root.uri)
    assert code == 4
    assert f"step {BAD}: UNUSABLE (kept):" in out and "step 10: OK" in out and "step 30: OK" in out

    code, _, err = _cli(capsys, "show", root.uri, "--step", str(BAD))
    assert code == 4 and f"step {BAD} is not a committed checkpoint" in _one_line_error(err)

    code, out, _ = _cli(capsys, "gc", root.uri)  # no flags: the case the issue reports
    assert code == 0 and f"step {BAD}" not in out
    code, out, _ = _cli(capsys, "gc", root.uri, "--keep-last", "1")
    assert code == 0 and "delete  step 10 (retention: keep_last=1)" in out and f"step {BAD}" not in out
    assert store_hashes(root, BAD) == bad_before
    assert store_hashes(root, 30) == {k: v for k, v in good_before.items() if k.startswith("step-00000030")}


@pytest.mark.parametrize(
    "case", ["version 2", "not json", "a list", "step 1e999", "deep nesting", "backslash name"]
)
def test_resume_skips_an_unusable_newest_step_and_retention_keeps_it(
    root: ObjectStore, case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crafted = _crafted(manifest_of(root, 30))[case]
    root.put_bytes("step-00000030/manifest.json", crafted, overwrite=True)
    kept = store_hashes(root, 30)
    mgr = CheckpointManager(
        root, CheckpointConfig(keep_last=1, keep_best=0, async_save=False), tmp_path / "s"
    )
    with caplog.at_level(logging.WARNING):
        loaded = mgr.load_latest()
    assert loaded is not None and loaded.ref.step == BAD
    assert any(
        "skipping checkpoint step 30" in r.message and "(unusable, kept)" in r.message for r in caplog.records
    )
    mgr.protect(loaded.ref)
    mgr.save(make_snapshot(40))  # retention after this commit: keep_last=1
    mgr.close()
    steps = {s.step: s for s in scan(root)}
    assert sorted(steps) == [BAD, 30, 40] and steps[30].unusable
    assert store_hashes(root, 30) == kept
    with pytest.raises(CheckpointError, match="cannot save step 30: .* manifest this tool cannot read"):
        mgr2 = CheckpointManager(root, CheckpointConfig(async_save=False), tmp_path / "s2")
        mgr2.save(make_snapshot(30))  # a re-save never replaces it
    assert store_hashes(root, 30) == kept


@pytest.mark.parametrize("case", ["backslash name", "step 1e999", "deep nesting", "version 2"])
def test_init_from_a_crafted_step_folder_is_a_checkpoint_error(
    root: ObjectStore, case: str, tmp_path: Path
) -> None:
    root.put_bytes(f"step-{BAD:08d}/manifest.json", _crafted(manifest_of(root, BAD))[case], overwrite=True)
    cfg = root.cfg if hasattr(root, "cfg") else None
    with pytest.raises(CheckpointError, match="manifest.json"):
        open_source(f"{root.uri}/step-{BAD:08d}", cfg, allow_pickle=False, staging_dir=tmp_path / "i")


def test_empty_step_folder_and_folder_without_manifest_are_reported_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """Warnings are checked first: ``main()`` re-configures logging, which drops caplog's handler."""
    from app.store import open_store

    uri = str(tmp_path / "ckpts")
    store = open_store(uri)
    save_steps(store, tmp_path / "stage", [(10, 0.5)])
    (tmp_path / "ckpts" / "step-00000050").mkdir()
    store.put_bytes("step-00000040/model.safetensors", b"torn")
    with caplog.at_level(logging.WARNING):
        loaded = CheckpointManager(store, CheckpointConfig(), tmp_path / "s").load_latest()
    assert loaded is not None and loaded.ref.step == 10
    warned = [r.message for r in caplog.records if "skipping checkpoint step" in r.message]
    assert any("step 50" in m and "empty folder" in m for m in warned)
    assert any("step 40" in m for m in warned)
    code, out, _ = _cli(capsys, "ls", uri)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and sorted(rows) == ["10", "40", "50"]
    assert "TORN: empty folder, manifest.json missing (not committed)" in rows["50"]
    assert "TORN: manifest.json missing (not committed)" in rows["40"]
    code, out, err = _cli(capsys, "gc", uri)
    assert code == 0 and "delete  step 50 (uncommitted, empty folder)" in out and "deleted 1 step" in out
    # Files but no start marker: its age is unknown (another tool may be copying it in), so it is kept.
    assert "step 40" not in out and "keeping uncommitted step 40" in err and "age is unknown" in err
    assert sorted(p.name for p in (tmp_path / "ckpts").iterdir()) == ["step-00000010", "step-00000040"]
    assert (tmp_path / "ckpts" / "step-00000040" / "model.safetensors").read_bytes() == b"torn"


def test_empty_folder_marker_on_s3_is_reported_and_collected(
    s3_bucket: str,
    s3_store_config,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app.store import open_store
    from tests.conftest import s3_client

    uri = f"s3://{s3_bucket}/ckpts"
    store = open_store(uri, s3_store_config)
    save_steps(store, tmp_path / "stage", [(10, 0.5)])
    s3_client(s3_store_config.endpoint_url).put_object(Bucket=s3_bucket, Key="ckpts/step-00000050/", Body=b"")
    monkeypatch.setenv("WARMSTART_S3_ENDPOINT_URL", s3_store_config.endpoint_url)
    monkeypatch.setenv("WARMSTART_S3_REGION", "us-east-1")
    monkeypatch.setenv("WARMSTART_S3_ADDRESSING_STYLE", "path")
    code, out, _ = _cli(capsys, "ls", uri)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "TORN: empty folder, manifest.json missing (not committed)" in rows["50"]
    code, out, _ = _cli(capsys, "gc", uri)
    assert code == 0 and "delete  step 50 (uncommitted, empty folder)" in out and "deleted 1 step" in out
    keys = s3_client(s3_store_config.endpoint_url).list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert not any(k["Key"].startswith("ckpts/step-00000050") for k in keys)
    assert sum(k["Key"].startswith("ckpts/step-00000010/") for k in keys) == 5
