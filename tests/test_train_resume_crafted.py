"""Real training resumes past crafted checkpoints (issue #13 items 4 and 5): a hash-valid but invalid
trainer state is skipped like a sha256 mismatch and the run still ends bit-identical; a step whose manifest
cannot be read is skipped, kept, and never overwritten."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from ckpt_helpers import replace_hash_valid

from app.errors import CheckpointError
from app.store import open_store
from tests.train_helpers import assert_same_tensors, final_model, run_inprocess, tiny_overrides


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    run_dir = tmp_path_factory.mktemp("ref")
    rc, session = run_inprocess(tiny_overrides(run_dir))
    assert rc == 0 and session.step == 40
    return final_model(tiny_overrides(run_dir))


def _previous_step(run_dir: Path) -> int:
    """The committed step before the newest (20): where a fall-back resume starts."""
    steps = sorted(int(p.name[5:]) for p in (run_dir / "checkpoints").glob("step-*"))
    assert steps[-1] == 20
    return steps[-2]


def _resume_steps(run_dir: Path) -> list[int]:
    events = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines()]
    return [e["step"] for e in events if e.get("event") == "resume"]


@pytest.mark.parametrize(
    "state",
    [
        b"{}",
        b'{"step": 20, "rng": {"numpy": [1, 2, 3]}}',
        b'{"step": 1e999}',
        b"[" * 10_000 + b"]" * 10_000,
    ],
    ids=["empty", "garbage rng", "step 1e999", "deep nesting"],
)
def test_invalid_trainer_state_falls_back_and_ends_exact(
    tmp_path: Path, reference: dict, state: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    ov = tiny_overrides(tmp_path)
    assert run_inprocess(ov, stop_at=20)[0] == 143
    previous = _previous_step(tmp_path)
    store = open_store(str(tmp_path / "checkpoints"))
    replace_hash_valid(store, 20, "trainer_state.json", state)
    with caplog.at_level(logging.WARNING):
        rc, session = run_inprocess(ov)
    assert rc == 0 and session.step == 40
    assert any(
        "skipping checkpoint step 20" in r.message and "trainer_state.json" in r.message
        for r in caplog.records
    )
    assert _resume_steps(tmp_path) == [previous]
    assert_same_tensors(final_model(ov), reference)


def test_unusable_manifest_is_skipped_kept_and_never_overwritten(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ov = tiny_overrides(tmp_path)
    assert run_inprocess(ov, stop_at=20)[0] == 143
    previous = _previous_step(tmp_path)
    folder = tmp_path / "checkpoints" / "step-00000020"
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "version": 2}))
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    with caplog.at_level(logging.WARNING), pytest.raises(CheckpointError, match="cannot save step 20"):
        run_inprocess(ov)  # resumes from the previous step, then refuses to save over the kept step 20
    assert any(
        "skipping checkpoint step 20" in r.message and "unusable, kept" in r.message for r in caplog.records
    )
    assert _resume_steps(tmp_path) == [previous]
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()} == before
