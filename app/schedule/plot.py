"""Draw a schedule's whole LR curve to a PNG, with its phases shaded and labelled (matplotlib, Agg).

A ``Figure`` with an Agg canvas is used directly (no pyplot), so nothing global changes and it works
without a display.
"""

from __future__ import annotations

import logging
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.errors import ConfigError
from app.schedule.build import BuiltSchedule

__all__ = ["plot_schedule"]

log = logging.getLogger(__name__)

_SHADES = ("#fde2c4", "#d6e6f5", "#dff0d8", "#eadcf0", "#f5f0c4")


def _draw(built: BuiltSchedule, lrs: list[float], title: str) -> Figure:
    fig = Figure(figsize=(10, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    top = max(lrs) if lrs else 1.0
    for i, phase in enumerate(built.phases):
        label = f"{phase.name}: steps {phase.start}-{phase.end - 1}"
        ax.axvspan(phase.start, phase.end, color=_SHADES[i % len(_SHADES)], alpha=0.8, lw=0, label=label)
        if phase.start > 0:
            ax.axvline(phase.start, color="0.4", ls="--", lw=0.8)
    ax.plot(range(len(lrs)), lrs, color="#1f4e9c", lw=1.8, label="learning rate")
    ax.axhline(built.base_lr, color="#b22222", ls=":", lw=0.9, label=f"base_lr {built.base_lr:.3g}")
    if 0 < built.warmup_steps < len(lrs):
        w = built.warmup_steps
        ax.plot([w], [lrs[w]], "o", color="#b22222", ms=4)
        ax.annotate(
            f"warmup ends (step {w})", (w, lrs[w]), xytext=(6, 6), textcoords="offset points", fontsize=8
        )
    ax.set_xlim(0, max(built.total_steps - 1, 1))
    ax.set_ylim(0, top * 1.12)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def plot_schedule(built: BuiltSchedule, path: str | Path, title: str = "") -> Path:
    """Write the plot of ``built.lr_table()`` to ``path`` (PNG) and return the path."""
    out = Path(path)
    lrs = built.lr_table()
    title = title or f"{built.total_steps} steps, warmup {built.warmup_steps}, peak {built.base_lr:.3g}"
    fig = _draw(built, lrs, title)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    except OSError as exc:
        raise ConfigError(f"--plot {str(out)!r}: cannot write the image: {exc.strerror or exc}") from None
    log.info("wrote LR plot to %s", out)
    return out
