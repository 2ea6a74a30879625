"""Smoke test of ``python -m bench.feed --quick``: every figure is produced (no timing assertions), the final
parameters hash the same for 0, 1, 2 and 4 data workers, only the ``feed`` key of results.json and only
the ``bench:feed`` block of the doc are rewritten."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_feed_bench_writes_its_figures_and_equal_parameter_hashes(tmp_path: Path) -> None:
    out, doc = tmp_path / "results.json", tmp_path / "data.md"
    out.write_text(json.dumps({"other": {"kept": True}}))
    doc.write_text("before\n<!-- bench:feed -->\nold\n<!-- /bench:feed -->\nafter\n")
    cmd = [sys.executable, "-m", "bench.feed", "--quick", "--out", str(out), "--doc", str(doc),
           "--workdir", str(tmp_path / "work")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["other"] == {"kept": True} and results["feed"]["_run"]["mode"] == "quick"
    feed = results["feed"]
    assert sorted(feed["loop"]) == ["0", "1", "2"]
    for n, entry in feed["loop"].items():
        figs = [entry["vs_ideal"], entry["cpu_model"]] + ([entry["vs_ideal_own_session"]] if n != "0" else [])
        for fig in figs:
            assert fig["ratio"]["n"] == fig["ours"]["n"] == fig["anchor"]["n"] == 1
            assert math.isfinite(fig["ratio"]["median"]) and fig["ratio"]["median"] > 0
    hashes = feed["params_sha256"]
    assert sorted(hashes) == ["0", "1", "2", "4"] and all(len(h) == 1 for h in hashes.values())
    assert len({h[0] for h in hashes.values()}) == 1 and feed["identical_params"] == 1
    (transport,) = feed["transport"].values()
    assert transport["mb_per_s"]["pipe"]["median"] > 0 and transport["mb_per_s"]["shm"]["median"] > 0
    text = doc.read_text()
    assert text.startswith("before\n<!-- bench:feed -->\n") and text.endswith("<!-- /bench:feed -->\nafter\n")
    assert "old" not in text and "| 2 |" in text and hashes["0"][0][:16] in text
