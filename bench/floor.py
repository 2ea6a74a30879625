"""``python -m bench.floor``: the resume floor — import, download, load, one optimizer step, nothing else.

No listing, no manifest, no hashing, no config: boto3 downloads the tensor files of one known step folder
with the same multipart settings as our store, safetensors reads them, the synthetic model gets its
weights and the optimizer its moments, and one optimizer step runs. Prints a JSON line of phase times;
appends ``step wall_time perf_counter`` to ``--marks`` after the step (as the benchmark task does).
"""

from __future__ import annotations

import time

STARTED = time.time()

import argparse  # noqa: E402
import json  # noqa: E402
import zlib  # noqa: E402,F401  (before paddle)
from pathlib import Path  # noqa: E402

import boto3  # noqa: E402
import paddle  # noqa: E402
from boto3.s3.transfer import TransferConfig  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from app.train.state import load_optimizer  # noqa: E402
from bench.synth import SynthNet, SynthTask  # noqa: E402

__all__ = ["main"]

MB = 1024 * 1024


def _download(bucket: str, prefix: str, endpoint: str, dest: Path) -> list[Path]:
    client = boto3.client("s3", endpoint_url=endpoint)
    conf = TransferConfig(multipart_threshold=32 * MB, multipart_chunksize=32 * MB, max_concurrency=8)
    out = []
    for group in ("model", "optimizer"):
        path = dest / f"{group}.safetensors"
        client.download_file(bucket, f"{prefix}/{group}.safetensors", str(path), Config=conf)
        out.append(path)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    for name in ("--bucket", "--prefix", "--endpoint", "--dest", "--marks"):
        p.add_argument(name, required=True)
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--layers", type=int, required=True)
    a = p.parse_args()
    phases = {"import": time.time() - STARTED}
    t = time.time()
    model_file, opt_file = _download(a.bucket, a.prefix, a.endpoint, Path(a.dest))
    phases["download"] = time.time() - t
    t = time.time()
    task = SynthTask({"width": a.width, "layers": a.layers}, seed=0)
    net = SynthNet(a.width, a.layers, 10)
    for name, value in load_file(str(model_file)).items():
        net.state_dict()[name].set_value(value)
    opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=net.parameters())
    load_optimizer(opt, net, load_file(str(opt_file)), str(opt_file))
    phases["load"] = time.time() - t
    t = time.time()
    loss = task.loss(net, task.to_batch(task.train_arrays(list(range(8)), 0)))
    loss.backward()
    opt.step()
    opt.clear_grad()
    with open(a.marks, "a") as fh:
        fh.write(f"1 {time.time():.6f} {time.perf_counter():.6f}\n")
    phases["step"] = time.time() - t
    print(json.dumps(phases), flush=True)


if __name__ == "__main__":
    main()
