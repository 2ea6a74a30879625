"""No task loader unpickles without opt-in (issue #13, item 2): an NLP ``model_dir`` (local and on S3)
and the ppdet keys that make ppdet unpickle (a backbone's ``pretrained``, ``DecodeCache.cache_root``),
each with a payload whose ``__reduce__`` creates a marker file. Plus item 9: resuming the run's own
checkpoint onto a changed model says what works."""

from __future__ import annotations

import hashlib
import logging
import pickle
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.checkpoint.tensorio import read_tensors
from app.cli import main
from app.config import load_config
from app.errors import CheckpointError
from app.tasks.base import build_task
from app.tasks.nlp.synthetic import make_model_dir, write_reviews
from tests.test_pickle_loaders import OPT_IN, _Marker, _payload
from tests.train_helpers import run_inprocess, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
SEQ = "configs/nlp_seq_cls.yaml"
WHY_DIR = "PaddleNLP may unpickle the files of a model_dir"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    make_model_dir(root / "bert", "bert", seed=0)
    write_reviews(root / "train.csv", 40, seed=1, negation=0.0)
    write_reviews(root / "eval.csv", 20, seed=2, negation=0.0)
    return root


def _model_dir(toy: Path, dest: Path, drop: tuple[str, ...] = (), **files: bytes) -> Path:
    shutil.copytree(toy / "bert", dest)
    for name in drop:
        (dest / name).unlink()
    for name, data in files.items():
        (dest / name).write_bytes(data)
    return dest


def _evil(marker: Path) -> bytes:
    return pickle.dumps({"bert.embeddings.word_embeddings.weight": _Marker(marker)}, protocol=4)


def _seq(toy: Path, run: Path, model_dir: object, **extra: object) -> dict[str, object]:
    return {"run.dir": run, "task.options.model_dir": model_dir, "task.options.train_file": toy / "train.csv",
            "task.options.eval_file": toy / "eval.csv", "training_args.max_steps": 2, **extra}  # fmt: skip


def _train(capsys, overrides: dict[str, object], config: str = SEQ) -> tuple[int, str]:
    argv = ["train", "--config", str(ROOT / config)]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    return main(argv), capsys.readouterr().err


def _line(source: str, why: str, hint: str = OPT_IN) -> str:
    return (
        f"warmstart: checkpoint: {source} is a pickle ({why}); loading it can run arbitrary code, so it is "
        f"refused {hint}\n"
    )


# -- NLP model_dir -----------------------------------------------------------------------------------
def test_model_dir_pickle_weights_refused(toy: Path, tmp_path: Path, capsys) -> None:
    """model_state.pdparams (no safetensors) went to PaddleNLP's paddle.load: code ran, exit 0."""
    marker = tmp_path / "marker"
    folder = _model_dir(
        toy, tmp_path / "m", ("model.safetensors",), **{"model_state.pdparams": _evil(marker)}
    )
    code, err = _train(capsys, _seq(toy, tmp_path / "run", folder))
    assert (code, err) == (4, _line(f"{folder}/model_state.pdparams", "found by its content"))
    assert not marker.exists()
    # the resume of the same command refuses again
    assert _train(capsys, _seq(toy, tmp_path / "run", folder))[0] == 4 and not marker.exists()


def test_model_dir_pickle_named_safetensors_refused_even_with_opt_in(
    toy: Path, tmp_path: Path, capsys
) -> None:
    marker = tmp_path / "marker"
    folder = _model_dir(toy, tmp_path / "m", **{"model.safetensors": _evil(marker)})
    code, err = _train(capsys, _seq(toy, tmp_path / "run", folder, **{"init.allow_pickle": "true"}))
    assert code == 4 and not marker.exists()
    assert err.startswith(f"warmstart: checkpoint: {folder}/model.safetensors is a pickle/zip file, not ")


@pytest.mark.parametrize("name", ["dict.wordseg.pickle", "extra.bin", "notes.txt"])
def test_model_dir_other_pickles_refused(toy: Path, tmp_path: Path, capsys, name: str) -> None:
    """Any other file is handed to PaddleNLP (a tokenizer may unpickle it): checked by content."""
    marker = tmp_path / "marker"
    folder = _model_dir(toy, tmp_path / "m", **{name: pickle.dumps(_Marker(marker), protocol=0)})
    code, err = _train(capsys, _seq(toy, tmp_path / "run", folder))
    assert (code, err) == (4, _line(f"{folder}/{name}", WHY_DIR))
    assert not marker.exists()


def test_model_dir_trainer_files_are_left_out(toy: Path, tmp_path: Path) -> None:
    """What PaddleNLP's Trainer saves beside the weights is never read by from_pretrained: not copied."""
    marker = tmp_path / "marker"
    evil = {n: _evil(marker) for n in ("training_args.bin", "optimizer.pdopt", "pytorch_model.bin")}
    folder = _model_dir(toy, tmp_path / "m", **evil)
    cfg = load_config(
        ROOT / SEQ, [f"{k}={v}" for k, v in _seq(toy, tmp_path / "run", folder).items()], env={}
    )
    task = build_task(cfg.task, cfg.run.seed)
    with paddle.utils.unique_name.guard():
        task.build_model()
    assert sorted(p.name for p in task.model_dir.iterdir()) == sorted(
        ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    )
    assert not marker.exists()


def test_model_dir_pickle_weights_with_opt_in(toy: Path, tmp_path: Path, caplog) -> None:
    """With init.allow_pickle: loaded (logged with name and sha256), handed to PaddleNLP as safetensors."""
    want = read_tensors(toy / "bert/model.safetensors", "toy")
    data = pickle.dumps(want, protocol=4)
    folder = _model_dir(toy, tmp_path / "m", ("model.safetensors",), **{"model_state.pdparams": data})
    cfg = load_config(
        ROOT / SEQ, [f"{k}={v}" for k, v in _seq(toy, tmp_path / "run", folder).items()], env={}
    )
    caplog.set_level(logging.INFO)
    task = build_task(cfg.task, cfg.run.seed, allow_pickle=True)
    digest = hashlib.sha256(data).hexdigest()
    assert f"unpickling {folder}/model_state.pdparams (sha256 {digest}) because allow_pickle" in caplog.text
    assert sorted(p.name for p in task.model_dir.iterdir()) == sorted(
        ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer_config.json", "vocab.txt"]
    )
    with paddle.utils.unique_name.guard():
        net = task.build_model()
    got = {k: v.numpy() for k, v in net.state_dict().items()}
    for key, value in want.items():  # the folder holds the backbone (BertModel); ours is bert.* + head
        assert np.array_equal(got[f"bert.{key}"], value), key


def test_model_dir_safetensors_content_under_pdparams_name(toy: Path, tmp_path: Path) -> None:
    """A real safetensors called model_state.pdparams is not a pickle: no opt-in needed."""
    folder = _model_dir(toy, tmp_path / "m", ("model.safetensors",))
    shutil.copyfile(toy / "bert/model.safetensors", folder / "model_state.pdparams")
    cfg = load_config(
        ROOT / SEQ, [f"{k}={v}" for k, v in _seq(toy, tmp_path / "run", folder).items()], env={}
    )
    task = build_task(cfg.task, cfg.run.seed)
    assert (task.model_dir / "model.safetensors").read_bytes() == (
        folder / "model_state.pdparams"
    ).read_bytes()


def test_model_dir_on_s3_pickle_refused(
    toy: Path, tmp_path: Path, capsys, s3_bucket, s3_store_config
) -> None:
    from app.store import open_store

    marker = tmp_path / "marker"
    folder = _model_dir(
        toy, tmp_path / "m", ("model.safetensors",), **{"model_state.pdparams": _evil(marker)}
    )
    uri = f"s3://{s3_bucket}/models/evil"
    store = open_store(uri, s3_store_config)
    for path in folder.iterdir():
        store.upload_file(path, path.name)
    sc = s3_store_config
    ov = _seq(toy, tmp_path / "run", uri, **{"store.endpoint_url": sc.endpoint_url, "store.region": sc.region,
                                              "store.addressing_style": sc.addressing_style})  # fmt: skip
    code, err = _train(capsys, ov)
    assert "5 file(s) fetched" in err  # the INFO line before it
    assert (code, err.splitlines(True)[-1]) == (
        4,
        _line(f"{uri}/model_state.pdparams", "found by its content"),
    )
    assert not marker.exists()


# -- detection (ppdet) ------------------------------------------------------------------------------------
def _det_options(tmp_path: Path, overrides: dict) -> dict:
    return {"ppdet_config": str(ROOT / "configs/ppdet/picodet_s_lcnet.yml"), "dataset_dir": str(tmp_path / "d"),
            "synthetic": {"n_train": 4, "n_eval": 2, "size": 64}, "overrides": overrides}  # fmt: skip


def test_ppdet_backbone_pretrained_refused(tmp_path: Path) -> None:
    """ConvNeXt/Swin/ViT `pretrained` goes straight to paddle.load when ppdet builds the backbone."""
    from app.tasks.det.task import DetectionTask

    src = _payload(tmp_path / "convnext.pdparams", tmp_path / "marker")
    overrides = {"PicoDet": {"backbone": "ConvNeXt"}, "ConvNeXt": {"pretrained": str(src)}}
    with pytest.raises(CheckpointError) as err:
        DetectionTask(_det_options(tmp_path, overrides), seed=0)
    assert err.value.line() == (
        f"{src} (ppdet config ConvNeXt.pretrained) is a pickle (a ppdet backbone's `pretrained` goes to "
        "paddle.load); loading it can run arbitrary code, so it is refused " + OPT_IN
    )
    assert not (tmp_path / "marker").exists()


def test_ppdet_backbone_pretrained_with_opt_in_is_logged(tmp_path: Path, caplog) -> None:
    from app.tasks.det.task import DetectionTask

    src = tmp_path / "convnext.pdparams"
    src.write_bytes(pickle.dumps({"w": np.zeros(2, np.float32)}, protocol=4))
    overrides = {"PicoDet": {"backbone": "ConvNeXt"}, "ConvNeXt": {"pretrained": str(src)}}
    caplog.set_level(logging.WARNING)
    DetectionTask(_det_options(tmp_path, overrides), seed=0, allow_pickle=True)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert f"unpickling {src} (ppdet config ConvNeXt.pretrained) (sha256 {digest}) via a ppdet" in caplog.text


def test_ppdet_decode_cache_refused(tmp_path: Path) -> None:
    from app.tasks.det.task import DetectionTask

    cache = tmp_path / "cache"
    overrides = {"TrainReader": {"sample_transforms": [{"DecodeCache": {"cache_root": str(cache)}}]}}
    with pytest.raises(CheckpointError, match="DecodeCache pickle.loads cached images"):
        DetectionTask(_det_options(tmp_path, overrides), seed=0)


def test_ppdet_yaml_python_tags_never_run(tmp_path: Path) -> None:
    """ppdet's load_config uses yaml.Loader: a `!!python/object/apply` tag in an included file ran code."""
    from app.errors import ConfigError
    from app.tasks.det.task import DetectionTask

    marker = tmp_path / "marker"
    (tmp_path / "base.yml").write_text(f'x: !!python/object/apply:os.system ["touch {marker}"]\n')
    (tmp_path / "det.yml").write_text(f"_BASE_: [{ROOT / 'configs/ppdet/picodet_s_lcnet.yml'}, base.yml]\n")
    options = {**_det_options(tmp_path, {}), "ppdet_config": str(tmp_path / "det.yml")}
    with pytest.raises(ConfigError, match="base.yml' is not valid YAML: could not determine a constructor"):
        DetectionTask(options, seed=0)
    assert not marker.exists()


def test_ppdet_pretrain_weights_never_loaded_by_the_task(tmp_path: Path, caplog) -> None:
    """The task never hands pretrain_weights to ppdet; the translator routes it to init.from, where the
    pickle gate applies (tests/test_init_keymap.py)."""
    from app.tasks.det.task import DetectionTask

    src = _payload(tmp_path / "pre.pdparams", tmp_path / "marker")
    caplog.set_level(logging.INFO)
    task = DetectionTask(_det_options(tmp_path, {"pretrain_weights": str(src)}), seed=0)
    with paddle.utils.unique_name.guard():
        task.build_model()
    assert not (tmp_path / "marker").exists()
    assert "pretrain_weights -> init.from (partial, match ppdet)" in caplog.text


# -- item 9: resume onto a changed model ------------------------------------------------------------------
def test_own_checkpoint_on_a_changed_model_says_what_works(tmp_path: Path) -> None:
    ov = tiny_overrides(tmp_path, **{"task.options.classes": "[0,1,2,3,4]", "schedule.total_steps": 10})
    assert run_inprocess(ov)[0] == 0
    changed = tiny_overrides(tmp_path, **{"schedule.total_steps": 20})  # 10 classes now
    with pytest.raises(CheckpointError) as err:
        run_inprocess(changed)
    uri = str(tmp_path / "checkpoints")
    assert err.value.hint == (
        f"this is the run's own checkpoint in checkpoint.uri {uri}, which is always resumed exactly and "
        f"ignores init.*; to train a changed model set a new checkpoint.uri (and warm-start it with "
        f"init.from={uri} init.mode=partial), or move the old step-* folders out of {uri}"
    )
    assert err.value.message.startswith(f"resume load from {uri}/step-00000010 does not match the model")
    assert sorted(p.name for p in Path(uri).iterdir() if p.name.startswith("step-")) == ["step-00000010"]
