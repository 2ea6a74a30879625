"""Hash-valid but malformed trainer states, metas and tags (issue #13 items 5 and 6), on local and S3.

A trainer state or meta that breaks its schema is handled like a sha256 mismatch: resume warns and falls
back to the previous good step, ``ckpt verify`` names the file and exits 4. A bad tag file never blocks
``ls``/``gc`` and never makes a finished save fail. Good steps keep every file with the same sha256.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from ckpt_helpers import ckpt_cli as _cli
from ckpt_helpers import (
    crafted_root,
    make_snapshot,
    replace_hash_valid,
    rng_state,
    store_hashes,
)

from app.checkpoint import CheckpointConfig, CheckpointManager
from app.checkpoint.tags import resolve_tag, tagged_steps
from app.errors import CheckpointError
from app.store.base import ObjectStore
from app.train.start import _resumable

STATE = make_snapshot(30).state


def _state(**changes: object) -> bytes:
    return json.dumps({**STATE, **changes}).encode()


def _rng(**numpy: object) -> dict:
    good = rng_state(1)
    return {**good, "numpy": {**good["numpy"], **numpy}}


TRAINER_STATES: dict[str, bytes] = {
    "empty object": b"{}",
    "a list": b"[]",
    "step missing": json.dumps({k: v for k, v in STATE.items() if k != "step"}).encode(),
    "step differs from manifest": _state(step=25),
    "step bool": _state(step=True),
    "step string": _state(step="30"),
    "step 1e999": _state().replace(b'"step": 30', b'"step": 1e999'),
    "step NaN": _state().replace(b'"step": 30', b'"step": NaN'),
    "rng garbage": _state(rng={"numpy": [1, 2, 3]}),
    "rng missing": json.dumps({k: v for k, v in STATE.items() if k != "rng"}).encode(),
    "rng keys short": _state(rng=_rng(keys=[1, 2, 3])),
    "rng word too big": _state(rng=_rng(keys=[2**40] * 624)),
    "rng pos out of range": _state(rng=_rng(pos=700)),
    "rng name": _state(rng=_rng(name="PCG64")),
    "rng cached inf": _state().replace(b'"cached": ', b'"cached": Infinity, "x": '),
    "python rng short": _state(rng={**rng_state(1), "python": {"version": 3, "state": [1], "gauss": None}}),
    "scheduler empty": _state(scheduler={}),
    "scheduler last_epoch string": _state(scheduler={"last_epoch": "3"}),
    "best value a string": _state(best={"metric": "accuracy", "value": "high", "step": 3}),
    "python rng version 2": _state(rng={**rng_state(1), "python": {**rng_state(1)["python"], "version": 2}}),
    "scheduler missing": json.dumps({k: v for k, v in STATE.items() if k != "scheduler"}).encode(),
    "data wrong type": _state(data=[1, 2]),
    "data epoch negative": _state(data={"epoch": -1, "samples_in_epoch": 0}),
    "world_size zero": _state(world_size=0),
    "deep nesting": b'{"step": 30, "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "not utf-8": b'{"step": 30, "x": "\xff"}',
    "duplicate key": _state().replace(b'"step": 30', b'"step": 30, "step": 30'),
}
# Only an exact resume needs these keys; the file itself is well-typed, so `ckpt verify` passes it.
RESUME_ONLY = {"empty object", "step missing", "rng missing", "scheduler missing"}

METAS: dict[str, bytes] = {
    "a list": b"[]",
    "metrics a list": json.dumps({"metrics": [1]}).encode(),
    "metric a string": json.dumps({"metrics": {"accuracy": "high"}}).encode(),
    "step differs": json.dumps({"step": 7, "metrics": {}}).encode(),
    "metric 1e999": b'{"metrics": {"accuracy": 1e999}}',
    "deep nesting": b'{"config": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    "user a number": json.dumps({"user": 5}).encode(),
}


#: Every case runs on the local store; these also on S3 (each S3 case costs a few seconds).
S3_CASES = {
    "rng garbage",
    "step differs from manifest",
    "deep nesting",
    "a list",
    "step 1e999",
    "empty object",
}


@pytest.fixture
def root(store_uri: str, request: pytest.FixtureRequest) -> ObjectStore:
    return crafted_root(request, store_uri, [(10, 0.5), (20, 0.9), (30, 0.4)], S3_CASES)


def _fallback(root: ObjectStore, tmp_path: Path, caplog: pytest.LogCaptureFixture, name: str) -> None:
    mgr = CheckpointManager(root, CheckpointConfig(async_save=False), tmp_path / "s")
    with caplog.at_level(logging.WARNING):
        loaded = mgr.load_latest(check=_resumable)
    mgr.close()
    assert loaded is not None and loaded.ref.step == 20
    warned = [r.message for r in caplog.records if "skipping checkpoint step 30" in r.message]
    assert len(warned) == 1 and name in warned[0], caplog.text


@pytest.mark.parametrize("case", sorted(TRAINER_STATES))
def test_malformed_trainer_state_falls_back_like_a_hash_mismatch(
    root: ObjectStore,
    case: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
) -> None:
    good = store_hashes(root, 10, 20)
    replace_hash_valid(root, 30, "trainer_state.json", TRAINER_STATES[case])
    _fallback(root, tmp_path, caplog, "trainer_state.json")
    code, out, _ = _cli(capsys, "verify", root.uri, "--step", "30")
    if case in RESUME_ONLY:
        assert code == 0 and out.startswith("step 30: OK")
    else:
        assert code == 4 and out.startswith("step 30: FAILED:") and "trainer_state.json" in out
    code, out, _ = _cli(capsys, "show", root.uri, "--step", "30")
    assert code in (0, 4)
    assert store_hashes(root, 10, 20) == good


@pytest.mark.parametrize("case", sorted(METAS))
def test_malformed_meta_falls_back_and_ls_still_lists(
    root: ObjectStore,
    case: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture,
) -> None:
    replace_hash_valid(root, 30, "meta.json", METAS[case])
    _fallback(root, tmp_path, caplog, "meta.json")
    code, out, _ = _cli(capsys, "verify", root.uri)
    assert code == 4 and "step 30: FAILED:" in out and "meta.json" in out and "step 20: OK" in out
    code, out, _ = _cli(capsys, "ls", root.uri)
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "(meta.json unreadable)" in rows["30"] and "accuracy=0.9" in rows["20"]
    code, out, _ = _cli(capsys, "gc", root.uri, "--keep-best", "1", "--metric", "accuracy")
    assert code == 0


TAGS: dict[str, bytes] = {
    "not json": b"{",
    "a list": b"[]",
    "step string": json.dumps({"step": "10", "manifest_sha256": "0" * 64}).encode(),
    "step bool": json.dumps({"step": True, "manifest_sha256": "0" * 64}).encode(),
    "step 1e999": b'{"step": 1e999, "manifest_sha256": "' + b"0" * 64 + b'"}',
    "step huge": b'{"step": ' + b"9" * 5000 + b', "manifest_sha256": "' + b"0" * 64 + b'"}',
    "step negative": json.dumps({"step": -3, "manifest_sha256": "0" * 64}).encode(),
    "sha not hex": json.dumps({"step": 10, "manifest_sha256": "xyz"}).encode(),
    "sha missing": json.dumps({"step": 10}).encode(),
    "name mismatch": json.dumps({"step": 10, "manifest_sha256": "0" * 64, "tag": "other"}).encode(),
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "not utf-8": b"\xff\xfe\x00",
    "missing step": json.dumps({"step": 99, "manifest_sha256": "0" * 64}).encode(),
    "2 MB": json.dumps({"step": 10, "manifest_sha256": "0" * 64, "note": "x" * (2 << 20)}).encode(),
}


@pytest.mark.parametrize("case", sorted(TAGS))
def test_bad_tag_file_never_blocks_the_root(
    root: ObjectStore,
    case: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root.put_bytes("tags/bad.json", TAGS[case])
    assert _cli(capsys, "promote", root.uri, "--tag", "good", "--step", "20")[0] == 0
    code, out, _ = _cli(capsys, "ls", root.uri)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["30", "20", "10"]
    code, _, err = _cli(capsys, "show", f"{root.uri}#bad")
    assert code == 4 and len([x for x in err.splitlines() if x.startswith("warmstart:")]) == 1
    assert "bad" in err
    with pytest.raises(CheckpointError):
        resolve_tag(root, "bad")
    assert tagged_steps(root).get(20) == ["good"] and 10 not in tagged_steps(root)
    code, out, _ = _cli(capsys, "gc", root.uri, "--keep-last", "1")
    assert code == 0 and "keep    step 20 (tag good)" in out and "delete  step 10" in out
    # A run's save is not failed by the bad tag: retention warns and still applies.
    mgr = CheckpointManager(
        root, CheckpointConfig(keep_last=1, keep_best=0, async_save=False), tmp_path / "s"
    )
    ref = mgr.save(make_snapshot(40))
    mgr.close()
    assert ref is not None and ref.step == 40
    assert sorted(s for s in {int(i.key[5:13]) for i in root.list("step-")}) == [20, 40]


def test_retention_failure_after_commit_is_a_warning(
    root: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from app.checkpoint import retention

    def boom(*_a: object, **_k: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(retention, "collect", boom)
    mgr = CheckpointManager(root, CheckpointConfig(keep_last=1, async_save=True), tmp_path / "s")
    with caplog.at_level(logging.WARNING):
        mgr.save(make_snapshot(40))
        ref = mgr.flush()
    mgr.close()
    assert ref is not None and ref.step == 40
    assert any("retention after step 40 failed (checkpoint kept)" in r.message for r in caplog.records)
