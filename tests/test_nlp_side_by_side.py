"""Side by side with PaddleNLP's own Trainer (bench/nlp_side_by_side.py on a small setting): the same tiny
model, data, seed and TrainingArguments give the same LR at every step (warmup included), accuracies
within noise, and our resume is bit-identical where PaddleNLP 2.8.1's is not (measured)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.nlp_side_by_side import make_setup, run_all


def test_same_lr_every_step_close_accuracy_and_only_ours_resumes_exactly(tmp_path: Path) -> None:
    setup = make_setup(tmp_path, n_train=160, n_eval=100, steps=32, save_steps=10, stop_at=20)
    r = run_all(tmp_path, setup)

    theirs, ours = r["lr"]["theirs"], r["lr"]["ours"]
    assert len(theirs) == len(ours) == 32
    assert theirs[:4] == [
        0.0,
        0.002 / 3,
        2 * 0.002 / 3,
        0.002,
    ]  # int(0.1 * 32) = 3 warmup steps from 0 (ceil: 4)
    # the LR the optimizer applies (a float32 tensor) is equal at every step; in float64 a few ulps apart
    assert np.array_equal(np.array(theirs, dtype="float32"), np.array(ours, dtype="float32"))
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)

    assert abs(r["accuracy"]["theirs"] - r["accuracy"]["ours"]) <= 0.1, r["accuracy"]

    res = r["resume"]
    assert res["theirs_stopped_lrs"] == 20 and res["theirs_resumed_first_step"] == 21
    assert res["ours_identical"] and res["ours_max_abs_diff"] == 0.0
    # PaddleNLP 2.8.1 on Paddle 2.6: its resume differs from its own uninterrupted run (FIELD_NOTES)
    assert not res["theirs_identical"] and res["theirs_max_abs_diff"] > 1e-4

    # a checkpoint-N/ of PaddleNLP's Trainer is a model_dir (a warm start); its pickle needs the opt-in
    _checkpoint_folder_is_a_model_dir(tmp_path, tmp_path / "theirs_full/checkpoint-10")


def _checkpoint_folder_is_a_model_dir(tmp_path: Path, folder: Path) -> None:
    import paddle

    from app.errors import CheckpointError
    from app.tasks.nlp.task import SeqClsTask

    opts = {"model_dir": str(folder), "train_file": str(tmp_path / "data/train.csv"),
            "eval_file": str(tmp_path / "data/eval.csv")}  # fmt: skip
    with pytest.raises(CheckpointError, match="model_state.pdparams is a pickle"):
        SeqClsTask(opts, 0)
    task = SeqClsTask(opts, 0, allow_pickle=True)
    assert sorted(p.name for p in task.model_dir.iterdir()) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json",
        "trainer_state.json", "vocab.txt"]  # optimizer.pdopt, rng_state.pth, training_args.bin, ... left out  # fmt: skip
    with paddle.utils.unique_name.guard():
        net = task.build_model()
    saved = paddle.load(str(folder / "model_state.pdparams"))  # PaddleNLP's own file, in this test only
    assert all(np.array_equal(net.state_dict()[k].numpy(), v.numpy()) for k, v in saved.items())


def _their_lrs(name: str, args: dict, steps: int) -> list[float]:
    """PaddleNLP 2.8.1's Trainer.create_scheduler for these arguments, stepped ``steps`` times."""
    from paddlenlp.trainer import TrainingArguments
    from paddlenlp.trainer.trainer_utils import get_scheduler

    ta = TrainingArguments(output_dir="unused", lr_scheduler_type=name, max_steps=steps, **args)
    warmup = (
        ta.warmup_steps if ta.warmup_steps > 0 else int(ta.warmup_ratio * steps)
    )  # create_scheduler's rule
    sched = get_scheduler(name, learning_rate=ta.learning_rate, num_warmup_steps=warmup,
                          num_training_steps=steps, num_cycles=ta.num_cycles, lr_end=ta.lr_end, power=ta.power)  # fmt: skip
    out = []
    for _ in range(steps):
        out.append(float(sched.get_lr()))
        sched.step()
    return out


def _our_lrs(name: str, args: dict, steps: int) -> list[float]:
    from app.config import load_config
    from app.schedule.build import build_schedule
    from tests.train_helpers import ROOT

    sets = [
        f"training_args.{k}={v}" for k, v in {**args, "lr_scheduler_type": name, "max_steps": steps}.items()
    ]
    cfg = load_config(ROOT / "configs/nlp_seq_cls.yaml", ["training_args.warmup_ratio=0", *sets], env={})
    sched = build_schedule(
        cfg.schedule, steps_per_epoch=10, global_batch=32, optimizer_name="adamw"
    ).scheduler
    out = []
    for _ in range(steps):
        out.append(float(sched.get_lr()))
        sched.step()
    return out


@pytest.mark.parametrize("name", ["linear", "cosine", "constant", "constant_with_warmup", "polynomial"])
@pytest.mark.parametrize(
    "args, steps",
    [({"warmup_ratio": 0.1}, 47), ({"warmup_steps": 5}, 40), ({"warmup_ratio": 0.0}, 25),
     ({"warmup_ratio": 0.25, "lr_end": 1e-5, "power": 2.0}, 33)],
)  # fmt: skip
def test_every_scheduler_type_gives_paddlenlps_lr_at_every_step(name, args, steps) -> None:
    if name != "polynomial":
        args = {k: v for k, v in args.items() if k not in ("lr_end", "power")}
    args = {"learning_rate": 3e-3, **args}
    theirs, ours = _their_lrs(name, args, steps), _our_lrs(name, args, steps)
    assert np.array_equal(np.array(theirs, dtype="float32"), np.array(ours, dtype="float32")), (theirs, ours)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-18)


def test_our_optimizer_steps_equal_paddlenlp_trainers_bit_for_bit(tmp_path: Path) -> None:
    """optim.no_decay's NLP default and AdamW with clipping update exactly as PaddleNLP's create_optimizer:
    the same model, batches and LR give bit-identical parameters after several steps (weight decay 0.1)."""
    import paddle
    import paddle.nn.functional as F
    from paddlenlp.trainer import Trainer, TrainingArguments
    from paddlenlp.transformers import AutoModelForSequenceClassification

    from app.config.schema import OptimConfig
    from app.tasks.nlp.synthetic import make_model_dir
    from app.train.setup import build_optimizer, decayed_names

    folder = make_model_dir(tmp_path / "bert", "bert", seed=0)
    nets = []
    for _ in range(2):
        with paddle.utils.unique_name.guard():
            net = AutoModelForSequenceClassification.from_pretrained(str(folder), num_classes=2)
        net.eval()  # no dropout: both sides see the same gradients
        nets.append(net)
    nets[1].set_state_dict(nets[0].state_dict())
    cfg = OptimConfig(weight_decay=0.1, grad_clip_norm=1.0, no_decay=["*bias*", "*norm*"])
    ours = build_optimizer(cfg, paddle.optimizer.lr.LambdaDecay(5e-3, lambda s: 1.0 - s / 10), nets[0])
    args = TrainingArguments(output_dir=str(tmp_path / "out"), weight_decay=0.1, max_grad_norm=1.0)
    trainer = Trainer(model=nets[1], args=args)
    theirs = trainer.create_optimizer(paddle.optimizer.lr.LambdaDecay(5e-3, lambda s: 1.0 - s / 10))
    decayed = decayed_names(cfg.no_decay, nets[0])
    assert 0 < len(decayed) < len(nets[0].parameters())
    rng = np.random.default_rng(0)
    for _ in range(5):
        ids = paddle.to_tensor(rng.integers(5, 60, size=(8, 12)), dtype="int64")
        y = paddle.to_tensor(rng.integers(0, 2, size=(8,)), dtype="int64")
        for net, opt in zip(nets, (ours, theirs), strict=True):
            F.cross_entropy(net(ids), y).backward()
            opt.step()
            opt.clear_grad()
            opt._learning_rate.step()
    a, b = nets[0].state_dict(), nets[1].state_dict()
    assert all(a[k].numpy().tobytes() == b[k].numpy().tobytes() for k in a)
