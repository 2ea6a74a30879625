"""Our loop (``app.train.loop.run_loop``) against a hand-written Paddle loop on the same model and batches.

Both sides start from a session built by the trainer with the same seed (same initial weights, same data
order). Ours runs the real loop (per-step reseed, freeze check, loss check, run log); the bare loop does
forward, backward, ``optimizer.step()``, ``clear_grad()`` and ``lr.step()`` only. Throughput is counted
between the first and the last optimizer step, so start-up, the final evaluation and the final save are
outside both measurements. The final parameters of both sides are compared bit for bit.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from app.train.loop import run_loop
from bench.common import interleave, ratio_figure, synth_overrides
from bench.sessions import open_session

__all__ = ["loop_suite"]


def _bare(s, steps: int) -> list[float]:  # noqa: ANN001  (a Session)
    net, opt, lr, task, stream = s.net, s.optimizer, s.lr, s.task, s.stream
    net.train()
    stamps = []
    for _ in range(steps):
        epoch, indices = stream.next_batch()
        loss = task.loss(net, task.to_batch(task.train_arrays(indices, epoch)))
        loss.backward()
        opt.step()
        opt.clear_grad()
        lr.step()
        stamps.append(time.perf_counter())
    return stamps


def loop_suite(workdir: Path, *, width: int, layers: int, batch: int, steps: int, reps: int) -> dict:
    base = synth_overrides(
        workdir, str(workdir / "unused"), width=width, layers=layers,
        **{"schedule.total_steps": steps, "train.batch_size": batch, "train.log_every_steps": 10},
    )  # fmt: skip
    counter = {"n": 0}
    finals: dict[str, dict[str, np.ndarray]] = {}

    def side(name: str) -> float:
        counter["n"] += 1
        run = workdir / f"loop-{counter['n']}"
        s = open_session([*base, f"run.dir={run}", f"checkpoint.uri={run / 'ck'}"])
        try:
            if name == "ours":
                run_loop(s)
                stamps = s.task.stamps
            else:
                stamps = _bare(s, steps)
        finally:
            s.mgr.close()
            s.runlog.close()
        finals[name] = {k: v.numpy() for k, v in s.net.state_dict().items()}
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    runs = interleave(reps, {"ours": lambda: side("ours"), "bare": lambda: side("bare")})
    same = all(np.array_equal(finals["ours"][k], finals["bare"][k]) for k in finals["ours"])
    fig = ratio_figure(runs["ours"], runs["bare"])  # steps/s, ratio = ours / bare
    fig.update(width=width, layers=layers, batch=batch, steps=steps, identical_final_params=same)
    return fig
