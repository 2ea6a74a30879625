"""PNG plots for docs/benchmarks.md, drawn from results.json (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.figures import FIGURES, lookup  # noqa: E402

__all__ = ["plot_ratios", "plot_stall", "plot_warm_vs_cold", "plot_warmup"]


def _err(summary: dict) -> tuple[float, list[float]]:
    med = summary["median"]
    return med, [med - summary["min"], summary["max"] - med]


def plot_ratios(results: dict, path: Path) -> None:
    """Every ratio figure: median with min-max whiskers, and its target."""
    figs = [f for f in FIGURES if f.path[-2:] == ("ratio", "median")]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(figs) + 1.2))
    for i, f in enumerate(figs):
        try:
            summary = lookup(results, f.path[:-1])
        except KeyError:
            continue
        med, err = _err(summary)
        if not math.isfinite(med):
            continue
        ok = f.op == "" or (med <= f.target if f.op == "<=" else med >= f.target)
        ax.errorbar([med], [i], xerr=[[err[0]], [err[1]]], fmt="o", color="tab:green" if ok else "tab:red",
                    capsize=3)  # fmt: skip
        if f.target is not None:
            ax.plot([f.target], [i], marker="|", markersize=14, color="black")
    ax.set_yticks(range(len(figs)), [f.key for f in figs])
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ratio ours / anchor (median, min-max); black bar = target; green = met, red = missed")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_stall(results: dict, path: Path) -> None:
    """Seconds the training thread is blocked: async save vs pure copy vs synchronous save + upload."""
    stall = results["stall"]
    labels, series = [], {"async save() stall": [], "pure host copy": [], "sync save + upload": []}
    for key in ("local_small", "local_large", "s3_small", "s3_large"):
        if key not in stall:
            continue
        entry = stall[key]
        labels.append(f"{key.replace('_', ' ')}\n{entry['state_mb']:.0f} MiB")
        series["async save() stall"].append(entry["vs_copy"]["ours"])
        series["pure host copy"].append(entry["vs_copy"]["anchor"])
        series["sync save + upload"].append(entry["vs_sync"]["anchor"] if "vs_sync" in entry else None)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.27
    for j, (name, values) in enumerate(series.items()):
        for i, summary in enumerate(values):
            if summary is None:
                continue
            med, err = _err(summary)
            ax.bar(i + (j - 1) * width, med, width, yerr=[[err[0]], [err[1]]], capsize=3,
                   color=f"C{j}", label=name if i == 0 or (j == 2 and i == 2) else None)  # fmt: skip
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (median, min-max)")
    ax.set_title("training-thread stall per checkpoint")
    handles, names = ax.get_legend_handles_labels()
    ax.legend(
        dict(zip(names, handles, strict=False)).values(),
        dict(zip(names, handles, strict=False)).keys(),
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_warm_vs_cold(results: dict, path: Path) -> None:
    data = results["warm_vs_cold"]
    colors = {"warm": "tab:orange", "warm_same": "tab:green", "cold": "tab:blue"}
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, t in enumerate(data["trials"]):
        for arm, color in colors.items():
            curve = t[arm]["curve"]
            ax.plot([s for s, _ in curve], [v for _, v in curve], color=color, alpha=0.8,
                    label=arm if i == 0 else None)  # fmt: skip
        ax.axhline(t["target"], color="tab:blue", ls=":", lw=0.8)
    ax.set_xlabel(f"optimizer step ({data['steps_per_epoch']} steps = 1 epoch)")
    ax.set_ylabel("eval accuracy (10 classes)")
    ax.set_title("digits: partial warm start from a 5-class model vs cold start (dotted: cold final)")
    ax.set_ylim(0, 1)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_warmup(results: dict, path: Path) -> None:
    data = results["warmup"]
    lrs = sorted({r["lr"] for r in data["runs"]})
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.2 * len(lrs), 3.6), squeeze=False)
    for ax, lr in zip(axes[0], lrs, strict=True):
        for r in (r for r in data["runs"] if r["lr"] == lr):
            color = "tab:green" if r["warmup"] == "linear" else "tab:red"
            label = f"{'linear warmup' if r['warmup'] == 'linear' else 'no warmup'}"
            ax.plot([s for s, _ in r["losses"]], [v for _, v in r["losses"]], color=color, alpha=0.7,
                    label=label if r["seed"] == data["runs"][0]["seed"] else None)  # fmt: skip
        ax.axvline(data["warmup_steps"], color="gray", ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"AdamW lr {lr:g}, batch {data['batch']}")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("training loss (log)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
