"""Write docs/benchmarks.md and its plots from bench/results.json: ``python -m bench.report``.

Numbers come only from the JSON; the hand-written analysis (why a target is missed, what would close it)
is kept in ``bench/findings.md`` and included verbatim, so the doc can be regenerated at any time.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bench.common import ROOT
from bench.figures import FIGURES, lookup, verdict

__all__ = ["write_report", "render", "main"]

#: recipe -> (title, its doc); each owner's script writes its own doc and plot (docs/img/<name>_warm_vs_cold.png).
RECIPES = {
    "ocr": ("OCR recognition", "ocr.md"),
    "ocr_ppocrv4": ("OCR recognition, PP-OCRv4 (`svtr_lcnet`) onto a new charset", "ocr.md"),
    "det": ("detection", "detection.md"),
    "nlp": ("NLP sequence classification", "nlp.md"),
}
#: toolkit -> (title, its doc): ``bench/<name>_side_by_side.py`` runs the toolkit's own trainer against
#: ours; its doc holds the measured numbers between ``<!-- bench:<name>_side_by_side -->`` markers.
SIDE_BY_SIDE = {
    "det": ("detection: PaddleDetection's own Trainer vs ours", "detection.md"),
    "nlp": (
        "NLP: PaddleNLP's own `Trainer` and ours, same model, data, seed and `TrainingArguments`",
        "nlp.md",
    ),
}


def _num(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x != 0 and abs(x) < 10 ** -(digits - 1):
        return f"{x:.2g}"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _mm(summary: dict, unit: str = "", digits: int = 3) -> str:
    """``median (min–max)``; a single value when n == 1."""
    med = _num(summary["median"], digits)
    if summary.get("n", 0) <= 1:
        return f"{med}{unit}"
    return f"{med}{unit} ({_num(summary['min'], digits)}–{_num(summary['max'], digits)})"


def _summary_table(results: dict) -> list[str]:
    out = ["| figure | compared with | target | measured (median, min–max) | verdict | reps |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for f in FIGURES:
        try:
            value = lookup(results, f.path)
            node = lookup(results, f.path[:-1])
        except (KeyError, TypeError):
            out.append(f"| {f.label} | {f.anchor} | {f.target_text} | not measured | missing | 0 |")
            continue
        if isinstance(node, dict) and "median" in node:
            shown, reps = _mm(node, "×"), node["n"]
        else:
            shown, reps = _num(float(value)), len(results.get(f.path[0], {}).get("trials", [])) or 1
        out.append(
            f"| {f.label} | {f.anchor} | {f.target_text} | {shown} | {verdict(f, float(value))} | {reps} |"
        )
    return out


def _stall(results: dict) -> list[str]:
    out = ["| session | state | async `save()` stall s | of which host snapshot s | pure copy s | stall / copy "
           "| sync save + upload s | async / sync | background save s |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for key, e in results["stall"].items():
        if key.startswith("_"):
            continue
        sync = e.get("vs_sync")
        out.append(
            f"| {key} | {_num(e['state_mb'])} MiB | {_mm(e['vs_copy']['ours'])} | {_mm(e['snapshot_s'])} "
            f"| {_mm(e['vs_copy']['anchor'])} | {_mm(e['vs_copy']['ratio'], '×')} "
            f"| {_mm(sync['anchor']) if sync else '—'} | {_mm(sync['ratio'], '×') if sync else '—'} "
            f"| {_mm(e['background_save_s'])} |"
        )
    return out


def _pair(label: str, fig: dict, unit: str, ours: str, anchor: str) -> str:
    return (f"| {label} | {ours}: {_mm(fig['ours'], unit)} | {anchor}: {_mm(fig['anchor'], unit)} "
            f"| {_mm(fig['ratio'], '×')} |")  # fmt: skip


def _section_io(results: dict) -> list[str]:
    out: list[str] = []
    if "throughput" in results:
        t = results["throughput"]
        out += [f"### Throughput with a checkpoint every {t['every_steps']} steps ({_num(t['state_mb'])} MiB state, "
                f"local store, {t['steps']} steps per run)", "",
                "| figure | ours | anchor | ratio |", "|---|---|---|---|",
                _pair("steps/s", t, "", f"every {t['every_steps']}", "no checkpoints"), ""]  # fmt: skip
    if "transfer" in results:
        t = results["transfer"]
        out += [f"### Upload and download of a {_num(t['size_mb'])} MiB checkpoint ({t['files']} files) on moto_server",
                "", "| direction | ours (app.store, 32 MiB x 8) | `aws s3 cp --recursive` | ratio |",
                "|---|---|---|---|", _pair("upload", t["upload"], " s", "ours", "aws"),
                _pair("download", t["download"], " s", "ours", "aws"), ""]  # fmt: skip
    if "resume" in results:
        r = results["resume"]
        phases = ", ".join(f"{k} {_mm(v, ' s')}" for k, v in r["floor_phases_s"].items())
        out += ["### Resume latency: process start → first optimizer step", "",
                f"Checkpoint `{r['checkpoint']}`; resumed from steps {r['resumed_from_steps']}.", "",
                "| figure | ours | floor | ratio |", "|---|---|---|---|",
                _pair("seconds", r, " s", "`warmstart train`", "floor"), "",
                f"Floor phases (inside the floor process, after interpreter start): {phases}.", ""]  # fmt: skip
    return out


def _section_process(results: dict) -> list[str]:
    out: list[str] = []
    if "sigterm" in results:
        s = results["sigterm"]
        out += ["### SIGTERM: steps lost", "",
                "| SIGTERM after step | last step finished | resumed at | steps lost | exit code | SIGTERM → exit s |",
                "|---|---|---|---|---|---|"]  # fmt: skip
        out += [f"| {t['signal_at_step']} | {t['last_step_done']} | {t['resumed_at']} | {t['steps_lost']} "
                f"| {t['exit_code']} | {t['sigterm_to_exit_s']:.2f} |" for t in s["trials"]]  # fmt: skip
        out += ["", f"Grace budget `preempt.grace_seconds` = {s['grace_seconds']:g} s.", ""]
    for name, lp in results.get("loop", {}).items():
        if name.startswith("_"):
            continue
        out += [f"### Our loop vs a bare Paddle loop (MLP width {lp['width']} x {lp['layers']}, batch {lp['batch']}, "
                f"{lp['steps']} steps)", "", "| figure | ours | anchor | ratio |", "|---|---|---|---|",
                _pair("steps/s", lp, "", "`run_loop`", "bare loop"), "",
                f"Final parameters bit-identical between the two: **{'yes' if lp['identical_final_params'] else 'no'}**.",
                ""]  # fmt: skip
    if "serialize" in results:
        z = results["serialize"]
        out += [f"### safetensors vs paddle.save / paddle.load ({_num(z['state_mb'])} MiB, page cache, no fsync)", "",
                "| operation | safetensors | paddle | ratio |", "|---|---|---|---|",
                _pair("save", z["save"], " s", "safetensors", "paddle.save"),
                _pair("load", z["load"], " s", "safetensors", "paddle.load"), ""]  # fmt: skip
    return out


def _recipes() -> list[str]:
    out = ["### Task recipes", ""]
    for name, (title, doc_name) in RECIPES.items():
        script = ROOT / "bench" / f"{name}_warm_vs_cold.py"
        doc, img = ROOT / "docs" / doc_name, ROOT / "docs" / "img" / f"{name}_warm_vs_cold.png"
        if not script.exists():
            out += [
                f"- **{title}**: no benchmark script yet (`bench/{name}_warm_vs_cold.py` has not landed).",
                "",
            ]
            continue
        out += [f"- **{title}**: `python bench/{name}_warm_vs_cold.py` (its own numbers: "
                f"[docs/{doc_name}](./{doc_name})).", ""]  # fmt: skip
        start, end = f"<!-- bench:{name}_warm_vs_cold -->", f"<!-- /bench:{name}_warm_vs_cold -->"
        text = doc.read_text() if doc.exists() else ""
        if start in text and end in text:
            out += [
                "  " + line if line else ""
                for line in text.split(start, 1)[1].split(end, 1)[0].strip().splitlines()
            ]
            out.append("")
        else:
            why = "its doc has no bench block yet" if doc.exists() else f"docs/{doc_name} has not landed yet"
            out += [f"  (numbers not included: {why}; the script prints them when run)", ""]
        if img.exists():
            out += [f"  ![{name} warm vs cold](img/{img.name})", ""]
    return out


def _side_by_side() -> list[str]:
    out = ["### Side by side with the toolkits' own trainers", ""]
    for name, (title, doc_name) in SIDE_BY_SIDE.items():
        script, doc = ROOT / "bench" / f"{name}_side_by_side.py", ROOT / "docs" / doc_name
        if not script.exists():
            continue
        out += [
            f"- **{title}**: `python bench/{name}_side_by_side.py` (details: [docs/{doc_name}](./{doc_name})).",
            "",
        ]
        start, end = f"<!-- bench:{name}_side_by_side -->", f"<!-- /bench:{name}_side_by_side -->"
        text = doc.read_text() if doc.exists() else ""
        if start in text and end in text:
            block = text.split(start, 1)[1].split(end, 1)[0].strip().splitlines()
            out += ["  " + line if line else "" for line in block] + [""]
        else:
            out += [
                "  (numbers not included: its doc has no bench block yet; the script prints them when run)",
                "",
            ]
    return out if len(out) > 2 else []


def _outcomes(results: dict) -> list[str]:
    out = ["## Training outcomes", ""]
    if "warm_vs_cold" in results:
        w = results["warm_vs_cold"]
        spe = w["steps_per_epoch"]
        recipes = {
            "warm": f"`digits_finetune.yaml`: partial warm start, LR 6e-4, backbone frozen 40 steps, {w['warm_steps']} steps",
            "warm_same": f"the cold recipe (LR 3e-3, no freeze) with the same partial warm start, {w['warm_steps']} steps",
            "cold": f"`digits_pretrain.yaml` on digits 0–9 from random weights, LR 3e-3, {w['cold_steps']} steps",
        }
        out += ["### (a) Warm start vs cold start: digits", "",
                f"Pretrained {w['pretrain_steps']} steps on digits 0–4 (`configs/digits_pretrain.yaml`); each arm then "
                f"trains a 10-class head on digits 0–9, evaluated every 10 steps ({spe} steps = 1 epoch). Target = the "
                f"cold run's final accuracy, {_mm(w['target'])}, per seed.", "",
                "| arm | recipe | reached target | steps to target | epochs | accuracy at step 50 | final accuracy |",
                "|---|---|---|---|---|---|---|"]  # fmt: skip
        for arm, a in w["arms"].items():
            st = a["steps_to_target"]
            epochs = _num(st["median"] / spe, 2) if st["n"] else "—"
            out.append(f"| {arm} | {recipes.get(arm, arm)} | {a['reached']} | {_mm(st) if st['n'] else '—'} "
                       f"| {epochs} | {_mm(a['at_50'])} | {_mm(a['final'])} |")  # fmt: skip
        out += ["", "![warm vs cold](img/bench_warm_vs_cold.png)", ""]
    out += _recipes()
    out += _side_by_side()
    if "warmup" in results:
        u = results["warmup"]
        out += [f"### (b) Warmup vs no warmup: digits, batch {u['batch']}, {u['steps']} steps, linear warmup "
                f"{u['warmup_steps']} steps, AdamW, no gradient clipping", "",
                f"| base LR | warmup | runs | diverged (non-finite loss) | max loss in the first {2 * u['warmup_steps']} "
                "steps | final eval accuracy |", "|---|---|---|---|---|---|"]  # fmt: skip
        for row in u["table"]:
            out.append(f"| {row['lr']:g} | {row['warmup']} | {row['runs']} | {row['diverged']} "
                       f"| {_mm(row['early_max_loss'])} | {_mm(row['final_accuracy'])} |")  # fmt: skip
        out += ["", "![warmup vs none](img/bench_warmup.png)", ""]
    return out


def _header(results: dict) -> list[str]:
    m = results.get("_meta", {})
    loads = ", ".join(f"{k} {v['_run']['load_avg_1min']:.2f}" for k, v in results.items()
                      if isinstance(v, dict) and "load_avg_1min" in v.get("_run", {}))  # fmt: skip
    return ["# Benchmarks", "",
            "<!-- generated by `python -m bench.report` from bench/results.json; edit bench/findings.md instead -->",
            "", "Every figure is a **ratio measured side by side in the same run**: the two sides alternate "
            "repetition by repetition (the order rotates), so drift and other load on the machine hit both. "
            "Tables give the median of the repetitions and the min–max.", "",
            f"Run: `make bench` ({m.get('mode', '?')} mode) on {m.get('cpus', '?')} CPU cores shared with other "
            f"work, Python {m.get('python', '?')}, Paddle {m.get('paddle', '?')} (CPU), {m.get('started', '?')}, "
            f"{_num(m.get('seconds', math.nan))} s in all. 1-minute load average at the start "
            f"{m.get('load_avg_1min_start', '?')}, at the end {m.get('load_avg_1min_end', '?')}; at the start of each "
            f"suite: {loads}.", "",
            "Sizes: the **small** state is ~200 MB and the **large** ~1 GB (model + AdamW moments, float32) of a "
            "synthetic MLP (`bench/synth.py`) trained by the real trainer (`app.train`), with checkpoints "
            "through `CheckpointManager` on a local folder and on S3 (moto_server on loopback).", ""]  # fmt: skip


def render(results: dict, findings: str = "") -> str:
    lines = _header(results) + ["## Summary", ""] + _summary_table(results)
    lines += ["", "![all ratios against their targets](img/bench_ratios.png)", ""]
    if findings.strip():
        lines += ["## Findings", "", findings.strip(), ""]
    lines += ["## Details", ""]
    if "stall" in results:
        lines += ["### Checkpoint stall", ""] + _stall(results) + ["", "![stall](img/bench_stall.png)", ""]
    lines += _section_io(results) + _section_process(results) + _outcomes(results)
    lines += ["## Reproduce", "", "```bash", "make bench                                  # everything, ~20 min "
              "on 2 cores; writes bench/results.json and this page",
              "python -m bench.run --only stall,resume     # a subset, merged into results.json",
              "python -m bench.report                      # regenerate this page and the plots from the JSON",
              "python -m bench.run --quick --out /tmp/r.json --doc /tmp/b.md   # the smoke run used by the tests",
              "```", ""]  # fmt: skip
    return "\n".join(lines)


def write_report(results: dict, doc: Path, img_dir: Path) -> None:
    from bench import plots

    img_dir.mkdir(parents=True, exist_ok=True)
    plots.plot_ratios(results, img_dir / "bench_ratios.png")
    for name, fn in (("stall", plots.plot_stall), ("warm_vs_cold", plots.plot_warm_vs_cold),
                     ("warmup", plots.plot_warmup)):  # fmt: skip
        if name in results:
            fn(results, img_dir / f"bench_{name}.png")
    findings = ROOT / "bench" / "findings.md"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(render(results, findings.read_text() if findings.exists() else ""))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__.splitlines()[0])
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    a = p.parse_args(argv)
    write_report(json.loads(a.results.read_text()), a.doc, a.img_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
