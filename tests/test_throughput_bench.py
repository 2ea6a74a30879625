"""The throughput benches against the toolkits' own trainers run and produce their fields (small settings,
no timing assertions): ``python -m bench.det_throughput --quick`` (ppdet's ``Trainer``) and
``python -m bench.nlp_throughput --quick`` (PaddleNLP's ``Trainer``), each writing its key of a results file
and its block of a doc given on the command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.figures import FIGURES, lookup

ROOT = Path(__file__).resolve().parent.parent
#: A run already in the results file: kept in the new run's ``previous``.
EARLIER = {
    "measured": "earlier",
    "ratio": {"median": 1.5, "min": 1.5, "max": 1.5, "n": 1, "values": [1.5]},
    "load_avg_1min": {"ours": [1.0], "theirs": [2.0]},
    "runs": {},
}


def _run(module: str, tmp_path: Path) -> tuple[dict, str]:
    results, doc = tmp_path / "results.json", tmp_path / "doc.md"
    results.write_text(json.dumps({"other": {"kept": True}, module: EARLIER}))
    doc.write_text(f"before\n<!-- bench:{module} -->\nold\n<!-- /bench:{module} -->\nafter\n")
    cmd = [sys.executable, "-m", f"bench.{module}", "--quick", "--work", str(tmp_path / "work"),
           "--results", str(results), "--doc", str(doc)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(results.read_text())
    assert out["other"] == {"kept": True}  # read-modify-write: only its own key
    return out, doc.read_text()


@pytest.mark.parametrize(
    ("module", "unit", "steps"), [("det_throughput", "images/s", 3), ("nlp_throughput", "samples/s", 6)]
)
def test_throughput_bench_runs_and_writes_its_fields(
    tmp_path: Path, module: str, unit: str, steps: int
) -> None:
    results, doc = _run(module, tmp_path)
    r = results[module]
    assert r["unit"] == unit and r["cpus"] == os.cpu_count()
    assert r["ratio"]["n"] == r["ours"]["n"] == r["anchor"]["n"] == 1
    assert r["ours"]["median"] > 0 and r["anchor"]["median"] > 0
    assert sorted(r["load_avg_1min"]) == ["ours", "theirs"]
    for side in ("ours", "theirs"):
        (run,) = r["runs"][side]
        assert run["steps"] == steps  # every optimizer step stamped, on both sides
        assert run["cpu_ms_per_step"] > 0 and run["wall_ms_median_step"] > 0
    phases = r["runs"]["ours"][0]["phases_ms"]  # our step timed by part
    assert {"step", "data", "to_tensors", "forward", "optimizer", "reseed", "backward_and_rest"} <= set(
        phases
    )
    assert r["runs"]["theirs"][0]["phases_ms"] is None
    fig = next(f for f in FIGURES if f.key == module)
    assert fig.standalone == f"bench.{module}" and fig.op == ">=" and fig.target == 1.0
    assert math.isfinite(lookup(results, fig.path))
    assert doc.startswith("before\n") and doc.endswith("after\n")
    assert f"| **{unit}** (target ≥ 1.0×) |" in doc and "| CPU ms per step, trainer process" in doc
    assert "Our step by phase" in doc and "old" not in doc
    assert r["previous"] == [{"measured": "earlier", "ratio": EARLIER["ratio"], "load_avg_1min": [1.0, 2.0]}]
    assert "Earlier run (earlier, 1 pairs, load average 1.00–2.00): 1.500× (1.500–1.500)." in doc
    assert "All 2 pairs pooled: median " in doc
