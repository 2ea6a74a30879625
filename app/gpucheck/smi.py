"""``nvidia-smi``: run it, and parse its two outputs the report keeps (GPU name, driver, memory, CUDA).

Two commands, both kept raw in the report and parsed here:

* ``nvidia-smi`` (the banner table): driver version and the highest CUDA version the driver supports
  (``CUDA Version: 12.2``: the driver's, not the toolkit Paddle was built with);
* ``nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv``: one CSV row per GPU. Drivers older than ~510
  reject ``compute_cap``; :func:`query` then asks again without it.

Parsing never raises on odd text: what it cannot read is left out (the raw text is in the report).
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

__all__ = ["QUERY_FIELDS", "SmiOutput", "run_smi", "parse_banner", "parse_query", "summary"]

#: Fields of ``--query-gpu`` the report asks for.
QUERY_FIELDS = ("index", "name", "driver_version", "memory.total", "memory.used", "compute_cap")
_TIMEOUT_S = 30


@dataclass
class SmiOutput:
    """What the two commands printed (None when one could not run) and why one failed."""

    banner: str | None = None
    query: str | None = None
    error: str | None = None


def _run(args: list[str]) -> tuple[int, str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def run_smi(exe: str = "nvidia-smi") -> SmiOutput:
    """Run both commands; a missing or failing ``nvidia-smi`` is recorded in ``error``, not raised."""
    path = shutil.which(exe)
    if path is None:
        return SmiOutput(error=f"{exe} not found on PATH (is the NVIDIA driver mounted into the container?)")
    out = SmiOutput()
    try:
        rc, text = _run([path])
        out.banner = text if rc == 0 else None
        fields = list(QUERY_FIELDS)
        rc, text = _run([path, f"--query-gpu={','.join(fields)}", "--format=csv"])
        if rc != 0 and "compute_cap" in text:  # an older driver: ask without it
            fields.remove("compute_cap")
            rc, text = _run([path, f"--query-gpu={','.join(fields)}", "--format=csv"])
        out.query = text if rc == 0 else None
        if rc != 0:
            out.error = f"nvidia-smi --query-gpu exited {rc}: {text.strip()[:300]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        out.error = f"nvidia-smi failed: {exc}"
    return out


_BANNER = {
    "smi_version": re.compile(r"NVIDIA-SMI\s+([\w.]+)"),
    "driver_version": re.compile(r"Driver Version:\s*([\w.]+)"),
    "cuda_version": re.compile(r"CUDA Version:\s*([\w.]+)"),
}
# "|   0  NVIDIA A100-SXM4-40GB          On  | 00000000:00:04.0 Off |                    0 |"
_GPU_ROW = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(On|Off)\s+\|\s+([0-9A-Fa-f:.]+)\s")
# "| N/A   32C    P0              43W / 400W |      4MiB / 40960MiB |      0%      Default |"
_MEMORY = re.compile(r"(\d+)\s*MiB\s*/\s*(\d+)\s*MiB")


def parse_banner(text: str) -> dict[str, Any]:
    """Driver, CUDA (driver's) and per-GPU index/name/bus/memory from the banner table."""
    out: dict[str, Any] = {}
    for key, pattern in _BANNER.items():
        found = pattern.search(text)
        if found:
            out[key] = found.group(1)
    gpus: list[dict[str, Any]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        row = _GPU_ROW.match(line)
        if not row:
            continue
        gpu: dict[str, Any] = {"index": int(row.group(1)), "name": row.group(2), "bus_id": row.group(4)}
        memory = _MEMORY.search(lines[i + 1]) if i + 1 < len(lines) else None
        if memory:
            gpu["memory_used_mib"], gpu["memory_total_mib"] = int(memory.group(1)), int(memory.group(2))
        gpus.append(gpu)
    out["gpus"] = gpus
    return out


def _header_key(name: str) -> tuple[str, str | None]:
    """``"memory.total [MiB]"`` -> ("memory.total", "MiB")."""
    found = re.match(r"\s*([\w.]+)\s*(?:\[(\w+)\])?", name)
    return (found.group(1), found.group(2)) if found else (name.strip(), None)


def _value(raw: str, unit: str | None) -> Any:
    raw = raw.strip()
    if raw in ("[N/A]", "N/A", "[Not Supported]", ""):
        return None
    if unit:
        raw = raw.removesuffix(unit).strip()
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


_RENAME = {"memory.total": "memory_total_mib", "memory.used": "memory_used_mib"}


def parse_query(text: str) -> list[dict[str, Any]]:
    """One dict per CSV row of ``--query-gpu ... --format=csv`` (units dropped, numbers as numbers)."""
    rows = [r for r in csv.reader(io.StringIO(text.strip())) if r]
    if len(rows) < 2:
        return []
    header = [_header_key(h) for h in rows[0]]
    out = []
    for row in rows[1:]:
        if len(row) != len(header):
            continue
        gpu = {
            _RENAME.get(k, k.replace(".", "_")): _value(v, unit)
            for (k, unit), v in zip(header, row, strict=True)
        }
        if gpu.get("compute_cap") is not None:
            gpu["compute_cap"] = str(gpu["compute_cap"])
        out.append(gpu)
    return out


def summary(smi: SmiOutput) -> dict[str, Any]:
    """The parsed view: driver, CUDA (driver's), GPUs (from the query, else from the banner table)."""
    banner = parse_banner(smi.banner) if smi.banner else {}
    gpus = parse_query(smi.query) if smi.query else []
    out: dict[str, Any] = {
        "driver_version": banner.get("driver_version")
        or next((g.get("driver_version") for g in gpus if g.get("driver_version")), None),
        "cuda_version_driver": banner.get("cuda_version"),
        "gpus": gpus or banner.get("gpus", []),
    }
    if smi.error:
        out["error"] = smi.error
    return out
