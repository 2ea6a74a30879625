"""PaddleOCR's PP-OCRv4 training data: MultiScaleSampler batches and the wheel's RecConAug / RecAug /
MultiLabelEncode / resize, seeded per sample so any batch is reproducible."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from app.errors import ConfigError, TaskError
from app.tasks.ocr.multiscale import MultiScaleOptions, ds_width_of, epoch_plan, scale_batch_sizes
from app.tasks.ocr.options import RecAugOptions, RecConAugOptions, SynthOptions
from app.tasks.ocr.pipeline import PPOCRv4Pipeline, collate
from app.tasks.ocr.synth import write_synthetic
from app.tasks.ocr.wheel import ppocr_module

V4 = MultiScaleOptions(
    scales=[[320, 32], [320, 48], [320, 64]], first_bs=128, fix_bs=False, divided_factor=[8, 16]
)


class _Source:
    """What the wheel's MultiScaleSampler reads from its dataset."""

    def __init__(self, n: int) -> None:
        self.data_idx_order_list = list(range(n))
        self.ds_width, self.seed = False, None
        self._n = n

    def __len__(self) -> int:
        return self._n


def wheel_sampler(n: int, opts: MultiScaleOptions):
    sampler_cls = ppocr_module("ppocr.data.multi_scale_sampler").MultiScaleSampler
    return sampler_cls(
        _Source(n),
        scales=opts.scales,
        first_bs=opts.first_bs,
        fix_bs=opts.fix_bs,
        divided_factor=opts.divided_factor,
    )


def test_scale_batch_sizes_are_paddleocrs() -> None:
    assert scale_batch_sizes(V4) == [(320, 32, 128), (320, 48, 85), (320, 64, 64)]
    assert sorted(scale_batch_sizes(V4)) == sorted(wheel_sampler(10, V4).img_batch_pairs)  # it shuffles them
    odd = MultiScaleOptions(scales=[[330, 40], [100, 50]], first_bs=6, fix_bs=True, divided_factor=[8, 16])
    assert scale_batch_sizes(odd) == [(328, 32, 6), (96, 48, 6)]
    assert sorted(scale_batch_sizes(odd)) == sorted(wheel_sampler(10, odd).img_batch_pairs)


@pytest.mark.parametrize(
    ("n", "opts"), [(1000, V4), (77, MultiScaleOptions([[64, 32], [96, 48]], 8, False, [8, 16]))]
)
def test_epoch_has_paddleocrs_batches(n: int, opts: MultiScaleOptions) -> None:
    """Same number of batches per shape, each batch full, every sample seen, the overflow wrapped from the
    start of the epoch's order (compared with the wheel's own sampler)."""
    state = random.getstate()
    sampler = wheel_sampler(n, opts)
    theirs = [(b[0][0], b[0][1], len(b)) for b in sampler]
    random.setstate(state)
    plan = epoch_plan(n, opts, seed=3, epoch=0)
    ours = [(b.width, b.height, len(b.indices)) for b in plan]
    assert Counter(ours) == Counter(theirs)
    seen = [i for b in plan for i in b.indices]
    assert set(seen) == set(range(n))
    assert len(seen) == sum(size for _, _, size in ours)


def test_plan_is_a_function_of_seed_and_epoch() -> None:
    a, b = epoch_plan(1000, V4, 3, 5), epoch_plan(1000, V4, 3, 5)
    assert a == b
    assert epoch_plan(1000, V4, 3, 6) != a and epoch_plan(1000, V4, 4, 5) != a


@pytest.fixture(scope="module")
def lines(tmp_path_factory) -> tuple[list[Path], list[str], Path]:
    root = tmp_path_factory.mktemp("v4")
    opts = SynthOptions(charset="abcdef0123", min_len=2, max_len=6, n_train=12, n_eval=2, seed=1)
    files = write_synthetic(root, opts)
    rows = [line.split("\t") for line in files["train"].read_text().splitlines()]
    return [root / p for p, _ in rows], [t for _, t in rows], files["dict"]


def pipeline(lines, con: bool = True) -> PPOCRv4Pipeline:
    paths, texts, dict_path = lines
    return PPOCRv4Pipeline(
        paths, texts, dict_path, 25, False, RecAugOptions(), RecConAugOptions(prob=0.9) if con else None
    )


def test_sample_is_reproducible_in_any_order_and_leaves_global_rngs(lines) -> None:
    pipe = pipeline(lines)
    random.seed(123)
    np.random.seed(123)
    before = (random.random(), np.random.random())
    random.seed(123)
    np.random.seed(123)
    first = [pipe(i, 320, 48, seed=7, epoch=2) for i in range(6)]
    backwards = [pipe(i, 320, 48, seed=7, epoch=2) for i in reversed(range(6))][::-1]
    assert (random.random(), np.random.random()) == before
    for a, b in zip(first, backwards, strict=True):
        assert a["image"].tobytes() == b["image"].tobytes()
        assert (a["label_ctc"] == b["label_ctc"]).all() and (a["label_gtc"] == b["label_gtc"]).all()
    other_epoch = pipe(0, 320, 48, seed=7, epoch=3)
    other_seed = pipe(0, 320, 48, seed=8, epoch=2)
    assert (
        other_epoch["image"].tobytes() != first[0]["image"].tobytes()
        or other_seed["image"].tobytes() != first[0]["image"].tobytes()
    )


def test_labels_and_resize_are_the_wheels(lines) -> None:
    paths, texts, dict_path = lines
    pipe = PPOCRv4Pipeline(paths, texts, dict_path, 25, False, None, None)
    out = pipe(1, 320, 32, seed=0, epoch=0)
    encode = ppocr_module("ppocr.data.imaug.label_ops").MultiLabelEncode(
        max_text_length=25,
        character_dict_path=str(dict_path),
        use_space_char=False,
        gtc_encode="NRTRLabelEncode",
    )
    decoded = ppocr_module("ppocr.data.imaug").DecodeImage(img_mode="BGR")(
        {"image": paths[1].read_bytes(), "label": texts[1]}
    )
    ref = encode(decoded)
    assert (out["label_ctc"] == ref["label_ctc"]).all() and (out["label_gtc"] == ref["label_gtc"]).all()
    assert out["label_gtc"][0] == 2 and int(out["length"]) == len(texts[1])
    assert out["image"].shape == (3, 32, 320) and 0 < out["valid_ratio"] <= 1
    batch = collate([out, pipe(2, 320, 32, 0, 0)])
    assert batch["image"].shape == (2, 3, 32, 320) and batch["label_ctc"].shape == (2, 25)


def test_ranks_split_the_epoch_and_step_together() -> None:
    plans = [epoch_plan(1000, V4, 3, 0, world=2, rank=r) for r in (0, 1)]
    assert [(b.width, b.height, len(b.indices)) for b in plans[0]] == [
        (b.width, b.height, len(b.indices)) for b in plans[1]
    ]
    seen = [set(i for b in plan for i in b.indices) for plan in plans]
    assert not seen[0] & seen[1] and len(seen[0] | seen[1]) == 1000


def _ds_width_source(ratios: np.ndarray) -> _Source:
    src = _Source(len(ratios))
    src.ds_width, src.wh_ratio, src.wh_ratio_sort = True, ratios, np.argsort(ratios)
    return src


def test_ds_width_batches_follow_paddleocrs_widths() -> None:
    """ds_width: batches are runs of the samples sorted by w/h, each as wide as the wheel's MultiScaleDataSet
    makes it (h * round(mean ratio), capped at max_w); the same shapes and sizes as the wheel's sampler."""
    ratios = np.random.default_rng(0).uniform(0.5, 14.0, 50)
    opts = MultiScaleOptions([[320, 32], [320, 48]], 6, False, [8, 16], ds_width=True, max_w=480.0)
    state = random.getstate()
    sampler = ppocr_module("ppocr.data.multi_scale_sampler").MultiScaleSampler(
        _ds_width_source(ratios), scales=opts.scales, first_bs=6, fix_bs=False, divided_factor=[8, 16]
    )
    theirs = list(sampler)
    random.setstate(state)
    plan = epoch_plan(50, opts, seed=1, epoch=0, ratios=ratios)
    assert Counter((b.height, len(b.indices)) for b in plan) == Counter((b[0][1], len(b)) for b in theirs)
    rank_of = {int(i): r for r, i in enumerate(np.argsort(ratios))}
    for batch in theirs:  # the wheel's dataset: width = h * (1 if round(r) == 0 else round(r))
        h, r = batch[0][1], batch[0][3]
        files = np.argsort(ratios)[[b[2] for b in batch]]
        assert h * max(1, int(round(r))) == ds_width_of(float(ratios[files].mean()), h, 480.0)
    for b in plan:
        assert b.width == ds_width_of(float(ratios[list(b.indices)].mean()), b.height, 480.0)
        ranks = [rank_of[i] for i in b.indices]
        assert ranks == list(range(ranks[0], ranks[0] + len(ranks))) or 0 in ranks  # a run (or the wrap)
    assert ds_width_of(30.0, 32, 480.0) == 480 and ds_width_of(0.3, 32, 480.0) == 32
    with pytest.raises(ConfigError, match="ds_width: every training line needs its width and height"):
        epoch_plan(50, opts, seed=1, epoch=0)


def test_task_plan_resumes_at_the_same_batch(lines) -> None:
    """The OCR task's epoch_batches through the loop's PlannedStream: a stream restored from another's
    state continues with the same (epoch, [width, height, *indices]) across an epoch boundary, and the
    batch arrays are the same whoever makes them."""
    from app.tasks.ocr.pipeline import train_batch
    from app.train.data import PlannedStream

    opts = MultiScaleOptions([[64, 32], [96, 48]], 4, False, [8, 16])
    pipe = pipeline(lines)

    def plan(epoch: int, world: int, rank: int) -> list[tuple[list[int], list[int]]]:
        return [([b.width, b.height], list(b.indices)) for b in epoch_plan(12, opts, 5, epoch, world, rank)]

    straight = PlannedStream(plan)
    first = [straight.next_batch() for _ in range(7)]  # crosses into epoch 1
    assert first[-1][0] == 1 and straight.micro_batches_per_epoch < 7
    probe = PlannedStream(plan)
    for _ in range(4):
        probe.next_batch()
    resumed = PlannedStream(plan)
    resumed.restore(probe.state())
    assert [resumed.next_batch() for _ in range(3)] == first[4:]
    epoch, (width, height, *indices) = first[5]
    a = train_batch(pipe, width, height, tuple(indices), 5, epoch)
    b = train_batch(pipe, width, height, tuple(indices), 5, epoch)
    assert a["image"].shape == (len(indices), 3, height, width)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)


def _task(lines, **options):  # noqa: ANN202
    from app.tasks.ocr.task import OcrRecTask

    root = lines[0][0].parents[2]
    base = {"data_dir": str(root), "character_dict_path": str(lines[2]), "max_text_length": 8}
    return OcrRecTask({**base, "model": {"algorithm": "svtr_lcnet"}, **options}, seed=11)


def test_task_without_multiscale_runs_the_pipeline_at_image_shape(lines) -> None:
    task = _task(lines, rec_aug={}, image_shape=[3, 48, 96])
    assert task.epoch_batches(0, 1, 0) is None  # the shared stream of train.batch_size
    a, b = task.train_arrays([3, 1], 2), task.train_arrays([3, 1], 2)
    assert a["image"].shape == (2, 3, 48, 96) and set(a) == {
        "image",
        "label_ctc",
        "label_gtc",
        "length",
        "valid_ratio",
    }
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    images, ctc, length, gtc = task.to_batch(a)
    assert images.shape == [2, 3, 48, 96] and gtc.shape == [2, 8] and length.shape == [2]


def test_task_ranks_step_together_and_ds_width_reads_sizes(lines, tmp_path) -> None:
    from PIL import Image

    ms = {"scales": [[64, 32], [96, 48]], "first_bs": 4, "fix_bs": False}
    task = _task(lines, multiscale=ms)
    plans = [task.epoch_batches(1, 2, r) for r in (0, 1)]
    assert [tag for tag, _ in plans[0]] == [tag for tag, _ in plans[1]] and len(plans[0]) > 1
    tag, samples = plans[0][0]
    assert task.train_arrays(tag + samples, 1)["image"].shape == (len(samples), 3, tag[1], tag[0])
    paths, texts, _ = lines
    sized = tmp_path / "sized.txt"
    rows = [
        f"{p}\t{t}\t{Image.open(p).width}\t{Image.open(p).height}" for p, t in zip(paths, texts, strict=True)
    ]
    sized.write_text("\n".join(rows) + "\n")
    wide = _task(lines, multiscale={**ms, "ds_width": True}, train_label_files=[str(sized)])
    assert wide.train_set.texts == texts
    ratios = [Image.open(p).width / Image.open(p).height for p in paths]
    assert np.allclose(wide.train_set.ratios, ratios)
    for tag, samples in wide.epoch_batches(0, 1, 0):
        assert tag[0] == ds_width_of(float(np.mean([ratios[i] for i in samples])), tag[1], 480.0)
    sized.write_text(f"{paths[0]}\t{texts[0]}\n")
    with pytest.raises(TaskError, match="expected 'image_path<TAB>text<TAB>width<TAB>height'"):
        _task(lines, multiscale={**ms, "ds_width": True}, train_label_files=[str(sized)])
