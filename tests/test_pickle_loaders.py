"""No loader unpickles without opt-in (issue #13, item 2): every path that could hand a file to
``paddle.load`` / ``pickle.load`` (init.from, ckpt import, export --from, an NLP model_dir local or on
S3, ppdet keys) gets a payload whose ``__reduce__`` creates a marker file. Without ``init.allow_pickle``
the marker never appears and the run stops with one line naming the file and the opt-in; with it, the log
names the file and its sha256. What a file is comes from its content, never its name."""

from __future__ import annotations

import hashlib
import logging
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from app.checkpoint import open_source
from app.cli import main

ROOT = Path(__file__).resolve().parent.parent
OPT_IN = "(if you trust the file, set init.allow_pickle: true (--set init.allow_pickle=true), or convert it "
OPT_IN += "once with `warmstart ckpt import SRC DEST --allow-pickle`)"


class _Marker:
    """What a malicious pickle does: run code while being loaded (here: create a file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.path), "w"))


def _payload(path: Path, marker: Path, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"weight": _Marker(marker)}, protocol=protocol))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _refusal(source: str, why: str = "found by its content", opt_in: str = OPT_IN) -> str:
    return (
        f"warmstart: checkpoint: {source} is a pickle ({why}); loading it can run arbitrary code, so it is "
        f"refused {opt_in}\n"
    )


def _init_opt_in(digest: str) -> str:
    """init.from's refusal names both opt-ins, the pin spelled with the refused file's digest (#14)."""
    return (
        "(if you trust the file, set init.allow_pickle: true (--set init.allow_pickle=true) or pin this exact "
        f"file with init.sha256: {digest}, or convert it once with `warmstart ckpt import SRC DEST "
        "--allow-pickle` and set init.from: DEST)"
    )


def _train(capsys: pytest.CaptureFixture, config: str, **overrides: object) -> tuple[int, str]:
    argv = ["train", "--config", str(ROOT / config)]
    for key, value in overrides.items():
        argv += ["--set", f"{key}={value}"]
    code = main(argv)
    return code, capsys.readouterr().err


# -- content, not names ------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("name", ["w.pdparams", "model.safetensors", "weights.bin", "vocab.txt", "noext"])
def test_pickles_are_found_by_content_under_any_name(tmp_path: Path, protocol: int, name: str) -> None:
    from app.checkpoint.sniff import sniff_file

    assert sniff_file(_payload(tmp_path / name, tmp_path / "marker", protocol)) == "pickle"
    assert not (tmp_path / "marker").exists()


def test_text_zip_and_safetensors_are_not_pickles(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    from app.checkpoint.sniff import sniff_file

    (tmp_path / "vocab.txt").write_text("cat\ndog\nbird\n[PAD]\n")  # starts like a GLOBAL opcode
    with zipfile.ZipFile(tmp_path / "a.pdparams", "w") as zf:
        zf.writestr("data.pkl", b"x")
    # a real safetensors whose 8-byte header length is 0x80: starts with the pickle PROTO byte
    save_file({"x" * 40: np.zeros(3, np.float32)}, str(tmp_path / "w.pdparams"), metadata={"format": "np"})
    assert (tmp_path / "w.pdparams").read_bytes()[:1] == b"\x80"
    kinds = [sniff_file(tmp_path / n) for n in ("vocab.txt", "a.pdparams", "w.pdparams")]
    assert kinds == ["other", "zip", "safetensors"]


def test_safetensors_whose_header_starts_with_0x80_loads(tmp_path: Path) -> None:
    """Was refused as "a pickle/zip file" by the first-byte check."""
    from safetensors.numpy import save_file

    path = tmp_path / "w.safetensors"
    save_file({"x" * 40: np.arange(3, dtype=np.float32)}, str(path), metadata={"format": "np"})
    loaded = open_source(str(path), None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert loaded.tensors["model"]["x" * 40].tolist() == [0.0, 1.0, 2.0]


# -- init.from ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["w.pdparams", "weights.bin", "model.pt", "model.pkl", "noext"])
def test_init_from_pickle_refused_under_any_name(tmp_path: Path, capsys, name: str) -> None:
    src = _payload(tmp_path / "src" / name, tmp_path / "marker")
    code, err = _train(capsys, "configs/demo.yaml", **{"run.dir": tmp_path / "run", "init.from": src})
    assert (code, err) == (4, _refusal(str(src), opt_in=_init_opt_in(_sha(src))))
    assert not (tmp_path / "marker").exists()
    assert not (tmp_path / "run/checkpoints").exists()


def _real_pdparams(path: Path) -> dict[str, np.ndarray]:
    import paddle

    with paddle.utils.unique_name.guard():
        layer = paddle.nn.Linear(3, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    paddle.save(layer.state_dict(), str(path))
    return {k: v.numpy() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("name", ["weights.bin", "noext"])
def test_init_from_pickle_with_opt_in_is_logged_with_sha256(tmp_path: Path, caplog, name: str) -> None:
    src = tmp_path / name
    want = _real_pdparams(src)
    caplog.set_level(logging.WARNING)
    loaded = open_source(str(src), None, allow_pickle=True, staging_dir=tmp_path / "s")
    assert sorted(loaded.tensors["model"]) == sorted(want)
    assert f"unpickling {src} (sha256 {_sha(src)}) because allow_pickle is set" in caplog.text


def test_safetensors_named_pdparams_loads_without_opt_in(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    src = tmp_path / "w.pdparams"
    save_file({"weight": np.ones((2, 2), np.float32)}, str(src))
    loaded = open_source(str(src), None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert loaded.tensors["model"]["weight"].tolist() == [[1.0, 1.0], [1.0, 1.0]]


def test_export_from_a_pickle_is_refused(tmp_path: Path, capsys) -> None:
    src = _payload(tmp_path / "w.bin", tmp_path / "marker")
    argv = ["export", "--config", str(ROOT / "configs/demo.yaml"), "--out", str(tmp_path / "out"),
            "--from", str(src), "--set", f"run.dir={tmp_path / 'run'}"]  # fmt: skip
    assert main(argv) == 4
    assert capsys.readouterr().err == _refusal(str(src))
    assert not (tmp_path / "marker").exists() and not (tmp_path / "out").exists()


# -- ckpt import ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["w.pdparams", "weights.bin", "model.safetensors.bak"])
def test_ckpt_import_refuses_a_pickle_without_the_flag(tmp_path: Path, capsys, name: str) -> None:
    src = _payload(tmp_path / name, tmp_path / "marker")
    assert main(["ckpt", "import", str(src), str(tmp_path / "dest")]) == 4
    err = capsys.readouterr().err
    assert err == (
        f"warmstart: checkpoint: {src} is a pickle (found by its content); loading it can run arbitrary "
        "code, so it is refused (if you trust the file, pass --allow-pickle)\n"
    )
    assert not (tmp_path / "marker").exists() and not (tmp_path / "dest").exists()


def test_ckpt_import_with_the_flag_logs_sha256(tmp_path: Path, capsys) -> None:
    src = tmp_path / "weights.bin"
    want = _real_pdparams(src)
    assert main(["ckpt", "import", str(src), str(tmp_path / "dest"), "--allow-pickle"]) == 0
    assert (
        f"WARNING app.checkpoint.pdparams: unpickling {src} (sha256 {_sha(src)})" in capsys.readouterr().err
    )
    loaded = open_source(str(tmp_path / "dest"), None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert all(np.array_equal(loaded.tensors["model"][k], v) for k, v in want.items())
