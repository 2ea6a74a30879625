"""Measure upload/download throughput of a store for several part sizes and concurrencies.

    python -m app.store.bench s3://bucket/bench --endpoint-url http://127.0.0.1:5000 \
        --size-mb 256 --part-sizes 8,16,32,64 --concurrency 4,8,16

Each combination uploads one file of random bytes, downloads it back, checks the size, and deletes it.
Not a test: timings depend on the machine and the server (see docs/storage.md for recorded numbers).
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from app.store.config import StoreConfig
from app.store.registry import open_store

__all__ = ["measure", "main"]


def measure(uri: str, cfg: StoreConfig, src: Path, workdir: Path) -> tuple[float, float]:
    """Seconds to upload ``src`` to ``uri`` and to download it back."""
    store = open_store(uri, cfg)
    key = f"bench-{cfg.part_size_mb}-{cfg.max_concurrency}.bin"
    started = time.perf_counter()
    store.upload_file(src, key, overwrite=True)
    up = time.perf_counter() - started
    out = workdir / key
    started = time.perf_counter()
    store.download_file(key, out)
    down = time.perf_counter() - started
    if out.stat().st_size != src.stat().st_size:
        raise RuntimeError(f"size mismatch for {key}")
    out.unlink()
    store.delete([key])
    return up, down


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("uri")
    parser.add_argument("--endpoint-url")
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--part-sizes", type=_ints, default=[8, 16, 32, 64])
    parser.add_argument("--concurrency", type=_ints, default=[4, 8, 16])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    base = StoreConfig(
        endpoint_url=args.endpoint_url, addressing_style="path" if args.endpoint_url else "auto"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        src = workdir / "src.bin"
        with open(src, "wb") as fh:
            for _ in range(args.size_mb):
                fh.write(os.urandom(1024 * 1024))
        print(f"{'part MiB':>8} {'conc':>4} {'up s':>6} {'down s':>6} {'up MB/s':>8} {'down MB/s':>9}")
        for part, conc in itertools.product(args.part_sizes, args.concurrency):
            cfg = replace(base, part_size_mb=part, max_concurrency=conc)
            runs = [measure(args.uri, cfg, src, workdir) for _ in range(args.repeat)]
            up, down = min(r[0] for r in runs), min(r[1] for r in runs)
            size = args.size_mb * 1.048576
            print(
                f"{part:>8} {conc:>4} {up:>6.2f} {down:>6.2f} {size / up:>8.0f} {size / down:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
