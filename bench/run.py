"""``python -m bench.run [--quick]``: run every benchmark, write results.json, regenerate the doc.

Full mode (``make bench``) uses 200 MB and 1 GB checkpoint states; ``--quick`` runs the same code paths
at tiny sizes (the smoke test in ``make test``). Results are written after each suite, so an interrupted
run keeps what it measured. ``--only stall,resume`` runs a subset and merges into an existing file.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import shutil
import tempfile
import time
import zlib  # noqa: F401  (before paddle)
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.common import ROOT, Moto, load_average
from bench.figures import STANDALONE_KEYS

__all__ = ["Sizes", "FULL", "QUICK", "main"]

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Sizes:
    small: tuple[int, int]  # (width, layers) of the synthetic MLP: ~200 MB state in full mode
    large: tuple[int, int]  # ~1 GB state in full mode
    reps_small: int
    reps_large: int
    reps_process: int  # repetitions of the suites that start processes and move the large state
    throughput_steps: int
    throughput_every: int
    loop: dict[str, tuple[int, int, int, int]]  # name -> (width, layers, batch, steps)
    loop_reps: int
    sigterm_stops: list[int] = field(default_factory=list)
    warm: dict = field(default_factory=dict)
    warmup: dict = field(default_factory=dict)


FULL = Sizes(
    small=(2048, 4), large=(4096, 5), reps_small=5, reps_large=3, reps_process=3,
    throughput_steps=150, throughput_every=50, loop={"medium": (1024, 4, 32, 120), "small": (256, 2, 32, 300)}, loop_reps=5,
    sigterm_stops=[7, 13, 25],
    warm={"seeds": [1, 2, 3], "warm_steps": 240, "cold_steps": 600, "every": 10},
    warmup={"lrs": [0.01, 0.03, 0.1], "seeds": [1, 2], "steps": 100, "warmup": 20, "batch": 256},
)  # fmt: skip
QUICK = Sizes(
    small=(128, 2), large=(256, 2), reps_small=2, reps_large=2, reps_process=1,
    throughput_steps=24, throughput_every=10, loop={"medium": (64, 2, 16, 20), "small": (32, 2, 16, 20)}, loop_reps=2,
    sigterm_stops=[4],
    warm={"seeds": [1], "warm_steps": 50, "cold_steps": 30, "every": 10, "pretrain_steps": 30},
    warmup={"lrs": [0.1], "seeds": [1], "steps": 8, "warmup": 4, "batch": 64},
)  # fmt: skip


class Runner:
    def __init__(self, sizes: Sizes, out: Path, workdir: Path, moto: Moto, results: dict) -> None:
        self.sizes, self.out, self.workdir, self.moto, self.results = sizes, out, workdir, moto, results
        self.bucket = moto.bucket("bench")

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.results, indent=1, default=float) + "\n")

    def suite(self, name: str, fn: Callable[[], dict]) -> None:
        load = load_average()
        started = time.monotonic()
        log.info("== %s (load average %.2f)", name, load)
        value = fn()
        value["_run"] = {"seconds": round(time.monotonic() - started, 1), "load_avg_1min": load}
        self.results[name] = value
        self.save()
        log.info("== %s done in %.0fs", name, time.monotonic() - started)

    def dir(self, name: str) -> Path:
        path = self.workdir / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def moto_listing(self, prefix: str) -> list[str]:
        import boto3

        found = boto3.client("s3", endpoint_url=self.moto.url).list_objects_v2(
            Bucket=self.bucket, Prefix=prefix
        )
        return [o["Key"] for o in found.get("Contents", []) if o["Key"].endswith("manifest.json")]

    def _ensure_checkpoint(self, workdir: Path, uri: str, extra: list[str]) -> None:
        """One committed checkpoint of the large state at ``uri`` (what the stall suite leaves behind)."""
        from app.train.loop import save, train_step
        from bench.common import synth_overrides
        from bench.sessions import open_session

        w, n = self.sizes.large
        s = open_session([*synth_overrides(workdir, uri, width=w, layers=n), *extra])
        try:
            train_step(s)
            save(s, sync=True, reason="bench")
        finally:
            s.mgr.close()
            s.runlog.close()

    # -- suites --------------------------------------------------------------------------------
    def stall(self) -> dict:
        from bench.stall import stall_suite

        z = self.sizes
        out = {}
        for label, (width, layers), reps in (
            ("small", z.small, z.reps_small),
            ("large", z.large, z.reps_large),
        ):
            local = self.dir(f"stall-local-{label}")
            out[f"local_{label}"] = stall_suite(
                local, str(local / "ck"), width=width, layers=layers, reps=reps, sync=False, extra=[]
            )
            uri = f"s3://{self.bucket}/ck-{label}"
            out[f"s3_{label}"] = stall_suite(
                self.dir(f"stall-s3-{label}"), uri, width=width, layers=layers, reps=reps, sync=True,
                extra=self.moto.store_overrides(),
            )  # fmt: skip
        return out

    def throughput(self) -> dict:
        from bench.stall import throughput_suite

        z = self.sizes
        return throughput_suite(
            self.dir("throughput"), width=z.small[0], layers=z.small[1], steps=z.throughput_steps,
            every=z.throughput_every, reps=z.reps_large,
        )  # fmt: skip

    def transfer(self) -> dict:
        from bench.transfer import transfer_suite

        root = self.workdir / "stall-local-large"
        if not list(root.glob("ck/step-*/manifest.json")):  # run alone (--only transfer): make one
            self._ensure_checkpoint(root, str(root / "ck"), [])
        folder = _committed_folder(root / "ck")
        return transfer_suite(
            folder, self.bucket, self.moto.url, self.dir("transfer"), self.sizes.reps_process
        )

    def resume(self) -> dict:
        from bench.resume import resume_suite

        w, n = self.sizes.large
        if not self.moto_listing("ck-large/"):  # run alone (--only resume): make one
            self._ensure_checkpoint(
                self.dir("resume-src"), f"s3://{self.bucket}/ck-large", self.moto.store_overrides()
            )
        return resume_suite(
            self.dir("resume"), f"s3://{self.bucket}/ck-large", self.moto.url, self.moto.store_overrides(),
            width=w, layers=n, reps=self.sizes.reps_process,
        )  # fmt: skip

    def sigterm(self) -> dict:
        from bench.resume import sigterm_suite

        w, n = self.sizes.small
        return sigterm_suite(
            self.dir("sigterm"), f"s3://{self.bucket}/sigterm", self.moto.store_overrides(),
            width=w, layers=n, stops=self.sizes.sigterm_stops, grace_s=25.0,
        )  # fmt: skip

    def loop(self) -> dict:
        from bench.loop import loop_suite

        out = {}
        for name, (w, n, b, steps) in self.sizes.loop.items():
            work = self.dir(f"loop-{name}")
            out[name] = loop_suite(work, width=w, layers=n, batch=b, steps=steps, reps=self.sizes.loop_reps)
        return out

    def serialize(self) -> dict:
        from bench.common import synth_overrides
        from bench.serialize import serialize_suite
        from bench.sessions import host_arrays, open_session

        work = self.dir("serialize")
        w, n = self.sizes.small
        s = open_session(synth_overrides(work, str(work / "ck"), width=w, layers=n))
        from app.train.loop import train_step

        train_step(s)
        arrays = host_arrays(s)
        s.mgr.close()
        s.runlog.close()
        return serialize_suite(work, arrays, self.sizes.reps_small)

    def warm_vs_cold(self) -> dict:
        from bench.outcomes import warm_vs_cold

        return warm_vs_cold(self.dir("warm"), **self.sizes.warm)

    def warmup(self) -> dict:
        from bench.outcomes import warmup_vs_none

        return warmup_vs_none(self.dir("warmup"), **self.sizes.warmup)

    def feed(self) -> dict:
        from bench import feed

        return feed.feed_suite(self.dir("feed"), feed.QUICK if self.sizes == QUICK else feed.FULL)


def _committed_folder(root: Path) -> Path:
    steps = sorted(p for p in root.glob("step-*") if (p / "manifest.json").exists())
    if not steps:
        raise RuntimeError(f"no committed checkpoint under {root} (run the stall suite first)")
    return steps[-1]


SUITES = [
    "stall",
    "throughput",
    "transfer",
    "resume",
    "sigterm",
    "loop",
    "serialize",
    "warm_vs_cold",
    "warmup",
    "feed",
]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one or two repetitions (smoke test)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json")
    p.add_argument("--doc", type=Path, default=ROOT / "docs" / "benchmarks.md", help="'' to skip the doc")
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    p.add_argument("--only", default="", help=f"comma-separated subset of {','.join(SUITES)}")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("app", "botocore", "boto3", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    only = [s for s in args.only.split(",") if s] or SUITES
    sizes = QUICK if args.quick else FULL
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if not args.only:  # a full run starts afresh, except for what the standalone benches measured
        results = {k: v for k, v in results.items() if k in STANDALONE_KEYS}
    import paddle

    meta = {
        "mode": "quick" if args.quick else "full", "sizes": asdict(sizes),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_avg_1min_start": load_average(),
        "cpus": __import__("os").cpu_count(), "python": platform.python_version(), "paddle": paddle.__version__,
    }  # fmt: skip
    if "_meta" in results:  # a partial re-run: keep the full run's record, note this one beside it
        rerun = {
            "suites": only,
            "started": meta["started"],
            "load_avg_1min_start": meta["load_avg_1min_start"],
        }
        results["_meta"].setdefault("reruns", []).append(rerun)
        meta = rerun
    else:
        results["_meta"] = meta
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="warmstart-bench-")) if args.workdir is None else args.workdir
    moto = Moto().start()
    try:
        runner = Runner(sizes, args.out, tmp, moto, results)
        for name in only:
            runner.suite(name, getattr(runner, name))
    finally:
        moto.stop()
        if args.workdir is None:
            shutil.rmtree(tmp, ignore_errors=True)
    meta.update(seconds=round(time.monotonic() - started, 1), load_avg_1min_end=load_average())
    args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    if str(args.doc) not in ("", "."):
        from bench.report import write_report

        write_report(results, args.doc, args.img_dir)
    log.info("done in %.0fs: %s", time.monotonic() - started, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
