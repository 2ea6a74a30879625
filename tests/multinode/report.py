"""The multi-node section of ``docs/reliability.md``, from the ``multinode_*.json`` figures of tests/multinode.

:func:`tests.faults.report.render` appends it; ``make faults`` runs tests/multinode with the other fault
suites into the same results folder.
"""

from __future__ import annotations

from collections import Counter

__all__ = ["section"]


def _victims(runs: list[dict]) -> str:
    by = Counter(r.get("victim_rank") for r in runs)
    return ", ".join(f"rank {k}'s host {n}" for k, n in sorted(by.items()))


def _same(runs: list[dict]) -> str:
    return f"{sum(bool(r.get('bit_identical')) for r in runs)}/{len(runs)}"


def _lost_row(label: str, fig: dict, codes: str) -> str:
    runs = fig.get("runs", [])
    lost = [r["steps_lost"] for r in runs]
    return (
        f"| {label} | {len(runs)} ({_victims(runs)}) | {codes} | {fig.get('hangs', '-')} | "
        f"{fig.get('corrupt_loads', '-')} | {max(lost, default='-')} max, {sum(lost) / max(len(lost), 1):.1f} mean "
        f"(since the last commit) | {fig.get('median_s', '-')} s / {fig.get('max_s', '-')} s "
        f"(timeout {fig.get('peer_timeout_s', '-')} s) | {_same(runs)} |"
    )


def section(results: dict[str, dict]) -> list[str]:
    """Markdown lines (empty when the multi-node suite did not run, e.g. not root)."""
    notice, lost = results.get("multinode_notice"), results.get("multinode_lost")
    cut, scale = results.get("multinode_cut"), results.get("multinode_scale")
    if not any((notice, lost, cut, scale, results.get("multinode_three"))):
        return []
    lines = [
        "## Several nodes (tests/multinode)",
        "",
        "Two test hosts in network namespaces (198.18.0.0/15), one `warmstart launch` per host, checkpoints on",
        "moto S3; the victim alternates between rank 1's and rank 0's host. Detection: from the kill or cut to",
        "the survivor's `warmstart launch` exiting (lost-peer timeout set to 20 s in the tests; default 45 s).",
        "",
        "| scenario | runs | exit codes (victim / other host) | hangs | corrupt loads | steps lost | "
        "detection median / max | bit-identical resumes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    if notice:
        runs = notice.get("runs", [])
        lines.append(
            f"| notice (SIGTERM to one host's supervisor) | {len(runs)} ({_victims(runs)}) | 143 / 143 | "
            f"{notice.get('hangs', '-')} | {notice.get('corrupt_loads', '-')} | 0 (committed at the stop step) "
            f"| - | {_same(runs)} |"
        )
    if lost:
        lines.append(_lost_row("node lost (kill -9 of every process on one host)", lost, "killed / 142"))
    if cut:
        lines.append(_lost_row("link cut (`ip link set <veth> down`)", cut, "142 / 142"))
    three = results.get("multinode_three")
    if three:
        runs = three.get("runs", [])
        detect = [t for r in runs for t in r.get("detect_s", [])]
        lines.append(
            f"| three hosts, rank 1's killed | {len(runs)} | "
            f"{'; '.join(' / '.join(str(c) for c in r.get('codes', [])) for r in runs)} | 0 | 0 | - | "
            f"{max(detect, default='-')} s max | - (resumed, exit 0) |"
        )
    if scale:
        lines.append(
            "| 2 → 1 → 2 nodes on restart | 1 | 143, 143, 0 | 0 | 0 | 0 | - | - (global batch changes: LR and "
            "warmup rescaled, sample position kept, both printed) |"
        )
    return [*lines, ""]
