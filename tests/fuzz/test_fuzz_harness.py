"""The harness itself: an untouched checkpoint root passes every reader, and a deleted file is caught.

Without this, a fuzz target that always "fails" (or never can) would look like a finding (or a pass).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import known
from tests.fuzz.harness import TALLY, FuzzFailure, lost_files, tree_digest
from tests.fuzz.test_fuzz_store import _JSON_FILES, _one


@pytest.mark.parametrize("kind", [*sorted(_JSON_FILES), "safetensors"])
def test_unchanged_file_passes_every_reader(good: dict[str, Any], kind: str, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("WS_FUZZ_COLLECT", "1")
    rel = _JSON_FILES.get(kind, "step-00000003/model.safetensors")
    seen = TALLY.snapshot()
    before = sum(c.cases for c in TALLY.targets.values())
    _one(good, kind, rel, (good["root"] / rel).read_bytes() if kind == "safetensors" else known.UNCHANGED)
    assert TALLY.new_since(seen) == []
    assert sum(c.cases for c in TALLY.targets.values()) - before >= 16  # every reader ran


def test_a_deleted_file_is_a_failure(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("WS_FUZZ_COLLECT", raising=False)
    (tmp_path / "step-00000001").mkdir()
    (tmp_path / "step-00000001" / "manifest.json").write_text(json.dumps({"step": 1}))
    before = tree_digest(tmp_path)
    shutil.rmtree(tmp_path / "step-00000001")
    try:
        with pytest.raises(FuzzFailure, match="files lost: 1 deleted"):
            lost_files("harness self-test", tmp_path, before, "rmtree")
    finally:  # not a finding: keep it out of the figures
        TALLY.targets.pop("harness self-test", None)
        for key in TALLY.failures_of("harness self-test"):
            del TALLY.failures[key]
