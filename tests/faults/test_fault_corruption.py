"""Corrupted checkpoints under a run: detected, reported naming the step and the problem, and handled as
documented — fall back to the previous checkpoint (and replace the bad step when it is re-saved), or stop
with exit 4 when nothing usable is left or the checkpoint belongs to another architecture.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.cli import main
from tests.faults.harness import (
    TOTAL,
    base_overrides,
    events,
    load_step,
    record,
    reference,
    sets,
    tree_digest,
)

STEP = f"step-{TOTAL:08d}"
_RESULTS: dict[str, str] = {}


def _edit_manifest(folder: Path, change) -> None:  # noqa: ANN001
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _entry(data: dict, name: str) -> dict:
    return next(f for f in data["files"] if f["name"] == name)


CORRUPT = {
    "truncated object": (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
                         "model.safetensors is 100 bytes, manifest says"),
    "flipped byte": (lambda f: _flip(f / "optimizer.safetensors"), "optimizer.safetensors: sha256 mismatch"),
    "missing manifest": (lambda f: (f / "manifest.json").unlink(), "manifest.json missing (not committed)"),
    "manifest lies about a size": (lambda f: _edit_manifest(f, lambda d: _entry(d, "model.safetensors").update(
        size=_entry(d, "model.safetensors")["size"] + 1)), "manifest says"),
    "manifest lies about a hash": (lambda f: _edit_manifest(f, lambda d: _entry(d, "meta.json").update(
        sha256="0" * 64)), "meta.json: sha256 mismatch (manifest 000000000000"),
    "manifest lists a missing file": (lambda f: _edit_manifest(f, lambda d: d["files"].append(
        {"name": "extra.safetensors", "size": 1, "sha256": "0" * 64})), "extra.safetensors missing"),
}  # fmt: skip


def _root(tmp: Path, steps=(35, TOTAL)) -> Path:  # noqa: ANN001
    for step in steps:
        shutil.copytree(reference() / f"step-{step:08d}", tmp / "ckpts" / f"step-{step:08d}")
    return tmp / "ckpts"


def _train(tmp: Path, root: Path, **extra: object) -> int:
    ov = base_overrides(tmp / "run", **{"checkpoint.uri": str(root), **extra})
    return main(["train", "-c", "configs/demo.yaml", *sets(ov)])


@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_newest_is_reported_skipped_and_replaced(kind, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    root = _root(tmp_path)
    corrupt, words = CORRUPT[kind]
    corrupt(root / STEP)
    rc = _train(tmp_path, root)
    err = capsys.readouterr().err
    assert rc == 0, err[-2000:]
    warning = [x for x in err.splitlines() if "skipping checkpoint step 40" in x]
    assert len(warning) == 1 and words in warning[0] and "falling back to the previous one" in warning[0]
    assert [e["step"] for e in events(tmp_path / "run" / "log.jsonl", "resume")] == [35]
    # The re-trained step 40 replaced the bad one: it verifies and equals the uninterrupted run's.
    assert main(["ckpt", "verify", str(root), "--step", str(TOTAL)]) == 0
    got, want = load_step(root, TOTAL), load_step(reference(), TOTAL)
    assert all(np.array_equal(got["model"][k], want["model"][k]) for k in want["model"])
    _RESULTS[kind] = "fell back to step 35, replaced step 40"
    record("corruption", {"cases": _RESULTS})


UNUSABLE = {
    "manifest unreadable": lambda f: (f / "manifest.json").write_text('{"format": "warmstart-che'),
    "manifest of a newer version": lambda f: _edit_manifest(f, lambda d: d.update(version=2)),
    "manifest is a list": lambda f: (f / "manifest.json").write_text("[]"),
    "manifest step 1e999": lambda f: (f / "manifest.json").write_text(
        (f / "manifest.json").read_text().replace(f'"step": {TOTAL}', '"step": 1e999')),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(UNUSABLE))
def test_unusable_newest_is_skipped_kept_and_never_replaced(kind, tmp_path, capsys, monkeypatch):
    """A manifest that exists but cannot be read (maybe a newer tool's) is never deleted or replaced: the
    run resumes from the previous step and stops with exit 4 when it would have to save over it."""
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    root = _root(tmp_path)
    UNUSABLE[kind](root / STEP)
    before = tree_digest(root / STEP)
    rc = _train(tmp_path, root)
    err = capsys.readouterr().err
    assert rc == 4 and "Traceback" not in err, err[-2000:]
    warning = [x for x in err.splitlines() if "skipping checkpoint step 40" in x]
    assert len(warning) == 1 and "(unusable, kept)" in warning[0]
    line = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert len(line) == 1 and line[0].startswith("warmstart: checkpoint: cannot save step 40")
    assert [e["step"] for e in events(tmp_path / "run" / "log.jsonl", "resume")] == [35]
    assert tree_digest(root / STEP) == before
    assert main(["ckpt", "verify", str(root)]) == 4
    _RESULTS[kind] = "fell back to step 35, kept the unusable step 40, exit 4 at its re-save"
    record("corruption", {"cases": _RESULTS})


def test_every_checkpoint_corrupt_stops_with_exit_4_and_deletes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    root = _root(tmp_path)
    for step in (35, TOTAL):
        _flip(root / f"step-{step:08d}" / "model.safetensors")
    before = tree_digest(root)
    rc = _train(tmp_path, root)
    err = capsys.readouterr().err
    assert rc == 4 and "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert line == [line[0]] and line[0].startswith(
        "warmstart: checkpoint: none of the 2 committed checkpoint(s)"
    )
    assert tree_digest(root) == before
    _RESULTS["every checkpoint corrupt"] = "exit 4, nothing touched"
    record("corruption", {"cases": _RESULTS})


def test_checkpoint_of_another_architecture_stops_with_exit_4(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    root = _root(tmp_path, steps=(TOTAL,))
    before = tree_digest(root)
    rc = _train(tmp_path, root, **{"task.options.width": 8})
    err = capsys.readouterr().err
    line = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert rc == 4 and len(line) == 1 and "Traceback" not in err
    assert line[0].startswith("warmstart: checkpoint: ") and "shape" in line[0]
    assert tree_digest(root) == before
    _RESULTS["another architecture"] = "exit 4 naming the mis-shaped tensors, nothing touched"
    record("corruption", {"cases": _RESULTS})
