"""Pickle-free loading and foreign files: pickles refused unless opted in, garbage headers rejected,
bf16 bit patterns, and a committed S3 checkpoint copied with ``aws s3 cp`` then loaded locally."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ckpt_helpers import expected_tensors, save_steps

from app.checkpoint import open_source
from app.checkpoint.tensorio import read_tensors
from app.errors import CheckpointError
from app.store import open_store
from app.store.config import StoreConfig


def _tiny_pdparams(path: Path) -> dict[str, np.ndarray]:
    import paddle

    paddle.seed(1)
    with paddle.utils.unique_name.guard():
        model = paddle.nn.Sequential(paddle.nn.Linear(3, 2), paddle.nn.ReLU(), paddle.nn.Linear(2, 1))
    paddle.save(model.state_dict(), str(path))
    return {k: v.numpy() for k, v in model.state_dict().items()}


def test_pdparams_refused_without_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "w.pdparams"
    _tiny_pdparams(path)
    with pytest.raises(CheckpointError, match="is a pickle .*refused") as info:
        open_source(str(path), None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert "--allow-pickle" in info.value.line() and info.value.exit_code == 4


def test_pdparams_loaded_with_opt_in_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "w.pdparams"
    expected = _tiny_pdparams(path)
    loaded = open_source(str(path), None, allow_pickle=True, staging_dir=tmp_path / "s")
    assert sorted(loaded.tensors["model"]) == sorted(expected) and loaded.state == {}
    for name, value in expected.items():
        assert np.array_equal(loaded.tensors["model"][name], value)
    assert loaded.meta == {
        "source": str(path),
        "source_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(path) in w and "unpickling" in w and "allow_pickle" in w for w in warnings)


class _Boom:
    def __reduce__(self):  # noqa: ANN204  (what a malicious pickle would do)
        return (os.system, ("touch should-never-exist",))


def _committed_copy(tmp_path: Path) -> Path:
    save_steps(open_store(str(tmp_path / "ckpts")), tmp_path / "stage", [(1, 0.1)])
    return tmp_path / "ckpts" / "step-00000001" / "model.safetensors"


@pytest.mark.parametrize("kind", ["pickle", "zip", "huge header", "garbage header", "short"])
def test_bad_safetensors_rejected_without_unpickling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "model.safetensors"
    content = {
        "pickle": pickle.dumps(_Boom(), protocol=4),
        "zip": b"PK\x03\x04" + b"\0" * 40,
        "huge header": struct.pack("<Q", 1 << 40) + b"{}",
        "garbage header": struct.pack("<Q", 4) + b"\xff\xfe{[",
        "short": b"\x01\x02",
    }[kind]
    bad.write_bytes(content)
    expected = {"pickle": "pickle/zip file", "zip": "pickle/zip file", "huge header": "header length",
                "garbage header": "garbage header", "short": "too short"}[kind]  # fmt: skip
    with pytest.raises(CheckpointError, match=expected):
        read_tensors(bad, str(bad))
    with pytest.raises(CheckpointError, match=expected):
        open_source(str(bad), None, allow_pickle=True, staging_dir=tmp_path / "s")  # even with the opt-in
    assert not (tmp_path / "should-never-exist").exists()


def test_pickle_behind_a_valid_manifest_is_refused(tmp_path: Path) -> None:
    """Even a manifest that hashes a pickle correctly cannot make the loader unpickle it."""
    model = _committed_copy(tmp_path)
    model.write_bytes(pickle.dumps(_Boom(), protocol=2))
    manifest_path = model.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    import hashlib

    for entry in manifest["files"]:
        if entry["name"] == "model.safetensors":
            entry["size"], entry["sha256"] = (
                model.stat().st_size,
                hashlib.sha256(model.read_bytes()).hexdigest(),
            )
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="model.safetensors is a pickle/zip file"):
        open_source(str(model.parent), None, allow_pickle=True, staging_dir=tmp_path / "s")


def test_foreign_bf16_tensors_come_back_as_uint16_bits(tmp_path: Path) -> None:
    bits = np.array([0x3F80, 0x4000, 0xBF80], dtype="<u2")  # 1.0, 2.0, -1.0 in bfloat16
    header = json.dumps({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]}}).encode()
    path = tmp_path / "foreign.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    tensors = read_tensors(path, str(path))
    assert tensors["w"].dtype == np.uint16 and np.array_equal(tensors["w"], bits)
    as_float = (tensors["w"].astype(np.uint32) << 16).view(np.float32)
    assert as_float.tolist() == [1.0, 2.0, -1.0]


def test_s3_checkpoint_copied_with_aws_cli_loads_locally(
    s3_server: str, s3_bucket: str, s3_store_config: StoreConfig, tmp_path: Path
) -> None:
    store = open_store(f"s3://{s3_bucket}/runs/exp1", s3_store_config)
    save_steps(store, tmp_path / "stage", [(10, 0.1), (20, 0.2)])
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    assert aws, "aws CLI not found"
    dest = tmp_path / "downloaded"
    subprocess.run(
        [aws, "s3", "cp", "--recursive", "--only-show-errors", "--endpoint-url", s3_server,
         f"s3://{s3_bucket}/runs/exp1/", str(dest)],
        check=True, env={**os.environ, "AWS_PAGER": ""}, timeout=120,
    )  # fmt: skip
    assert sorted(p.name for p in (dest / "step-00000020").iterdir()) == [
        "manifest.json", "meta.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json"
    ]  # fmt: skip
    latest = open_source(str(dest), None, allow_pickle=False, staging_dir=tmp_path / "s")
    assert latest.ref.step == 20
    one = open_source(str(dest / "step-00000010"), None, allow_pickle=False, staging_dir=tmp_path / "s")
    for group, arrays in expected_tensors(10).items():
        for name, array in arrays.items():
            assert (
                np.array_equal(one.tensors[group][name], array)
                and one.tensors[group][name].dtype == array.dtype
            )
