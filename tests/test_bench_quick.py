"""Smoke test of ``make bench``: the quick mode produces every figure (no timing assertions).

Runs ``python -m bench.run --quick`` in a subprocess (it starts its own moto_server and trainer
processes) and checks that results.json holds every figure as a finite number, that the exactness
figures hold (no step lost to SIGTERM, the bare and real loops end with identical parameters, the
resume really resumed), and that the generated page names every figure and links its plots.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.figures import FIGURES, lookup

ROOT = Path(__file__).resolve().parent.parent


def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    out, doc, img = tmp_path / "results.json", tmp_path / "benchmarks.md", tmp_path / "img"
    cmd = [sys.executable, "-m", "bench.run", "--quick", "--out", str(out), "--doc", str(doc),
           "--img-dir", str(img), "--workdir", str(tmp_path / "work")]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["_meta"]["mode"] == "quick"
    for fig in (f for f in FIGURES if not f.standalone):  # standalone ones: tests/test_throughput_bench.py
        value = float(lookup(results, fig.path))
        assert math.isfinite(value), fig.key
        if fig.path[-2:] == ("ratio", "median"):
            pairs = lookup(results, fig.path[:-2])
            assert pairs["ratio"]["n"] == pairs["ours"]["n"] == pairs["anchor"]["n"] >= 1, fig.key
            assert pairs["ours"]["median"] > 0 and pairs["anchor"]["median"] > 0, fig.key
    sig = results["sigterm"]
    assert sig["steps_lost_max"] == 0
    assert sig["exit_codes"] == [143]
    assert all(t["resumed_at"] == t["last_step_done"] >= t["signal_at_step"] for t in sig["trials"])
    assert results["loop"]["medium"]["identical_final_params"] is True
    assert results["loop"]["small"]["identical_final_params"] is True
    assert min(results["resume"]["resumed_from_steps"]) > 0  # a real resume, not a cold start
    for name in ("warm_vs_cold", "warmup"):
        assert results[name]["task"] == "digits"
    assert {(r["lr"], r["warmup"]) for r in results["warmup"]["table"]} == {(0.1, "linear"), (0.1, "none")}
    text = doc.read_text()
    for fig in FIGURES:
        assert f"| {fig.label} |" in text, fig.key
    names = sorted(p.name for p in img.iterdir())
    assert names == ["bench_ratios.png", "bench_stall.png", "bench_warm_vs_cold.png", "bench_warmup.png"]
    for name in names:
        assert f"(img/{name})" in text
        assert (img / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
