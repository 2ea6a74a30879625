"""Several processes under ``paddle.distributed.launch``: joining the group and keeping the ranks in step.

Rank 0 alone writes checkpoints and ``log.jsonl``; every rank loads the same checkpoint and trains its
slice of each global micro-batch (gradients are averaged by ``paddle.DataParallel``). What keeps the
ranks in step is here: a stop request seen by any rank stops every rank at the same step
(:func:`stop_agreed`, one all-reduce per step), :func:`barrier` holds the other ranks until rank 0 has
committed, and :func:`check_replicas` proves the parameters are identical when training ends.
Every function is a no-op (no collective call) when ``world == 1``. See ``docs/distributed.md``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paddle

from app.errors import CheckpointError, ConfigError
from app.train.preempt import StopRequest

__all__ = [
    "Dist",
    "init_dist",
    "world_from_env",
    "barrier",
    "data_parallel",
    "any_rank",
    "mean_over_ranks",
    "same_on_all_ranks",
    "stop_agreed",
    "params_digest",
    "check_replicas",
    "rank_dir",
]

log = logging.getLogger(__name__)

#: Seconds a rank > 0 waits for rank 0's rendezvous port before giving up (Paddle itself retries forever).
CONNECT_TIMEOUT_S = 300.0

_barriers = itertools.count()  # barrier keys on the TCP store; every rank counts the same calls

#: Environment the 2.6 launcher sets for each worker, shown in error messages (never any credentials).
_LAUNCH_ENV = (
    "PADDLE_TRAINERS_NUM",
    "PADDLE_TRAINER_ID",
    "PADDLE_GLOBAL_SIZE",
    "PADDLE_GLOBAL_RANK",
    "PADDLE_MASTER",
    "PADDLE_CURRENT_ENDPOINT",
    "PADDLE_TRAINER_ENDPOINTS",
    "PADDLE_DISTRI_BACKEND",
    "GLOO_SOCKET_IFNAME",
)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``world`` processes in all, this one is ``rank``."""

    world: int
    rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, int] | None:
    for name in names:
        raw = env.get(name, "").strip()
        if raw:
            try:
                return name, int(raw)
            except ValueError:
                raise ConfigError(f"environment variable {name}={raw!r} is not an integer") from None
    return None


def world_from_env(env: Mapping[str, str] | None = None) -> Dist:
    """World size and rank as the launcher set them (``PADDLE_TRAINERS_NUM``/``PADDLE_TRAINER_ID``, or the
    2.6 launcher's ``PADDLE_GLOBAL_SIZE``/``PADDLE_GLOBAL_RANK``); ``Dist(1, 0)`` when neither is set."""
    env = os.environ if env is None else env
    world = _env_int(env, ("PADDLE_TRAINERS_NUM", "PADDLE_GLOBAL_SIZE"))
    rank = _env_int(env, ("PADDLE_TRAINER_ID", "PADDLE_GLOBAL_RANK"))
    if world is None or world[1] <= 1:
        if world is not None and world[1] < 1:
            raise ConfigError(f"environment variable {world[0]}={world[1]}: the world size must be >= 1")
        return Dist(1, 0)
    if rank is None:
        raise ConfigError(
            f"{world[0]}={world[1]} but no rank is set (PADDLE_TRAINER_ID or PADDLE_GLOBAL_RANK)",
            hint="start several processes with `python -m paddle.distributed.launch --nproc_per_node N`",
        )
    if not 0 <= rank[1] < world[1]:
        raise ConfigError(f"{rank[0]}={rank[1]} is outside 0..{world[1] - 1} ({world[0]}={world[1]})")
    return Dist(world[1], rank[1])


def _launch_env() -> str:
    return ", ".join(f"{k}={os.environ[k]}" for k in _LAUNCH_ENV if k in os.environ) or "none set"


def _wait_for_master(address: str, timeout: float) -> None:
    """Paddle's TCP store retries a missing rank 0 forever; fail with a message instead."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=2.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"rank 0's rendezvous {address} did not answer within {timeout:.0f}s ({exc})",
                    hint="start every rank with `python -m paddle.distributed.launch`; is rank 0 running?",
                ) from None
            time.sleep(0.5)


def _gloo_interface(env: Mapping[str, str]) -> str | None:
    """The network interface gloo must use on a multi-node job, when it would otherwise pick a wrong one.

    Without ``GLOO_SOCKET_IFNAME`` gloo binds to the address the host name resolves to; where that is not
    the address the launcher announced for this rank (a host name mapped to 127.0.1.1, a container sharing
    the host's name), the peers dial an address nobody listens on and joining fails after 150 s with a
    bare ``gloo ... TIMEOUT``. This returns the interface holding the announced address in that case.
    """
    ip = env.get("PADDLE_CURRENT_ENDPOINT", "").rpartition(":")[0]
    if env.get("GLOO_SOCKET_IFNAME") or not ip or ip.startswith("127."):
        return None
    try:
        if socket.gethostbyname(socket.getfqdn(socket.gethostname())) == ip:
            return None
    except OSError:
        pass
    import psutil

    for name, addrs in psutil.net_if_addrs().items():
        if any(a.family == socket.AF_INET and a.address == ip for a in addrs):
            return name
    return None


def init_dist(connect_timeout: float = CONNECT_TIMEOUT_S) -> Dist:
    """Join the process group when launched as one of several processes; ``Dist(1, 0)`` otherwise."""
    want = world_from_env()
    if want.world == 1:
        return want
    import paddle.distributed as pdist

    if not (paddle.is_compiled_with_cuda() or paddle.is_compiled_with_xpu()):
        # A CPU build fails with an opaque "list.remove(x)" unless the backend is named (the 2.6 launcher
        # sets it; a hand-made environment may not).
        os.environ.setdefault("PADDLE_DISTRI_BACKEND", "gloo")
    iface = _gloo_interface(os.environ)
    if iface is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = iface
        log.info("gloo: using interface %s (it holds this rank's endpoint)", iface)
    master = os.environ.get("PADDLE_MASTER") or os.environ.get("PADDLE_TRAINER_ENDPOINTS", "").split(",")[0]
    if want.rank > 0 and master:
        _wait_for_master(master, connect_timeout)
    try:
        pdist.init_parallel_env()
    except Exception as exc:  # Paddle raises ValueError/AssertionError/NotImplementedError/RuntimeError
        raise ConfigError(
            f"could not join the process group as rank {want.rank} of {want.world}: "
            f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''} "
            f"(launch environment: {_launch_env()})",
            hint="run under `python -m paddle.distributed.launch --nproc_per_node N`; "
            "on a CPU build set PADDLE_DISTRI_BACKEND=gloo",
        ) from exc
    got = Dist(pdist.get_world_size(), pdist.get_rank())
    if got != want:
        raise ConfigError(f"process group reports rank {got.rank} of {got.world}, environment says {want}")
    log.info("joined the process group: rank %d of %d (%s)", got.rank, got.world, _launch_env())
    return got


def _all_reduce(values: list[float], op: str, dtype: str = "float64") -> np.ndarray:
    import paddle.distributed as pdist

    t = paddle.to_tensor(np.asarray(values), dtype=dtype)
    pdist.all_reduce(
        t, op={"max": pdist.ReduceOp.MAX, "min": pdist.ReduceOp.MIN, "sum": pdist.ReduceOp.SUM}[op]
    )
    return t.numpy()


def barrier(d: Dist, *, best_effort: bool = False) -> None:
    """Wait, however long it takes, until every rank gets here (e.g. until rank 0 has committed a save).

    Not ``paddle.distributed.barrier``: on CPU its gloo collectives give up after 30 s, which a checkpoint
    upload can exceed. The ranks count themselves in on the launch's TCP store instead (no deadline; if
    rank 0 dies, its store goes with it and the wait fails at once). Every rank must call this the same
    number of times in the same order. One call costs ~90 ms on loopback.

    ``best_effort``: used on the way out after a preemption save. The bare launcher tears its store down
    when it gets SIGTERM; once rank 0 has committed, a broken wait must not turn exit 143 into a crash.
    """
    if d.world == 1:
        return
    if best_effort:
        try:
            _wait_all(d)
        except Exception as exc:  # Paddle raises RuntimeError/OSError variants from its TCP store
            log.warning("rank %d: could not wait for the other ranks while stopping (%s)", d.rank, exc)
        return
    _wait_all(d)


def _wait_all(d: Dist) -> None:
    from paddle.base import core

    store = core.create_or_get_global_tcp_store()
    key = f"warmstart/barrier/{next(_barriers)}"
    store.add(key, 1)
    delay = 0.001
    while store.add(key, 0) < d.world:
        time.sleep(delay)
        delay = min(2 * delay, 0.05)


def data_parallel(net: paddle.nn.Layer, d: Dist) -> paddle.nn.Layer:
    """``net`` wrapped to all-reduce (average) its gradients; its construction broadcasts rank 0's weights.

    Ranks may reach this minutes apart (each downloads the checkpoint it resumes from), so they meet
    at a :func:`barrier` first: the broadcast is a gloo collective, which would time out after 30 s.
    """
    if d.world == 1:
        return net
    barrier(d)
    return paddle.DataParallel(net)


def any_rank(flag: bool, d: Dist) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    if d.world == 1:
        return flag
    return bool(_all_reduce([1 if flag else 0], "max", "int32")[0])


def mean_over_ranks(value: float, d: Dist) -> float:
    if d.world == 1:
        return value
    return float(_all_reduce([value], "sum")[0] / d.world)


def same_on_all_ranks(value: int, d: Dist) -> bool:
    if d.world == 1:
        return True
    lo = _all_reduce([value], "min", "int64")[0]
    hi = _all_reduce([value], "max", "int64")[0]
    return bool(lo == hi)


def stop_agreed(stop: StopRequest, d: Dist) -> bool:
    """Whether to stop now, the same answer on every rank.

    A SIGTERM may reach one rank only, or reach the ranks during different steps; a rank that stopped
    alone would leave the others blocked in the next gradient all-reduce. So each step the local flag is
    all-reduced, and a rank that did not see the request itself records it as coming from a peer.
    """
    local = stop.requested
    if d.world == 1 or not any_rank(local, d):
        if local:
            stop.agree()
        return local
    if not local:
        stop.request("another rank was asked to stop")
    stop.agree()
    return True


def _running_statistics(net: paddle.nn.Layer) -> set[int]:
    """ids of the BatchNorm running mean/variance tensors (Paddle keeps them as non-trainable parameters)."""
    norms = (paddle.nn.layer.norm._BatchNormBase,)  # noqa: SLF001  (BatchNorm1D/2D/3D, SyncBatchNorm)
    return {
        id(t)
        for layer in net.sublayers(include_self=True)
        if isinstance(layer, norms)
        for t in (getattr(layer, "_mean", None), getattr(layer, "_variance", None))
        if t is not None
    }


def params_digest(net: paddle.nn.Layer) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes), in name order, except BatchNorm
    running statistics: ``paddle.DataParallel`` all-reduces gradients, not those, so ranks that saw
    different samples hold different statistics (as in PaddleOCR's and ppdet's own trainers); rank 0's
    are the ones saved."""
    skip = _running_statistics(net)
    h = hashlib.sha256()
    for name, tensor in sorted(net.state_dict().items()):
        if id(tensor) in skip:
            continue
        arr = np.ascontiguousarray(tensor.numpy())
        h.update(f"{name}|{arr.dtype}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def check_replicas(net: paddle.nn.Layer, d: Dist) -> str | None:
    """Raise unless every rank holds bit-identical parameters; returns this rank's digest (None if one rank)."""
    if d.world == 1:
        return None
    digest = params_digest(net)
    if not same_on_all_ranks(int(digest[:15], 16), d):
        raise CheckpointError(
            f"rank {d.rank}'s parameters differ from another rank's after training (sha256 {digest[:12]})",
            hint="the ranks loaded different checkpoints or a gradient was not all-reduced",
        )
    return digest


def rank_dir(run_dir: Path, d: Dist) -> Path:
    """Where this rank writes its own files: the run folder for rank 0, ``<run.dir>/rank<N>`` for others."""
    return run_dir if d.is_main else run_dir / f"rank{d.rank}"
