"""Upload and download of a committed checkpoint folder: our store layer vs ``aws s3 cp`` on one moto_server.

Ours is what the checkpoint writer and reader call (``ObjectStore.upload_file`` / ``download_file`` with
the default ``store:`` settings, 32 MiB parts x 8); the anchor is the AWS CLI (``aws s3 cp --recursive``,
its defaults) against the same server. Each repetition uses fresh keys and deletes them afterwards.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from app.store import open_store
from app.store.config import StoreConfig
from bench.common import interleave, ratio_figure

__all__ = ["transfer_suite"]


def _aws(endpoint: str, *args: str) -> None:
    exe = Path(sys.executable).with_name("aws")
    cmd = [str(exe), "s3", *args, "--endpoint-url", endpoint, "--only-show-errors"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def _clear(store_uri: str, cfg: StoreConfig) -> None:
    store = open_store(store_uri, cfg)
    keys = [info.key for info in store.list("")]
    if keys:
        store.delete(keys)


def transfer_suite(folder: Path, bucket: str, endpoint: str, workdir: Path, reps: int) -> dict:
    """Paired timings of upload and download of every file in ``folder``."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    nbytes = sum(p.stat().st_size for p in files)
    cfg = StoreConfig(endpoint_url=endpoint, addressing_style="path", region="us-east-1")
    counter = {"n": 0}
    down_times: dict[str, list[float]] = {"ours": [], "aws": []}

    def ours() -> float:
        counter["n"] += 1
        uri = f"s3://{bucket}/ours-{counter['n']}"
        store = open_store(uri, cfg)
        started = time.perf_counter()
        for path in files:
            store.upload_file(path, path.name, overwrite=True)
        up = time.perf_counter() - started
        dest = workdir / f"dl-ours-{counter['n']}"
        dest.mkdir(parents=True)
        started = time.perf_counter()
        for path in files:
            store.download_file(path.name, dest / path.name)
        down_times["ours"].append(time.perf_counter() - started)
        shutil.rmtree(dest)
        _clear(uri, cfg)
        return up

    def aws() -> float:
        counter["n"] += 1
        uri = f"s3://{bucket}/aws-{counter['n']}"
        started = time.perf_counter()
        _aws(endpoint, "cp", "--recursive", str(folder), uri)
        up = time.perf_counter() - started
        dest = workdir / f"dl-aws-{counter['n']}"
        started = time.perf_counter()
        _aws(endpoint, "cp", "--recursive", uri, str(dest))
        down_times["aws"].append(time.perf_counter() - started)
        got = sum(p.stat().st_size for p in dest.iterdir())
        shutil.rmtree(dest)
        _clear(uri, cfg)
        if got != nbytes:
            raise RuntimeError(f"aws s3 cp downloaded {got} bytes, expected {nbytes}")
        return up

    up = interleave(reps, {"ours": ours, "aws": aws})
    mb = nbytes / 2**20
    return {
        "size_mb": round(mb, 1),
        "files": len(files),
        "upload": ratio_figure(up["ours"], up["aws"]),
        "download": ratio_figure(down_times["ours"], down_times["aws"]),
    }
