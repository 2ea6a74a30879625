"""A task that owns its batch plan (``Task.epoch_batches``): the loop's PlannedStream keeps the position
as (epoch, batch), data workers 0/1/2 make the same batches, and a checkpoint of the other kind of
position is refused with one line."""

from __future__ import annotations

import types

import numpy as np
import pytest

from app.errors import CheckpointError, TaskError
from app.train.batches import InProcess, WorkerPool
from app.train.data import DataStream, PlannedStream, make_stream


class PlanTask:
    """Batches of 3 or 5 samples of 20, tagged with a 'shape'; numpy only, as a worker runs it."""

    def __init__(self, seed: int = 3, sizes: tuple[int, ...] = (3, 5)) -> None:
        self.seed, self.sizes = seed, sizes

    def train_size(self) -> int:
        return 20

    def epoch_batches(self, epoch: int, world: int, rank: int) -> list[tuple[list[int], list[int]]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(20)[rank::world].tolist()
        out, start = [], 0
        for k in range(4):
            size = self.sizes[k % len(self.sizes)]
            out.append(([size * 10, k], order[start : start + size]))
            start += size
        return out

    def train_arrays(self, indices: list[int], epoch: int) -> dict[str, np.ndarray]:
        tag, samples = indices[:2], indices[2:]
        rng = np.random.default_rng([self.seed, epoch, *samples])
        return {"x": rng.normal(size=(len(samples), tag[0])).astype("float32"), "tag": np.asarray(tag)}


def test_position_is_epoch_and_batch_and_resumes_exactly() -> None:
    task = PlanTask()
    straight = PlannedStream(task.epoch_batches)
    first = [straight.next_batch() for _ in range(10)]  # 4 batches an epoch: into epoch 2
    assert [e for e, _ in first] == [0] * 4 + [1] * 4 + [2] * 2
    assert first[0][1][:2] == [30, 0] and len(first[0][1]) == 2 + 3 and len(first[1][1]) == 2 + 5
    assert straight.state() == {"epoch": 2, "batch": 2, "samples_in_epoch": 8}
    assert straight.consumed == 2 * 16 + 8
    probe = PlannedStream(task.epoch_batches)
    for _ in range(6):
        probe.next_batch()
    resumed = PlannedStream(task.epoch_batches)
    resumed.restore(probe.state())
    assert [resumed.next_batch() for _ in range(4)] == first[6:]
    ahead = resumed.lookahead()
    assert ahead.next_batch() == resumed.next_batch() and ahead.state() == resumed.state()


def test_ranks_take_their_own_plan_and_count_global_samples() -> None:
    task = PlanTask()
    ranks = [PlannedStream(task.epoch_batches, world=2, rank=r) for r in (0, 1)]
    batches = [[s.next_batch()[1][2:] for _ in range(4)] for s in ranks]
    assert not {i for b in batches[0] for i in b} & {i for b in batches[1] for i in b}
    assert ranks[0].state()["samples_in_epoch"] == 2 * 10  # global: this rank's 10 (3 + 5 + 2) x 2 ranks


@pytest.mark.parametrize("workers", [1, 2])
def test_data_workers_make_the_planned_batches_of_the_trainer(workers: int) -> None:
    task = PlanTask()
    own = InProcess(task, PlannedStream(task.epoch_batches))
    expected = [own.next() for _ in range(9)]
    stream = PlannedStream(task.epoch_batches)
    stream.restore({"epoch": 0, "batch": 0, "samples_in_epoch": 0})
    pool = WorkerPool(task, stream, workers, prefetch=2, timeout=120)
    try:
        # A batch's arrays live in a shared-memory slot until the next pool.next(): copy them, as the
        # trainer's to_batch does.
        got = [{k: np.array(v) for k, v in pool.next().items()} for _ in range(9)]
    finally:
        pool.close()
    for a, b in zip(expected, got, strict=True):
        assert a["tag"].tolist() == b["tag"].tolist() and a["x"].tobytes() == b["x"].tobytes()
    assert stream.state() == {"epoch": 2, "batch": 1, "samples_in_epoch": 3}


def test_make_stream_uses_the_plan_only_when_the_task_has_one() -> None:
    assert isinstance(make_stream(PlanTask(), 4, 0, 1, 0), PlannedStream)
    no_plan = types.SimpleNamespace(train_size=lambda: 20, epoch_batches=lambda e, w, r: None)
    assert isinstance(make_stream(no_plan, 4, 0, 1, 0), DataStream)
    assert isinstance(make_stream(types.SimpleNamespace(train_size=lambda: 20), 4, 0, 1, 0), DataStream)


def test_a_sample_position_or_a_batch_past_the_plan_is_refused() -> None:
    stream = PlannedStream(PlanTask().epoch_batches)
    with pytest.raises(CheckpointError, match="counts samples, but this task plans its own batches"):
        stream.restore({"epoch": 1, "samples_in_epoch": 16})
    with pytest.raises(CheckpointError, match="batch 9 of epoch 1, but an epoch has 4 batches"):
        stream.restore({"epoch": 1, "batch": 9, "samples_in_epoch": 0})


def test_a_plan_whose_length_changes_between_epochs_stops_the_run() -> None:
    task = PlanTask()
    plan = task.epoch_batches
    stream = PlannedStream(lambda e, w, r: plan(e, w, r)[: 4 - e])
    for _ in range(4):
        stream.next_batch()
    with pytest.raises(TaskError, match="planned 3 micro-batches for epoch 1 .* every epoch needs the same"):
        stream.next_batch()
