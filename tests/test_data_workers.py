"""Data worker processes (train.data_workers): the same batches and bit-identical weights for any worker
count, exact resume with prefetched batches dropped, a failing or killed worker stops the run with one
line (exit 5), workers never outlive the trainer (SIGTERM, kill -9), batches cross in shared memory that no
normal end, exception or signal leaves behind, and the loop reads losses to the host
only at log steps while a non-finite loss is still never checkpointed.

``make faults`` adds 4 workers for ``ocr_rec`` and detection (tests/faults/test_fault_workers.py).
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)
import app.train.batches as batches_mod
from app.checkpoint import CheckpointManager, catalog
from app.config import load_config
from app.errors import EXIT_TASK, TaskError
from app.store import open_store
from app.tasks.digits import DigitsTask
from app.train import wire
from app.train.batches import InProcess, WorkerPool, auto_workers, resolve_workers
from app.train.data import DataStream
from app.train.workers import MEMFD_PREFIX
from tests.signal_helpers import start, train_cmd, trained_to, wait_until
from tests.train_helpers import (
    ROOT,
    assert_same_tensors,
    final_model,
    run_inprocess,
    tiny_overrides,
    train_losses,
)

COUNTS = [0, 1, 2, 4]


def digits(run: Path, workers: int, **extra: object) -> list[str]:
    return tiny_overrides(run, **{"train.data_workers": workers, **extra})


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def memfd_users(trainer: int) -> list[str]:
    """``pid:fd`` / ``pid:map`` of every process that still holds a batch slot of ``trainer``'s workers."""
    name, out = f"/memfd:{MEMFD_PREFIX}{trainer}-", []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            out += [f"{proc.name}:{fd.name}" for fd in (proc / "fd").iterdir() if name in os.readlink(fd)]
            out += [f"{proc.name}:map" for line in (proc / "maps").read_text().splitlines() if name in line]
        except OSError:  # gone meanwhile, or not ours to read
            pass
    return out


def wait_memory_freed(trainer: int, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and memfd_users(trainer):
        time.sleep(0.05)
    return memfd_users(trainer)


def dev_shm() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def checkpoints(run: Path, over: list[str]) -> dict[int, dict]:
    cfg = load_config(ROOT / "configs/demo.yaml", over, env={})
    mgr = CheckpointManager(open_store(str(run / "checkpoints"), cfg.store), cfg.checkpoint, run / "x")
    try:
        return {st.step: mgr.load(st.ref) for st in catalog.committed(mgr.store) if st.intact}
    finally:
        mgr.close()


def test_wire_round_trip_keeps_values_and_refuses_objects() -> None:
    import paddle

    tree = {"image": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "empty": np.zeros((0, 5), np.int64),
            "ids": [np.array([1, 2], np.int32), np.array([], np.int32)], "n": np.int64(7), "t": (1.5, None, "x"),
            "flag": np.bool_(True)}  # fmt: skip
    desc, buffers = wire.encode(tree)
    back = wire.decode(wire.loads(wire.dumps(desc)), [bytes(b) for b in buffers])
    assert back["image"].dtype == np.float32 and np.array_equal(back["image"], tree["image"])
    assert back["empty"].shape == (0, 5) and [a.tolist() for a in back["ids"]] == [[1, 2], []]
    assert back["n"] == 7 and back["n"].dtype == np.int64 and back["t"] == (1.5, None, "x")
    assert back["flag"].dtype == np.bool_
    with pytest.raises(wire.WireError, match="paddle"):
        wire.encode({"x": paddle.to_tensor([1.0])})
    with pytest.raises(wire.WireError, match="dtype object"):
        wire.encode([np.array([{}], dtype=object)])


@pytest.mark.parametrize(
    "cpus, local, expected", [(1, 1, 0), (2, 1, 1), (2, 2, 0), (4, 1, 3), (8, 1, 4), (64, 1, 4), (16, 4, 3)]
)
def test_auto_workers_rule(cpus: int, local: int, expected: int) -> None:
    assert auto_workers(cpus, local) == expected


class Growing:
    """A task whose batches grow and shrink with the sample index (slots must grow), tagged by index."""

    def train_arrays(self, indices: list[int], epoch: int) -> dict:
        n = 3000 * (1 + indices[0] % 5)
        return {"x": np.arange(n, dtype=np.float32) + 1000 * epoch + indices[0], "i": list(indices),
                "none": np.zeros((0, 3), np.int64), "k": np.int16(indices[-1])}  # fmt: skip


def owner(a: np.ndarray) -> object:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a.base.obj if isinstance(a.base, memoryview) else a.base


def test_a_configured_count_is_kept_and_one_above_the_cpus_warns(monkeypatch, caplog) -> None:
    monkeypatch.setattr(batches_mod, "_cpus", lambda: 4)
    monkeypatch.delenv("PADDLE_LOCAL_SIZE", raising=False)
    with caplog.at_level("WARNING", logger="app.train.batches"):
        assert resolve_workers(None, 1) == 3 and resolve_workers(4, 1) == 4 and resolve_workers(0, 1) == 0
        assert caplog.messages == []
        assert resolve_workers(8, 2) == 8  # a toolkit config's num_workers: 8, two trainers on 4 CPUs
    assert caplog.messages == [
        "train.data_workers 8 is more than the 2 CPU(s) this trainer may use (4 on the machine, 2 "
        "trainer(s)): the workers and the step share them (auto would start 1)"
    ]


def test_batches_cross_in_shared_memory_as_read_only_views_left_alone_while_held() -> None:
    import mmap

    import paddle

    reference = InProcess(Growing(), DataStream(40, 4, 3))
    shared = WorkerPool(Growing(), DataStream(40, 4, 3), workers=2, prefetch=2, timeout=120)
    piped = WorkerPool(Growing(), DataStream(40, 4, 3), workers=2, prefetch=2, timeout=120, transport="pipe")
    try:
        assert (shared.transport, piped.transport) == ("shm", "pipe")
        for k in range(25):  # over an epoch boundary, sizes changing every batch
            want, got, other = reference.next(), shared.next(), piped.next()
            for batch in (got, other):
                assert batch["i"] == want["i"] and batch["k"] == want["k"] and batch["k"].dtype == np.int16
                assert np.array_equal(batch["x"], want["x"]) and batch["none"].shape == (0, 3)
            assert isinstance(owner(got["x"]), mmap.mmap) and not got["x"].flags.writeable
            if k == 10:  # while this batch is held, both workers write their next ones into other slots
                held, copy, tensor = got["x"], got["x"].copy(), paddle.to_tensor(got["x"])
                assert all(w.results.poll(120) for w in shared.workers)
                assert np.array_equal(held, copy)
    finally:
        shared.close()
        piped.close()
    # once consumed, the slot was written again: only the tensor made from the batch (a copy) kept it
    assert not np.array_equal(held, copy) and np.array_equal(tensor.numpy(), copy)
    held = got = other = batch = tensor = None  # the last views kept their mappings alive; they go with them
    assert memfd_users(os.getpid()) == []


def test_a_batch_whose_slot_cannot_grow_goes_over_the_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def no_memory(fd: int, offset: int, length: int) -> None:  # inherited by the forked workers
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_memory)
    reference = InProcess(Growing(), DataStream(20, 4, 5))
    pool = WorkerPool(Growing(), DataStream(20, 4, 5), workers=2, prefetch=1, timeout=120)
    try:
        assert pool.transport == "shm"
        for _ in range(7):
            want, got = reference.next(), pool.next()
            assert got["i"] == want["i"] and np.array_equal(got["x"], want["x"])
            assert isinstance(owner(got["x"]), bytes)  # received over the pipe
    finally:
        pool.close()


def test_digits_weights_are_bit_identical_for_any_worker_count(tmp_path: Path) -> None:
    runs = {w: digits(tmp_path / f"w{w}", w, **{"train.prefetch": 3}) for w in COUNTS}
    for over in runs.values():
        assert run_inprocess(over)[0] == 0
    base = final_model(runs[0])
    for w in COUNTS[1:]:
        assert_same_tensors(base, final_model(runs[w]))
        assert train_losses(tmp_path / f"w{w}" / "log.jsonl") == train_losses(tmp_path / "w0" / "log.jsonl")
    assert memfd_users(os.getpid()) == []  # a normal end frees every batch slot


def test_resume_with_workers_is_exact_and_saves_the_consumed_position(tmp_path: Path) -> None:
    straight = digits(tmp_path / "a", 0)
    assert run_inprocess(straight)[0] == 0
    cut = digits(tmp_path / "b", 2, **{"train.prefetch": 4})  # 8 batches in flight when the stop comes
    rc, session = run_inprocess(cut, stop_at=13)
    assert rc == 143
    consumed = DataStream(session.task.train_size(), 16, session.cfg.run.seed)
    for _ in range(13):
        consumed.next_indices()
    assert checkpoints(tmp_path / "b", cut)[13].state["data"] == consumed.state()
    assert run_inprocess(digits(tmp_path / "b", 1))[0] == 0
    assert_same_tensors(final_model(straight), final_model(cut))


def test_ocr_augmented_batches_are_the_same_in_workers(tmp_path: Path) -> None:
    from tests.test_ocr_train import CONFIG, ocr_overrides

    augment = {"task.options.augment.rotate_prob": 0.5, "task.options.augment.noise_prob": 0.5,
               "task.options.augment.blur_prob": 0.3, "task.options.augment.hsv_prob": 0.3,
               "task.options.synthetic.n_train": 64, "task.options.model.width": 8, "schedule.total_steps": 4,
               "train.batch_size": 8}  # fmt: skip
    data = tmp_path / "data"
    counts = [0, 2]
    runs = {
        w: ocr_overrides(tmp_path / f"w{w}", data, **augment, **{"train.data_workers": w}) for w in counts
    }
    for over in runs.values():
        assert run_inprocess(over, config=CONFIG)[0] == 0
    for w in counts[1:]:
        assert_same_tensors(final_model(runs[0], CONFIG), final_model(runs[w], CONFIG))


def _fail_on(monkeypatch: pytest.MonkeyPatch, action) -> None:  # noqa: ANN001
    """DigitsTask.train_arrays runs ``action`` for the 5th batch it makes (inherited by forked workers)."""
    original = DigitsTask.train_arrays
    calls = {"n": 0}

    def patched(self, indices, epoch):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] == 5 or (os.getpid() != parent and calls["n"] >= 3):
            action()
        return original(self, indices, epoch)

    parent = os.getpid()
    monkeypatch.setattr(DigitsTask, "train_arrays", patched)


def test_a_raising_worker_stops_the_run_with_one_task_line(tmp_path: Path, monkeypatch) -> None:
    def boom() -> None:
        raise ValueError("transform exploded")

    _fail_on(monkeypatch, boom)
    with pytest.raises(TaskError) as err:
        run_inprocess(digits(tmp_path, 2))
    line = err.value.report()
    assert err.value.exit_code == EXIT_TASK == 5 and "\n" not in line
    assert line.startswith("warmstart: task: data worker ") and "ValueError: transform exploded" in line
    assert "train.data_workers=0" in line
    assert not (tmp_path / "checkpoints").exists() or all(
        s < 10 for s in checkpoints(tmp_path, digits(tmp_path, 2))
    )
    assert memfd_users(os.getpid()) == []  # so does an exception


def test_a_killed_worker_stops_the_run_with_exit_5(tmp_path: Path, monkeypatch) -> None:
    _fail_on(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(
        TaskError, match=r"data worker \d \(pid \d+\) was killed by SIGKILL while making a batch"
    ):
        run_inprocess(digits(tmp_path, 2))


def _trainer_with_workers(tmp_path: Path) -> tuple:  # noqa: ANN202
    over = digits(tmp_path, 2, **{"schedule.total_steps": 100000, "checkpoint.every_steps": 1000})
    proc = start(train_cmd("configs/demo.yaml", over))
    wait_until(proc, trained_to(tmp_path / "log.jsonl", 3), "step 3")
    workers = children(proc.pid)
    assert len(workers) == 2 and all(alive(p) for p in workers)
    slots = memfd_users(proc.pid)  # the batch slots: 3 per worker, held by the trainer and the worker
    assert {u.split(":")[0] for u in slots} == {str(proc.pid), *map(str, workers)}, slots
    return proc, workers


def test_sigterm_to_the_trainer_leaves_no_worker_behind(tmp_path: Path) -> None:
    proc, workers = _trainer_with_workers(tmp_path)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143, proc.stderr.read()[-2000:]
    assert wait_gone(workers) == []
    assert wait_memory_freed(proc.pid) == []


def test_kill_9_of_a_worker_ends_the_trainer_with_exit_5_and_one_line(tmp_path: Path) -> None:
    proc, workers = _trainer_with_workers(tmp_path)
    os.kill(workers[1], signal.SIGKILL)
    assert proc.wait(timeout=120) == EXIT_TASK
    err = proc.stderr.read()
    lines = [x for x in err.splitlines() if x.startswith("warmstart: ")]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    assert re.match(
        rf"warmstart: task: data worker 1 \(pid {workers[1]}\) was killed by SIGKILL while", lines[0]
    )
    assert wait_gone(workers) == []
    assert wait_memory_freed(proc.pid) == []


def test_kill_9_of_the_trainer_takes_its_workers_down_and_frees_the_shared_memory(tmp_path: Path) -> None:
    proc, workers = _trainer_with_workers(tmp_path)
    shm_before = dev_shm()
    proc.kill()
    proc.wait(timeout=60)
    assert wait_gone(workers) == []
    assert wait_memory_freed(proc.pid) == []
    assert not [n for n in dev_shm() - shm_before if "warmstart" in n]  # nothing named, nothing left there


def test_non_finite_loss_stops_before_any_checkpoint_holds_the_update(tmp_path: Path) -> None:
    over = tiny_overrides(tmp_path, **{"optim.name": "sgd", "schedule.base_lr": 1000, "schedule.warmup.kind": "none",
                                  "train.log_every_steps": 5, "checkpoint.every_steps": 2,
                                  "train.eval_every_steps": "null"})  # fmt: skip
    with pytest.raises(TaskError, match=r"loss is (nan|inf) at step \d+") as err:
        run_inprocess(over)
    found = re.search(r"at step (\d+) \(lr [^)]*\); stopped at step (\d+) before saving", err.value.message)
    assert found, err.value.message
    bad, stopped = int(found[1]), int(found[2])
    assert bad < stopped <= bad + 5  # at most log_every_steps updates past the bad loss
    saved = checkpoints(tmp_path, over)
    assert saved and max(saved) <= bad  # the checkpoint at step `bad` holds weights from before it
    for ck in saved.values():
        assert all(np.isfinite(v).all() for v in ck.tensors["model"].values())


def test_losses_reach_the_host_only_at_log_steps(tmp_path: Path, monkeypatch) -> None:
    import paddle

    reads = []
    for name in ("__float__", "__bool__", "item", "numpy", "tolist"):
        original = getattr(paddle.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **k):  # noqa: ANN001, ANN202
            caller = sys._getframe(1).f_code.co_filename
            if caller.endswith(("train/loop.py", "train/lossmeter.py")):
                reads.append(_name)
            return _original(self, *a, **k)

        monkeypatch.setattr(paddle.Tensor, name, counted)
    over = tiny_overrides(tmp_path, **{"schedule.total_steps": 20, "train.log_every_steps": 10,
                                  "checkpoint.every_steps": 5, "train.eval_every_steps": "null",
                                  "train.grad_accum_steps": 2})  # fmt: skip
    assert run_inprocess(over)[0] == 0
    # one read per log step (steps 10, 20) and one per check before a save between them (steps 5, 15)
    assert len(reads) == 4, reads


def _data_workers_of(launcher: int) -> list[int]:
    """Forks of the rank processes: a data worker runs the same command line as its rank."""
    import psutil

    out = []
    for proc in psutil.Process(launcher).children(recursive=True):
        try:
            parent = proc.parent()
            if parent is not None and "train" in proc.cmdline() and proc.cmdline() == parent.cmdline():
                out.append(proc.pid)
        except psutil.Error:
            pass
    return out


def test_each_launch_rank_has_its_own_workers_and_none_outlive_a_sigterm(tmp_path: Path) -> None:
    from tests.signal_helpers import LAUNCH_LONG, VENV_BIN, events, sets, stop

    run_dir = tmp_path / "run"
    over = tiny_overrides(run_dir, **LAUNCH_LONG, **{"train.data_workers": 1})
    cmd = [str(VENV_BIN / "warmstart"), "launch", "--nproc-per-node", "2", "--log-dir", str(tmp_path / "l"),
           "--", "train", "-c", str(ROOT / "configs/demo.yaml"), *sets(over)]  # fmt: skip
    proc = start(cmd)
    wait_until(proc, trained_to(run_dir / "log.jsonl", 5), "step 5")
    workers = _data_workers_of(proc.pid)
    assert len(workers) == 2, workers  # one per rank
    code, err = stop(proc)
    assert code == 143, err[-3000:]
    assert len(events(run_dir / "log.jsonl", "preempted")) == 1
    assert wait_gone(workers) == []


def test_checkpoints_record_the_seeding_and_an_older_one_is_noted_on_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """trainer_state.json says how augmentation is seeded; resuming an augmenting task from a checkpoint
    written before per-sample seeding warns that the batches from there differ from the old version's."""
    import json
    import logging
    from types import SimpleNamespace

    from app.train.start import DATA_SEEDING, _note_old_seeding

    over = digits(tmp_path, 0, **{"schedule.total_steps": 2, "schedule.warmup.steps": 1})
    assert run_inprocess(over)[0] == 0
    (state,) = [json.loads(p.read_text()) for p in tmp_path.glob("**/step-00000002/trainer_state.json")]
    assert state["data_seeding"] == DATA_SEEDING == 1
    caplog.set_level(logging.WARNING)
    for kind, st, warns in [("ocr_rec", {}, True), ("detection", {}, True), ("digits", {}, False),
                            ("ocr_rec", {"data_seeding": 1}, False)]:  # fmt: skip
        caplog.clear()
        _note_old_seeding(SimpleNamespace(cfg=SimpleNamespace(task=SimpleNamespace(kind=kind))), st, "SRC")
        assert ("SRC was saved by an older warmstart" in caplog.text) == warns, kind


def test_a_stop_signal_in_the_window_after_the_fork_is_held_not_run_by_the_worker(monkeypatch) -> None:
    """A SIGTERM landing in a new worker before it ignores stop signals must not run the trainer's handler
    there (the worker would exit and the trainer stop with 5): the fork holds the signals."""
    import app.train.workers as workers_mod

    real_fork = os.fork

    def fork_then_signal() -> int:
        pid = real_fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # the window: still the trainer's handler in the child
        return pid

    previous = signal.signal(signal.SIGTERM, lambda *_: os._exit(1))
    monkeypatch.setattr(workers_mod.os, "fork", fork_then_signal)
    pool = WorkerPool(Growing(), DataStream(20, 4, 5), workers=1, prefetch=1, timeout=120)
    try:
        reference = InProcess(Growing(), DataStream(20, 4, 5))
        for _ in range(6):
            assert np.array_equal(pool.next()["x"], reference.next()["x"])
    finally:
        pool.close()
        signal.signal(signal.SIGTERM, previous)
