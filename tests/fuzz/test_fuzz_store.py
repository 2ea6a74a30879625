"""Fuzz every store-side reader: manifest.json, trainer_state.json, meta.json, tags/*.json and the
safetensors header, through the commands and code paths that read them.

A real tiny digits run (3 steps, a checkpoint at each) is trained once; step 2 is promoted as tag ``v1``.
For each generated input, a copy of that root gets one file replaced — the newest step's manifest, trainer
state, meta or model tensors, or the tag record. A replaced file the manifest lists also gets its size
and sha256 rewritten in the manifest, so the hash check passes and the schema checks are what is tried.
Then every reader runs on the copy: ``warmstart ckpt ls / ls --verify / show / verify / gc`` (in this
process), the trainer's resume selection (``CheckpointManager.load_latest`` and the exact restore into a
live session), ``init.from`` (root, ``#tag``, step folder, tensor file) and retention after a commit.

Each must load or end with our one-line error and a documented exit code; nothing may delete or change
any file of the root (three committed steps, ``keep_last`` 3: nothing is due for deletion, and a step
with an unreadable manifest is "unusable, kept"); a resume must restore the step its manifest names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.checkpoint import CheckpointConfig, CheckpointManager, open_source
from app.store import open_store
from app.store.config import StoreConfig
from tests.fuzz import known
from tests.fuzz.conftest import NEWEST, TAGGED
from tests.fuzz.harness import (
    TALLY,
    budget,
    collect_mode,
    contract,
    lost_files,
    run_call,
    run_cli,
    tree_digest,
)
from tests.fuzz.strategies import Edit, json_file_bytes, nasty_names, safetensors_bytes


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _rewrite_manifest(step_dir: Path, name: str, data: bytes) -> None:
    """Record ``name``'s new size and sha256 in the manifest, in the writer's canonical format."""
    manifest = _read_json(step_dir / "manifest.json")
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    (step_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _restore(session: Any, loaded: Any) -> None:
    """What ``prepare`` does with a resumed checkpoint (selected with ``check=_resumable``, as
    ``_find_start`` does): batch check, then the exact restore."""
    from app.train.start import _restore_exact

    global_batch = session.cfg.train.batch_size * session.cfg.train.grad_accum_steps * session.dist.world
    old_batch = int(loaded.state.get("global_batch") or 0)
    _restore_exact(session, loaded, loaded.ref.uri, bool(old_batch) and old_batch != global_batch)


def _resume(label: str, root: Path, staging: Path, session: Any, example: str) -> None:
    from app.train import rng
    from app.train.start import _resumable

    cfg = CheckpointConfig(keep_last=3, keep_best=1, best_metric="accuracy", async_save=False)
    mgr = CheckpointManager(open_store(str(root), None), cfg, staging)
    saved = rng.capture()  # a restore sets the process-wide generators; later tests must not see that
    try:
        ok, loaded = run_call(f"{label} load_latest", lambda: mgr.load_latest(check=_resumable), example)
        if not ok or loaded is None:
            return
        step = loaded.state.get("step") if isinstance(loaded.state, dict) else None
        if step != loaded.ref.step or type(step) is not int:
            # Restoring it would train from the wrong step (and fast-forward a schedule that long).
            contract(f"{label} restore", f"trainer_state step {step!r} is not the manifest's step", example)
            return
        ok, _ = run_call(f"{label} restore", lambda: _restore(session, loaded), example)
        if ok and session.step != loaded.ref.step:
            contract(f"{label} restore", f"resumed at step {session.step}, not {loaded.ref.step}", example)
    finally:
        rng.restore(saved)
        mgr.close()


Target = tuple[str, Callable[[str, str], Any]]


def _targets(root: Path, staging: Path, session: Any, kind: str) -> list[Target]:
    """(label, run(label, example)) for every reader, read-only ones first, deleting ones last."""
    r = str(root)
    cli = [["ls", "--verify", r], ["show", r], ["show", f"{r}#v1"], ["show", "--step", "3", r],
           ["verify", f"{r}#v1"], ["verify", f"{r}/{NEWEST}"], ["gc", "--dry-run", r]]  # fmt: skip
    out: list[Target] = [
        ("ckpt ls ROOT", lambda lbl, ex: _ls_all(lbl, r, ex)),
        ("ckpt verify ROOT", lambda lbl, ex: _verify_all(lbl, r, ex)),
    ]
    out += [
        ("ckpt " + " ".join(a).replace(r, "ROOT"), lambda lbl, ex, a=a: run_cli(lbl, ["ckpt", *a], ex))
        for a in cli
    ]
    sources = [r, f"{r}#v1", f"{r}/{NEWEST}"]
    if kind == "safetensors":
        sources.append(f"{r}/{NEWEST}/model.safetensors")
    for uri in sources:
        load = lambda uri=uri: open_source(uri, StoreConfig(), allow_pickle=False, staging_dir=staging)  # noqa: E731
        out.append(
            ("init.from " + uri.replace(r, "ROOT"), lambda lbl, ex, load=load: run_call(lbl, load, ex))
        )
    out.append(("resume", lambda lbl, ex: _resume(lbl, root, staging, session, ex)))
    return out


def _ls_all(label: str, root: str, example: str) -> None:
    """``ckpt ls`` shows every step folder, usable or not (an unreadable one is not hidden)."""
    rc, out, _ = run_cli(label, ["ckpt", "ls", root], example)
    shown = {line.split()[0] for line in out.splitlines() if line.split()}
    if rc == 0 and not {"1", "2", "3"} <= shown:
        contract(label, f"step folders missing from the listing: {sorted({'1', '2', '3'} - shown)}", example)


def _verify_all(label: str, root: str, example: str) -> None:
    """``ckpt verify ROOT`` exits 0 only when it verified every step folder (none silently skipped)."""
    rc, out, _ = run_cli(label, ["ckpt", "verify", root], example)
    missing = [step for step in (1, 2, 3) if f"step {step}: OK" not in out]
    if rc == 0 and missing:
        contract(label, f"exit 0 but step(s) {missing} not reported OK", example)


def _deleting(root: Path, staging: Path) -> list[Target]:
    """Readers that may delete: each runs on its own fresh copy so one's loss does not hide another's."""
    return [
        ("ckpt gc ROOT", lambda lbl, ex: run_cli(lbl, ["ckpt", "gc", str(root)], ex)),
        ("retention after commit", lambda lbl, ex: _retention(lbl, root, staging, ex)),
    ]


def _retention(label: str, root: Path, staging: Path, example: str) -> None:
    """Retention as the manager runs it after each commit (best by accuracy, keep 3)."""
    cfg = CheckpointConfig(keep_last=3, keep_best=1, best_metric="accuracy", async_save=False)
    mgr = CheckpointManager(open_store(str(root), None), cfg, staging)
    try:
        run_call(label, mgr.gc, example)
    finally:
        mgr.close()


def _mutated_copy(good: dict[str, Any], root: Path, rel: str, data: bytes) -> None:
    shutil.copytree(good["root"], root)
    (root / rel).write_bytes(data)
    folder, _, name = rel.partition("/")
    if folder == NEWEST and name != "manifest.json":
        _rewrite_manifest(root / folder, name, data)


def _one(good: dict[str, Any], kind: str, rel: str, data: bytes | Edit) -> None:
    """Replace ``rel`` in a copy of the good root with ``data`` and run every reader on it."""
    if isinstance(data, Edit):
        good_bytes = _good_bytes(good, rel)
        data = (
            data.apply_safetensors(good_bytes)
            if kind == "safetensors"
            else data.apply_json(json.loads(good_bytes))
        )
    example = json.dumps({"file": rel, "bytes": data[:300].decode("utf-8", "replace"), "len": len(data)})
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-store-") as tmp:
        staging = Path(tmp) / "staging"
        shared = Path(tmp) / "ckpts"
        _mutated_copy(good, shared, rel, data)
        runs = [(shared, t) for t in _targets(shared, staging, good["session"], kind)]
        for i in range(len(_deleting(shared, staging))):
            own = Path(tmp) / f"ckpts-{i}"
            _mutated_copy(good, own, rel, data)
            runs.append((own, _deleting(own, staging)[i]))
        for root, (target, run) in runs:
            label = f"{kind}: {target}"
            before = tree_digest(root)
            run(label, example)
            lost_files(label, root, before, example)


def _good_bytes(good: dict[str, Any], rel: str) -> bytes:
    return (good["root"] / rel).read_bytes()


def _assert_clean(seen: dict[str, int]) -> None:
    if collect_mode():
        found = TALLY.new_since(seen)
        assert not found, "\n".join(found)


def _examples(items: list[bytes | Edit]) -> Callable[[Callable], Callable]:
    """Decorate with one ``@example(data=...)`` per known input."""

    def wrap(fn: Callable) -> Callable:
        for item in reversed(items):
            fn = example(data=item)(fn)
        return fn

    return wrap


_JSON_FILES = {
    "manifest": f"{NEWEST}/manifest.json",
    "trainer_state": f"{NEWEST}/trainer_state.json",
    "meta": f"{NEWEST}/meta.json",
    "tag": "tags/v1.json",
}


@pytest.mark.parametrize("kind", sorted(_JSON_FILES))
def test_fuzz_store_json(good: dict[str, Any], kind: str) -> None:
    rel = _JSON_FILES[kind]
    base = json.loads(_good_bytes(good, rel))

    @settings(max_examples=budget(10))
    @given(data=json_file_bytes(base))
    @_examples(known.STORE[kind])
    def run(data: bytes | Edit) -> None:
        _one(good, kind, rel, data)

    seen = TALLY.snapshot()
    run()
    _assert_clean(seen)


def test_fuzz_store_safetensors(good: dict[str, Any]) -> None:
    rel = f"{NEWEST}/model.safetensors"

    @settings(max_examples=budget(10))
    @given(data=safetensors_bytes(_good_bytes(good, rel)))
    @_examples(known.STORE["safetensors"])
    def run(data: bytes | Edit) -> None:
        _one(good, "safetensors", rel, data)

    seen = TALLY.snapshot()
    run()
    _assert_clean(seen)


def test_fuzz_store_manifest_names(good: dict[str, Any]) -> None:
    """File names in the manifest: traversal, separators, NUL, reserved names — with a matching hash."""
    rel = f"{NEWEST}/manifest.json"
    base = json.loads(_good_bytes(good, rel))

    @settings(max_examples=budget(10))
    @given(index=st.integers(0, len(base["files"]) - 1), name=nasty_names | st.text(max_size=12))
    def run(index: int, name: str) -> None:
        doc = json.loads(json.dumps(base))
        doc["files"][index]["name"] = name
        _one(good, "manifest", rel, json.dumps(doc, indent=2, sort_keys=True).encode())

    seen = TALLY.snapshot()
    run()
    _assert_clean(seen)


_FLOATS = st.sampled_from(["nan", "inf", "-inf", "-1", "0", "1e999", "0.5", "60", "x"])


@settings(max_examples=budget(20))
@given(
    keep_last=st.none() | st.integers(-3, 4),
    keep_best=st.none() | st.integers(-2, 3),
    leftover=st.none() | _FLOATS,
    metric=st.none() | st.sampled_from(["accuracy", "eval_loss", "nope", "", "../x"]),
    mode=st.none() | st.sampled_from(["max", "min"]),
    dry_run=st.booleans(),
)
def _gc_flags(good, keep_last, keep_best, leftover, metric, mode, dry_run) -> None:  # noqa: ANN001
    flags = [f"--keep-last={keep_last}"] * (keep_last is not None) + [f"--keep-best={keep_best}"] * (
        keep_best is not None
    )
    flags += [f"--leftover-minutes={leftover}"] * (leftover is not None) + [f"--metric={metric}"] * (
        metric is not None
    )
    flags += [f"--mode={mode}"] * (mode is not None) + ["--dry-run"] * dry_run
    example = " ".join(flags)
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-gc-") as tmp:
        root = Path(tmp) / "ckpts"
        shutil.copytree(good["root"], root)
        before = tree_digest(root)
        rc, _, _ = run_cli("gc flags: ckpt gc", ["ckpt", "gc", str(root), *flags], example)
        after = tree_digest(root)
        kept = {k for k in before if k.startswith((NEWEST, f"step-{TAGGED:08d}", "tags/"))}
        if rc != 0 or dry_run:
            lost_files("gc flags: ckpt gc", root, before, example)
        elif not kept <= set(after):
            contract("gc flags: ckpt gc", "the newest or a tagged committed step was deleted", example)
        if keep_last is not None and keep_last < 1 and rc != 2:
            contract(
                "gc flags: ckpt gc", f"--keep-last {keep_last} accepted (exit {rc}), expected exit 2", example
            )
        if keep_best is not None and keep_best < 0 and rc != 2:
            contract(
                "gc flags: ckpt gc", f"--keep-best {keep_best} accepted (exit {rc}), expected exit 2", example
            )


def test_fuzz_gc_flags(good: dict[str, Any]) -> None:
    """Every retention policy built from gc flags is validated like the config's; the newest step stays."""
    seen = TALLY.snapshot()
    _gc_flags(good)
    _assert_clean(seen)


@settings(max_examples=budget(12))
@given(name=(nasty_names | st.text(max_size=20)).filter(lambda n: n != "v1"))
def _promote_names(good, name: str) -> None:  # noqa: ANN001
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-tag-") as tmp:
        root = Path(tmp) / "ckpts"
        shutil.copytree(good["root"], root)
        before = tree_digest(root)
        rc, _, _ = run_cli(
            "promote: ckpt promote", ["ckpt", "promote", str(root), f"--tag={name}"], repr(name)
        )
        lost_files("promote: ckpt promote", root, before, repr(name))
        if rc not in (0, 2):
            contract(
                "promote: ckpt promote", f"tag name {name!r}: exit {rc}, expected 0 or 2 (usage)", repr(name)
            )
        outside = [p for p in Path(tmp).rglob("*") if p.is_file() and root not in p.parents]
        if outside:
            contract("promote: ckpt promote", f"wrote outside the root: {outside}", repr(name))


def test_fuzz_promote_tag_names(good: dict[str, Any]) -> None:
    """A bad tag name is a usage error (exit 2) found before any work; nothing is written elsewhere."""
    seen = TALLY.snapshot()
    _promote_names(good)
    _assert_clean(seen)
