"""Plain-text views of checkpoints for the CLI: the ``ls`` table and the ``show`` summary.

Formatting only: callers gather statuses, metas and tags; nothing here touches a store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.checkpoint.layout import Manifest
from app.redact import redact_data

__all__ = ["human_size", "format_metrics", "format_table", "show_lines"]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def format_metrics(metrics: Mapping[str, Any] | None) -> str:
    if not metrics:
        return "-"
    parts = []
    for key in sorted(metrics):
        value = metrics[key]
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    return " ".join(parts)


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=False)] + [str(row[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _state_summary(state: Mapping[str, Any]) -> list[str]:
    lines = []
    for key in sorted(state):
        value = state[key]
        if isinstance(value, dict | list):
            lines.append(f"  {key}: <{type(value).__name__} of {len(value)}>")
        else:
            lines.append(f"  {key}: {_short(value)}")
    return lines or ["  (empty)"]


def show_lines(
    uri: str,
    manifest: Manifest,
    manifest_sha256: str,
    meta: Mapping[str, Any],
    state: Mapping[str, Any],
    tags: Sequence[str],
) -> list[str]:
    meta = redact_data(dict(meta))  # a checkpoint written elsewhere (or before redaction) may hold secrets
    code = meta.get("code_version") or {}
    lines = [
        f"checkpoint:     {uri}",
        f"step:           {manifest.step}",
        f"committed:      {manifest.created_utc} (manifest sha256 {manifest_sha256})",
        f"tags:           {', '.join(tags) or '-'}",
        "files:",
    ]
    lines += [f"  {f.name:<24} {human_size(f.size):>10}  sha256 {f.sha256}" for f in manifest.files]
    lines += [
        "meta:",
        f"  saved:        {meta.get('utc_time', '-')} by {meta.get('user', '-')}",
        f"  metrics:      {format_metrics(meta.get('metrics'))}",
        f"  code:         warmstart {code.get('app', '-')} (git {code.get('git_commit') or '-'}), "
        f"paddle {meta.get('paddle_version') or '-'}",
        f"  config hash:  {meta.get('config_hash') or '-'}",
        f"  parent:       {meta.get('parent') or '-'}",
        f"  data source:  {meta.get('data_source') or '-'}",
        f"  notes:        {_short(meta.get('notes') or '-')}",
    ]
    init = meta.get("init_source")
    if isinstance(init, dict) and init.get("from"):
        digest = init.get("sha256") or init.get("manifest_sha256")
        lines.append(f"  init source:  {init['from']}" + (f" (sha256 {digest})" if digest else ""))
    if meta.get("source"):
        lines.append(f"  source:       {meta['source']}")
    return lines + ["trainer state:", *_state_summary(state)]
