"""The PP-OCRv4 recognition benches run in their tiny mode and produce their fields (no timing assertions):
``bench.ocr_ppocrv4_warm_vs_cold --tiny`` (pretrain on charset A, cold and partial warm start onto charset
B's new dictionary) and ``bench.ocr_ppocrv4_throughput --tiny`` (data workers 0 and 1 side by side)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from bench import ocr_ppocrv4_throughput as tput
from bench import ocr_ppocrv4_warm_vs_cold as wvc
from bench.figures import FIGURES, STANDALONE_KEYS, lookup

pytestmark = pytest.mark.slow


def _results_file(tmp_path: Path) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"other": {"kept": True}}))
    return path


def _doc(tmp_path: Path, key: str) -> Path:
    path = tmp_path / "doc.md"
    path.write_text(f"before\n<!-- bench:{key} -->\nold\n<!-- /bench:{key} -->\nafter\n")
    return path


def test_warm_vs_cold_tiny_reports_partial_load_and_curves(tmp_path: Path) -> None:
    results, plot, doc = _results_file(tmp_path), tmp_path / "plot.png", _doc(tmp_path, wvc.KEY)
    args = [
        "--out",
        str(tmp_path / "work"),
        "--results",
        str(results),
        "--plot",
        str(plot),
        "--doc",
        str(doc),
    ]
    assert wvc.main(["--tiny", *args]) == 0
    out = json.loads(results.read_text())
    assert out["other"] == {"kept": True}  # read-modify-write: only its own key
    r = out[wvc.KEY]
    assert r["cpus"] == os.cpu_count() and set(r["load_avg_1min"]) == {"start", "end"}
    # the new dictionary (12 characters vs 10) changes exactly the four dictionary-sized tensors
    load = r["partial_load"]
    assert sorted(load["skipped"]) == sorted(wvc.SKIPPED)
    assert load["shapes"]["head.ctc_head.fc.bias"] == {"checkpoint": [11], "model": [13]}
    # NRTR: dictionary + blank, <unk>, <s>, </s> = 16 classes, and the layers' extra row (PaddleOCR's)
    assert load["shapes"]["head.gtc_head.tgt_word_prj.weight"] == {"checkpoint": [32, 15], "model": [32, 17]}
    assert load["missing"] == [] and load["loaded_tensors"] > 900
    # two steps, evaluated after each; the target is the cold run's final accuracy
    assert [s for s, _ in r["curves"]["cold"]] == [1, 2] == [s for s, _ in r["curves"]["warm"]]
    assert [s for s, _ in r["norm_edit_dis"]["warm"]] == [1, 2]
    assert r["target"] == r["final_accuracy"]["cold"] == r["curves"]["cold"][-1][1]
    assert r["steps_to_target"]["cold"] == wvc.first_reaching(r["curves"]["cold"], r["target"])
    assert r["setup"]["image_shape"] == [3, 48, 320] and "svtr_lcnet" in r["setup"]["model"]
    steps = r["steps_to_target"]
    if steps["warm"] is None or steps["cold"] is None:
        assert math.isnan(r["steps_ratio"])
    else:
        assert r["steps_ratio"] == steps["warm"] / steps["cold"]
    assert plot.read_bytes()[:4] == b"\x89PNG"
    _check_figure(out, "ocr_ppocrv4_warm_steps", "bench.ocr_ppocrv4_warm_vs_cold")
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "\nold\n" not in text
    assert all(f"`{name}`" in text for name in wvc.SKIPPED) and "| cold start |" in text
    # --collect rebuilds the same result from the finished runs, without training
    assert wvc.main(["--collect", "--tiny", *args]) == 0
    assert json.dumps(json.loads(results.read_text())[wvc.KEY]) == json.dumps(r)  # NaN-safe


def _check_figure(results: dict, key: str, module: str) -> None:
    """The summary table of docs/benchmarks.md finds the number; ``bench.run`` keeps the key."""
    fig = next(f for f in FIGURES if f.key == key)
    assert fig.standalone == module and fig.path[0] in STANDALONE_KEYS
    assert isinstance(float(lookup(results, fig.path)), float)


def test_first_reaching() -> None:
    points = [(10, 0.1), (20, 0.5), (30, 0.4), (40, 0.6)]
    assert wvc.first_reaching(points, 0.45) == 20
    assert wvc.first_reaching(points, 0.6) == 40
    assert wvc.first_reaching(points, 0.7) is None
    # a cold run that read nothing (target 0): reached means a word read, not the first eval
    assert wvc.first_reaching([(10, 0.0), (20, 0.0), (30, 0.03)], 0.0) == 30
    assert wvc.first_reaching([(10, 0.0), (20, 0.0)], 0.0) is None


def test_throughput_tiny_measures_both_worker_counts(tmp_path: Path) -> None:
    results, doc = _results_file(tmp_path), _doc(tmp_path, tput.KEY)
    assert (
        tput.main(["--tiny", "--work", str(tmp_path / "work"), "--results", str(results), "--doc", str(doc)])
        == 0
    )
    out = json.loads(results.read_text())
    assert out["other"] == {"kept": True}
    r = out[tput.KEY]
    assert r["unit"] == "images/s" and r["cpus"] == os.cpu_count() and r["batch"] == 2
    assert set(r["images_per_s"]) == {"workers_0", "workers_1"} == set(r["per_step"]) == set(r["runs"])
    assert sorted(r["load_avg_1min"]) == ["workers_0", "workers_1"]
    for name in ("workers_0", "workers_1"):
        (run,) = r["runs"][name]
        assert run["steps"] == 2  # every optimizer step stamped
        assert r["images_per_s"][name]["median"] > 0
        ps = r["per_step"][name]
        assert ps["step_ms"]["median"] == pytest.approx(
            ps["data_ms_per_step"]["median"] + ps["compute_ms_per_step"]["median"]
        )
        assert {"data", "forward", "optimizer", "backward_and_rest"} <= set(run["phases_ms"])
    assert r["ratio"]["values"] == [
        pytest.approx(r["images_per_s"]["workers_1"]["values"][0] / r["images_per_s"]["workers_0"]["values"][0],
                      rel=1e-4)
    ]  # fmt: skip
    assert "| 0 |" in tput.table(r) and "| 1 |" in tput.table(r)
    _check_figure(out, "ocr_ppocrv4_workers_1", "bench.ocr_ppocrv4_throughput")
    assert tput.table(r) in doc.read_text()


def test_report_shows_both_figures_and_the_recipe() -> None:
    from bench.report import render

    ratio = {"median": 0.986, "min": 0.9, "max": 1.1, "n": 2, "values": [0.9, 1.1]}
    text = render({wvc.KEY: {"steps_ratio": 0.5}, tput.KEY: {"ratio": ratio}})
    rows = {
        f.key: next(line for line in text.splitlines() if line.startswith(f"| {f.label} |")) for f in FIGURES
    }
    assert "| 0.5 | reported |" in rows["ocr_ppocrv4_warm_steps"]
    assert "| 0.986× (0.9–1.1) | reported | 2 |" in rows["ocr_ppocrv4_workers_1"]
    assert "`python bench/ocr_ppocrv4_warm_vs_cold.py`" in text
    assert "<!-- bench:ocr_ppocrv4_throughput -->" not in text  # blocks are copied without their markers
