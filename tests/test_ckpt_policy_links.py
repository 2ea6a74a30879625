"""Retention policy input, promote tag names, links out of a local root, identical bytes for identical
tensors, and crafted safetensors headers (issue #13 items 3, 6, 8 and 9)."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import expected_tensors, make_snapshot, save_steps, store_hashes

from app.checkpoint import CheckpointConfig, CheckpointManager
from app.checkpoint import reader as reader_module
from app.checkpoint.catalog import scan
from app.checkpoint.retention import plan_retention
from app.checkpoint.tensorio import read_tensors, write_tensors
from app.cli import main
from app.errors import CheckpointError, ConfigError
from app.store import open_store
from app.store.base import AccessDeniedError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    save_steps(open_store(str(tmp_path / "ckpts")), tmp_path / "stage", [(10, 0.5), (20, 0.9), (30, 0.4)])
    return tmp_path / "ckpts"


def _cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["ckpt", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# -- item 3: one validation for every retention policy -------------------------------------------
@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--keep-last", "0"], "--keep-last"),
        (["--keep-last", "-1"], "--keep-last"),
        (["--keep-best", "-1"], "--keep-best"),
        (["--leftover-minutes", "-5"], "--leftover-minutes"),
        (["--leftover-minutes", "nan"], "--leftover-minutes"),
        (["--leftover-minutes", "inf"], "--leftover-minutes"),
        (["--keep-best", "2"], "--keep-best needs --metric"),
    ],
)
def test_gc_rejects_a_bad_policy_before_deleting_anything(
    root: Path, flags: list[str], named: str, capsys: pytest.CaptureFixture
) -> None:
    before = _tree(root)
    for extra in ([], ["--dry-run"]):
        code, out, err = _cli(capsys, "gc", str(root), *flags, *extra)
        assert code == 2 and out == ""
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("warmstart: ") and named in lines[0]
    assert _tree(root) == before


@pytest.mark.parametrize("value", [0, -1, True])
def test_config_policy_uses_the_same_check(value: object) -> None:
    with pytest.raises(ConfigError, match=r"checkpoint\.keep_last: must be an integer >= 1"):
        CheckpointConfig(keep_last=value).validate("checkpoint")  # type: ignore[arg-type]


def test_gc_never_deletes_the_newest_committed_step() -> None:
    keep, delete, reasons = plan_retention({10: 0.5, 20: 0.9, 30: None}, 0, 0, "max")
    assert keep == [30] and delete == [10, 20] and reasons[30] == ["newest"]


def test_gc_printout_does_not_claim_keep_best_without_a_metric(
    root: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = _cli(capsys, "gc", str(root), "--keep-last", "1", "--dry-run")
    assert code == 0 and "keep_best" not in out and "best" not in out
    assert "would delete  step 10 (retention: keep_last=1)" in out
    assert "would delete  step 20 (retention: keep_last=1)" in out


# -- item 9: promote with a bad tag name is a usage error found first ------------------------------
@pytest.mark.parametrize("tag", ["../x", "a b", "", "-lead", "x" * 101, "a/b", "v1\n", "v1\\x", "..", "é"])
def test_promote_bad_tag_is_usage_error_before_hashing(
    root: Path, tag: str, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_hashing(*_a: object, **_k: object) -> None:
        raise AssertionError("verify ran before the tag name was checked")

    monkeypatch.setattr(reader_module, "verify", no_hashing)
    code, out, err = _cli(capsys, "promote", str(root), f"--tag={tag}")
    assert code == 2 and out == "" and "--tag: invalid tag name" in err
    assert not (root / "tags").exists()


# -- item 8 (last sentence): nothing is read through a link out of the root ------------------------
def test_manifest_symlink_out_of_the_root_is_not_followed(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_bytes((root / "step-00000030" / "manifest.json").read_bytes())
    (root / "step-00000030" / "manifest.json").unlink()
    (root / "step-00000030" / "manifest.json").symlink_to(outside / "manifest.json")
    good = _tree(root / "step-00000010") | _tree(root / "step-00000020")
    code, out, _ = _cli(capsys, "ls", str(root))
    row = next(line for line in out.splitlines() if line.startswith("30 "))
    assert code == 0 and "UNUSABLE (kept):" in row and "outside the store root" in row
    code, out, _ = _cli(capsys, "verify", str(root))
    assert code == 4 and "step 30: UNUSABLE (kept):" in out
    loaded = CheckpointManager(open_store(str(root)), CheckpointConfig(), tmp_path / "s").load_latest()
    assert loaded is not None and loaded.ref.step == 20
    assert _cli(capsys, "gc", str(root), "--keep-last", "1")[0] == 0
    assert (root / "step-00000030" / "manifest.json").is_symlink() and (outside / "manifest.json").is_file()
    assert _tree(root / "step-00000020") == {
        k: v for k, v in good.items() if k in _tree(root / "step-00000020")
    }


def test_data_file_symlink_out_of_the_root_fails_verification(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "model.safetensors"
    target = root / "step-00000030" / "model.safetensors"
    outside.write_bytes(target.read_bytes())  # same bytes: only the link itself is wrong
    target.unlink()
    target.symlink_to(outside)
    mgr = CheckpointManager(open_store(str(root)), CheckpointConfig(), tmp_path / "s")
    loaded = mgr.load_latest()
    assert loaded is not None and loaded.ref.step == 20
    with pytest.raises(CheckpointError, match="outside the store root"):
        mgr.load(next(s.ref for s in scan(mgr.store) if s.step == 30))


def test_symlinked_step_folder_is_never_read_or_written_through(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "keep.txt").write_text("not ours")
    (root / "step-00000040").symlink_to(outside, target_is_directory=True)
    (root / "tags").mkdir()
    (root / "tags" / "evil.json").symlink_to(outside / "keep.txt")
    store = open_store(str(root))
    with pytest.raises(AccessDeniedError, match="outside the store root"):
        store.get_bytes("step-00000040/keep.txt")
    mgr = CheckpointManager(store, CheckpointConfig(keep_last=1, async_save=False), tmp_path / "s")
    assert mgr.load_latest().ref.step == 30
    with pytest.raises(AccessDeniedError, match="outside the store root"):
        mgr.save(make_snapshot(40))  # refused: the folder leads out of the root
    mgr.save(make_snapshot(50))  # retention runs: the link and its target are left alone
    mgr.close()
    assert sorted(os.listdir(outside)) == ["keep.txt"] and (outside / "keep.txt").read_text() == "not ours"
    assert (root / "step-00000040").is_symlink()


# -- item 9: same tensors, same bytes ------------------------------------------------------------
_SAVE_SCRIPT = """
import hashlib, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.ckpt_helpers import expected_tensors
from app.checkpoint.tensorio import write_tensors
tensors = expected_tensors(7)["model"]
names = list(tensors)[::-1] if sys.argv[3] == "reversed" else list(tensors)
write_tensors({n: tensors[n] for n in names}, Path(sys.argv[2]), "t")
print(hashlib.sha256(Path(sys.argv[2]).read_bytes()).hexdigest())
"""


def test_same_tensors_give_the_same_bytes_across_processes_and_dict_orders(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    digests = set()
    for i, (order, seed) in enumerate(
        [("plain", "0"), ("reversed", "1"), ("plain", "12345"), ("reversed", "7")]
    ):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": f"{root}:{root / 'tests'}"}
        result = subprocess.run(
            [sys.executable, "-c", _SAVE_SCRIPT, str(root), str(tmp_path / f"{i}.safetensors"), order],
            capture_output=True, text=True, env=env, timeout=300, check=True,
        )  # fmt: skip
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_two_saves_of_the_same_state_have_equal_file_hashes(tmp_path: Path) -> None:
    a, b = open_store(str(tmp_path / "a")), open_store(str(tmp_path / "b"))
    save_steps(a, tmp_path / "sa", [(5, 0.1)])
    snap = make_snapshot(5, {"accuracy": 0.1})
    snap.tensors = {g: dict(reversed(list(t.items()))) for g, t in reversed(list(snap.tensors.items()))}
    mgr = CheckpointManager(b, CheckpointConfig(async_save=False), tmp_path / "sb")
    mgr.save(snap)
    mgr.close()
    ha, hb = store_hashes(a, 5), store_hashes(b, 5)
    for name in ("model.safetensors", "optimizer.safetensors"):
        assert ha[f"step-00000005/{name}"] == hb[f"step-00000005/{name}"]


# -- item 6: crafted safetensors headers ---------------------------------------------------------
def _file_with_header(header: bytes, data: bytes = b"\0" * 16) -> bytes:
    return struct.pack("<Q", len(header)) + header + data


def _entry(**changes: object) -> bytes:
    entry = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], **changes}
    return json.dumps({"w": entry}).encode()


HEADERS = {
    "deep nesting": b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "offset 1e999": _entry().replace(b"[0, 16]", b"[0, 1e999]"),
    "offset huge int": _entry().replace(b"[0, 16]", b"[0, " + b"9" * 50 + b"]"),
    "offset past the data": _entry(data_offsets=[0, 1 << 40], shape=[1 << 38]),
    "offsets mismatch shape": _entry(data_offsets=[0, 8]),
    "negative offset": _entry(data_offsets=[-16, 0]),
    "unknown dtype": _entry(dtype="F128"),
    "dtype not a string": _entry(dtype=["F32"]),
    "shape negative": _entry(shape=[-4]),
    "shape float": _entry(shape=[4.0]),
    "shape huge": _entry(shape=[1 << 62, 1 << 62]),
    "entry a list": json.dumps({"w": [1, 2]}).encode(),
    "entry extra key": _entry(x=1),
    "metadata not strings": json.dumps({"__metadata__": {"a": 1}}).encode(),
    "a list": b"[]",
    "NaN": _entry().replace(b"[0, 16]", b"[0, NaN]"),
    "not utf-8": b'{"w\xff": 1}',
}


@pytest.mark.parametrize("case", sorted(HEADERS))
def test_crafted_safetensors_header_is_a_checkpoint_error(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(_file_with_header(HEADERS[case]))
    with pytest.raises(CheckpointError, match="is not a safetensors file"):
        read_tensors(path, str(path))


def test_written_file_reads_back_exactly(tmp_path: Path) -> None:
    tensors = {**expected_tensors(3)["model"], "scalar": np.array(2.5, np.float32), "empty": np.zeros((0, 2))}
    write_tensors(tensors, tmp_path / "t.safetensors", "t")
    back = read_tensors(tmp_path / "t.safetensors", "t")
    assert sorted(back) == sorted(tensors)
    for name, array in tensors.items():
        assert back[name].dtype == array.dtype and back[name].shape == array.shape
        assert np.array_equal(back[name], array)


def test_gc_deleting_a_step_removes_a_link_never_its_target(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    outside = tmp_path / "precious.safetensors"
    link = root / "step-00000010" / "model.safetensors"
    outside.write_bytes(link.read_bytes())
    link.unlink()
    link.symlink_to(outside)
    digest = hashlib.sha256(outside.read_bytes()).hexdigest()
    code, out, _ = _cli(capsys, "gc", str(root), "--keep-last", "2")
    assert code == 0 and "delete  step 10" in out and out.splitlines()[-1] == "deleted 1 step folder(s)"
    assert not (root / "step-00000010").exists()
    assert hashlib.sha256(outside.read_bytes()).hexdigest() == digest


@pytest.mark.timeout(300)
def test_a_fifo_in_place_of_a_manifest_or_tag_never_blocks(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (root / "step-00000030" / "manifest.json").unlink()
    os.mkfifo(root / "step-00000030" / "manifest.json")
    (root / "tags").mkdir()
    os.mkfifo(root / "tags" / "v1.json")
    code, out, _ = _cli(capsys, "ls", str(root))
    row = next(line for line in out.splitlines() if line.startswith("30 "))
    assert code == 0 and "UNUSABLE (kept):" in row and "not a regular file" in row
    code, out, _ = _cli(capsys, "verify", str(root))
    assert code == 4 and "step 20: OK" in out
    loaded = CheckpointManager(open_store(str(root)), CheckpointConfig(), tmp_path / "s").load_latest()
    assert loaded is not None and loaded.ref.step == 20


def test_gc_keeps_the_newest_intact_step_when_a_newer_one_is_torn(
    root: Path, capsys: pytest.CaptureFixture
) -> None:
    (root / "step-00000030" / "optimizer.safetensors").unlink()  # committed, but not intact
    code, out, _ = _cli(capsys, "gc", str(root), "--keep-last", "1")
    assert code == 0 and "keep    step 20 (newest intact)" in out and "keep    step 30 (last)" in out
    assert sorted(p.name for p in root.iterdir()) == ["step-00000020", "step-00000030"]


def test_a_manager_never_runs_an_unchecked_policy(tmp_path: Path) -> None:
    bad = CheckpointConfig(keep_last=0)  # built in code, never through the config loader
    with pytest.raises(ConfigError, match="keep_last: must be an integer >= 1"):
        CheckpointManager(open_store(str(tmp_path / "c")), bad, tmp_path / "s")
