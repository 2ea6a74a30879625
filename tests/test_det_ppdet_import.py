"""Continue a run started with PaddleDetection's own ``Trainer`` (issue 14, item 5).

ppdet's real ``Trainer`` trains the shipped PicoDet (EMA on) for 2 epochs on a generated COCO set and
saves ``model_final.pdparams/.pdopt/.pdema``; ``warmstart ckpt import --config`` turns that into one
committed step. Checked: weights, EMA and every optimizer accumulator equal ppdet's files (mapped by the
parameter names ppdet's own process gave), the step and epoch, and after ``warmstart train`` resumes it,
the LR of every following step equals ppdet's ``LearningRate`` and ppdet's own resume (losses too).
Bad inputs: one line, a documented exit code, nothing written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import app  # noqa: F401  (zlib before paddle)
from app.cli import main
from app.tasks.det.workspace import _workspace
from bench.ppdet_case import Case, PpdetRun, assert_same_lr, ppdet_lr_table, run_ppdet, write_case
from tests.train_helpers import run_inprocess

_workspace()

EPOCHS_BY_PPDET, TOTAL_EPOCHS = 2, 5  # 1 image, batch 1: one step per epoch


def _ppdet_save(root: Path, optimizer: str) -> tuple[Case, PpdetRun, Path]:
    case = write_case(
        root, n_train=1, batch=1, epoch=EPOCHS_BY_PPDET, max_epochs=TOTAL_EPOCHS, optimizer=optimizer
    )
    run = run_ppdet(case)
    return case, run, case.save_dir / "ppdet" / "model_final"


@pytest.fixture(scope="module")
def ppdet_save(tmp_path_factory: pytest.TempPathFactory) -> tuple[Case, PpdetRun, Path]:
    """Momentum with L2 (PicoDet's upstream optimizer), EMA on."""
    return _ppdet_save(tmp_path_factory.mktemp("ppdet"), "momentum")


@pytest.fixture(scope="module", params=["momentum", "adamw"])
def any_save(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Each optimizer's save: Momentum (velocity) and AdamW (moments and beta powers)."""
    if request.param == "momentum":
        return request.getfixturevalue("ppdet_save")
    return _ppdet_save(tmp_path_factory.mktemp("ppdet_adamw"), "adamw")


def _load(path: Path) -> dict:
    import paddle

    return paddle.load(str(path), return_numpy=True)


def _import(src: Path, dest: Path, *extra: str) -> int:
    return main(["ckpt", "import", str(src), str(dest), *extra])


def _step_dir(dest: Path) -> Path:
    (step,) = sorted(dest.glob("step-*"))
    return step


def test_import_equals_ppdet_files(any_save, tmp_path: Path, capsys) -> None:
    from app.checkpoint.tensorio import read_tensors

    case, run, prefix = any_save
    dest = tmp_path / "dest"
    assert (
        _import(prefix.with_suffix(".pdparams"), dest, "--config", str(case.ours_yaml), "--allow-pickle") == 0
    )
    assert "(step 2, manifest sha256" in capsys.readouterr().out
    step = _step_dir(dest)
    assert step.name == "step-00000002"
    assert main(["ckpt", "verify", str(step)]) == 0
    files = sorted(p.name for p in step.iterdir())
    assert files == [
        "det_state.safetensors", "ema.safetensors", "manifest.json", "meta.json", "model.safetensors",
        "optimizer.safetensors", "trainer_state.json",
    ]  # fmt: skip
    # ppdet saves the EMA weights as .pdparams and the trained ones as .pdema (and loads them so)
    trained, ema_w, opt = (
        _load(prefix.with_suffix(".pdema")),
        _load(prefix.with_suffix(".pdparams")),
        _load(prefix.with_suffix(".pdopt")),
    )
    model = read_tensors(step / "model.safetensors", "model")
    assert sorted(model) == sorted(trained)
    for k, v in trained.items():
        assert np.array_equal(model[k], v), k
    ema = read_tensors(step / "ema.safetensors", "ema")
    assert int(ema["@step"]) == 2
    for k, v in ema_w.items():
        assert np.array_equal(ema[k], v), k
    ours = read_tensors(step / "optimizer.safetensors", "optimizer")
    accs = {k: v for k, v in opt.items() if k not in ("LR_Scheduler", "last_epoch")}
    assert len(ours) == len(accs) > 0
    for key, value in accs.items():  # conv2d_0.w_0_velocity_0 -> <structured name>/velocity
        param = max((p for p in run.names if key.startswith(p + "_")), key=len)
        kind = key[len(param) + 1 :].rsplit("_", 1)[0]
        assert np.array_equal(ours[f"{run.names[param]}/{kind}"], value), key
    adamw = "type: AdamW" in case.ppdet_yml.read_text()
    want = {"moment1", "moment2", "beta1_pow_acc", "beta2_pow_acc"} if adamw else {"velocity"}
    assert {k.rsplit("/", 1)[1] for k in ours} == want
    state = json.loads((step / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["data"]) == (2, 2, {"epoch": 2, "samples_in_epoch": 0})
    meta = json.loads((step / "meta.json").read_text())
    assert sorted(meta["imported_from"]["ppdet"]) == sorted(
        str(prefix) + s for s in (".pdema", ".pdopt", ".pdparams")
    )


def test_resume_continues_ppdet_schedule_and_run(any_save, tmp_path: Path) -> None:
    """After the import, `train` continues: LR = ppdet's LearningRate at every step, and the same LR and
    losses as ppdet's own Trainer resuming the same files."""
    case, _, prefix = any_save
    dest = tmp_path / "dest"
    assert (
        _import(prefix.with_suffix(".pdparams"), dest, "--config", str(case.ours_yaml), "--allow-pickle") == 0
    )
    rc, s = run_inprocess(
        [f"checkpoint.uri={dest}", f"run.dir={tmp_path / 'run'}", "train.eval_every_steps=1000"],
        config=str(case.ours_yaml),
    )
    assert rc == 0 and s.step == TOTAL_EPOCHS
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines if x["kind"] == "event"][0] == "resume"
    train = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train] == [3, 4, 5]
    table = ppdet_lr_table(case, TOTAL_EPOCHS)
    assert_same_lr([x["lr"] for x in train], table[EPOCHS_BY_PPDET:])
    theirs = run_ppdet(case, epochs=TOTAL_EPOCHS, resume=prefix, save_dir=tmp_path / "ppdet_resumed")
    assert theirs.lrs == table[EPOCHS_BY_PPDET:]
    assert [x["loss"] for x in train] == pytest.approx(theirs.losses, abs=2e-6)


def test_import_at_the_end_of_the_schedule(ppdet_save, tmp_path: Path) -> None:
    """A save at the schedule's last step imports (no step left whose LR could differ) and trains no more."""
    case, _, prefix = ppdet_save
    dest = tmp_path / "dest"
    ends = ["--set", f"schedule.epochs={EPOCHS_BY_PPDET}", "--set", "schedule.warmup.steps=1"]
    assert (
        _import(
            prefix.with_suffix(".pdparams"), dest, "--config", str(case.ours_yaml), "--allow-pickle", *ends
        )
        == 0
    )
    assert _step_dir(dest).name == "step-00000002"


@pytest.mark.parametrize("suffix", ["", ".pdopt", ".pdema"])
def test_src_names_the_save_any_way(ppdet_save, tmp_path: Path, suffix: str) -> None:
    """SRC may be any of the three files or the save's name without suffix (as ppdet's --resume takes)."""
    case, _, prefix = ppdet_save
    src = f"{prefix}{suffix}"
    assert _import(Path(src), tmp_path / "dest", "--config", str(case.ours_yaml), "--allow-pickle") == 0
    meta = json.loads((_step_dir(tmp_path / "dest") / "meta.json").read_text())
    assert meta["parent"] == f"{prefix}.pdparams"


def _copy_save(prefix: Path, to: Path, suffixes: tuple[str, ...]) -> Path:
    to.mkdir(parents=True, exist_ok=True)
    for suffix in suffixes:
        shutil.copy(prefix.with_suffix(suffix), to / f"model_final{suffix}")
    return to / "model_final"


def _crafted_opt(prefix: Path, to: Path, change) -> Path:  # noqa: ANN001
    import paddle

    new = _copy_save(prefix, to, (".pdparams", ".pdema"))
    paddle.save(change(_load(prefix.with_suffix(".pdopt"))), str(new.with_suffix(".pdopt")))
    return new


def _renamed(opt: dict) -> dict:
    return {
        (f"linear_{i}.w_0_velocity_0" if k.endswith("velocity_0") else k): v
        for i, (k, v) in enumerate(opt.items())
    }


def _reshaped(opt: dict) -> dict:
    key = next(k for k, v in opt.items() if isinstance(v, np.ndarray) and v.ndim == 4)
    return {**opt, key: np.zeros((1, *opt[key].shape[1:]), opt[key].dtype)}


def _crafted_weights(prefix: Path, to: Path) -> Path:
    import paddle

    new = _copy_save(prefix, to, (".pdparams", ".pdopt"))
    trained = _load(prefix.with_suffix(".pdema"))
    key = next(k for k, v in trained.items() if v.ndim == 4)
    trained[key] = np.zeros((1, *trained[key].shape[1:]), trained[key].dtype)
    paddle.save(trained, str(new.with_suffix(".pdema")))
    return new


def _ema_missing(prefix: Path, to: Path) -> Path:
    import paddle

    new = _copy_save(prefix, to, (".pdopt", ".pdema"))
    ema = _load(prefix.with_suffix(".pdparams"))
    ema.pop(sorted(ema)[0])
    paddle.save(ema, str(new.with_suffix(".pdparams")))
    return new


def _bad_last_lr(opt: dict) -> dict:
    return {**opt, "LR_Scheduler": {**opt["LR_Scheduler"], "last_lr": "0.1"}}


def _int_accumulator(opt: dict) -> dict:
    key = next(k for k in opt if k.endswith("_0") and isinstance(opt[k], np.ndarray))
    return {**opt, key: opt[key].astype(np.int64)}


def _amp_o2(opt: dict) -> dict:
    return {**opt, "master_weights": {}}


NO_EMA = "task.options.overrides={use_ema: false}"

BAD = {
    "no_pdparams": (lambda p, t: _copy_save(p, t, (".pdopt",)).with_suffix(".pdopt"), [], 4, "model_final.pdparams does not exist"),
    "no_pdopt": (lambda p, t: _copy_save(p, t, (".pdparams", ".pdema")).with_suffix(".pdparams"), [], 4, "model_final.pdopt does not exist"),
    "other_model": (lambda p, t: _crafted_opt(p, t, _renamed).with_suffix(".pdparams"), [], 4, "optimizer state for parameters this model does not have: linear_"),
    "accumulator_shape": (lambda p, t: _crafted_opt(p, t, _reshaped).with_suffix(".pdparams"), [], 4, "does not fit this optimizer"),
    "weights_shape": (lambda p, t: _crafted_weights(p, t).with_suffix(".pdparams"), [], 4, "resume load from"),
    "ema_tensor_missing": (lambda p, t: _ema_missing(p, t).with_suffix(".pdparams"), [], 4, "EMA tensors in"),
    "last_lr_not_a_number": (lambda p, t: _crafted_opt(p, t, _bad_last_lr).with_suffix(".pdparams"), [], 4, "LR_Scheduler.last_lr is '0.1'"),
    "int_accumulator": (lambda p, t: _crafted_opt(p, t, _int_accumulator).with_suffix(".pdparams"), [], 4, "int64 array, not a float tensor"),
    "amp_o2": (lambda p, t: _crafted_opt(p, t, _amp_o2).with_suffix(".pdparams"), [], 4, "AMP O2 master weights"),
    "pdema_without_use_ema": (lambda p, t: p.with_suffix(".pdparams"), ["--set", NO_EMA], 4, "but the config has no use_ema"),
    "other_schedule": (lambda p, t: p.with_suffix(".pdparams"), ["--set", "schedule.base_lr=0.5"], 4, "ppdet's scheduler saved LR"),
    "no_opt_in": (lambda p, t: p.with_suffix(".pdparams"), ["--no-allow"], 4, "pass --allow-pickle"),
    "pdopt_as_weights": (lambda p, t: p.with_suffix(".pdopt"), ["--no-config"], 2, "is ppdet's optimizer state, not weights"),
    "step_with_config": (lambda p, t: p.with_suffix(".pdparams"), ["--step", "7"], 2, "--step cannot be set with --config"),
}  # fmt: skip


def test_dest_with_checkpoints_is_refused_and_kept(ppdet_save, tmp_path: Path, capsys) -> None:
    case, _, prefix = ppdet_save
    dest = tmp_path / "dest"
    args = ["--config", str(case.ours_yaml), "--allow-pickle"]
    assert _import(prefix.with_suffix(".pdparams"), dest, *args) == 0
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert _import(prefix.with_suffix(".pdparams"), dest, *args) == 4
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert (
        err.startswith("warmstart: checkpoint: ") and "already holds committed checkpoints (steps 2)" in err
    )
    assert {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("case_name", sorted(BAD))
def test_bad_input_one_line_nothing_written(ppdet_save, tmp_path: Path, capsys, case_name: str) -> None:
    case, _, prefix = ppdet_save
    make, extra, code, text = BAD[case_name]
    src = make(prefix, tmp_path / "crafted")
    args = [] if "--no-config" in extra else ["--config", str(case.ours_yaml)]
    args += [] if "--no-allow" in extra else ["--allow-pickle"]
    args += [a for a in extra if a not in ("--no-config", "--no-allow")]
    dest = tmp_path / "dest"
    capsys.readouterr()
    assert _import(src, dest, *args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(("warmstart: checkpoint: ", "warmstart: config: ")) and text in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not dest.exists() or not any(dest.rglob("*"))
