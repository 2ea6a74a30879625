"""Smoke test of ``python -m bench.saves --quick``: both variants measured, both keys written (no timing
assertions). This tree stands in for the "before" tree too."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quick_saves_bench_writes_its_keys(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    out.write_text(json.dumps({"other": {"kept": True}}))
    cmd = [sys.executable, "-m", "bench.saves", "--quick", "--rounds", "1", "--before", str(ROOT),
           "--variants", "before,after", "--out", str(out), "--workdir", str(tmp_path / "work")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["other"] == {"kept": True}  # read-modify-write: other keys untouched
    saves = results["saves"]
    assert sorted(saves["variants"]) == ["after", "before"] and saves["cpus"] >= 1
    for variant in saves["variants"].values():
        (run,) = variant["runs"]
        assert len(run["ratios"]) == len(run["ckpt"]) == len(run["none"]) == 2
        assert math.isfinite(variant["ratio_median"]) and variant["ratio_median"] > 0
        assert run["load_avg_1min"] >= 0 and run["cpus"] >= 1
    tput = results["throughput"]
    assert tput["ratio"]["n"] == tput["ours"]["n"] == tput["anchor"]["n"] == 2
    assert tput["every_steps"] == 10 and tput["steps"] == 24 and tput["_run"]["load_avg_1min"] >= 0
    assert "| after |" in proc.stdout and "| before |" in proc.stdout
