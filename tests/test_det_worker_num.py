"""ppdet's top-level ``worker_num`` (what its Trainer passes to every reader's DataLoader as
``num_workers``) becomes ``train.data_workers``; ``task.options.overrides`` beats the file, our own
``train.data_workers`` beats both (a warning when they differ); a ``worker_num`` inside a reader, which
ppdet passes on unused, is named; bad values are one line."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from app.config import load_config
from app.errors import ConfigError
from app.tasks.det.reader_keys import reader_key_warnings
from app.tasks.det.translate import translate

LOG = "app.tasks.det.translate"


def _translate(tmp: Path, body: str, overrides: dict | None = None, **ours: object) -> dict:
    path = tmp / "ppdet.yml"
    path.write_text(textwrap.dedent(body))
    options: dict = {"ppdet_config": str(path)}
    if overrides is not None:
        options["overrides"] = overrides
    return translate({"task": {"kind": "detection", "options": options}, **ours})


@pytest.mark.parametrize(("body", "overrides", "expected"), [
    ("worker_num: 4\n", None, 4),
    ("worker_num: 0\n", None, 0),  # ppdet's 0: batches made in the trainer process
    ("epoch: 3\n", None, None),  # not set: our auto rule
    ("worker_num: null\n", None, None),
    ("worker_num: 4\n", {"worker_num": 2}, 2),  # ppdet applies overrides on top of the file
    ("epoch: 3\n", {"worker_num": 1}, 1),
])  # fmt: skip
def test_worker_num_becomes_data_workers(
    tmp_path: Path, body: str, overrides: dict | None, expected: int | None
) -> None:
    out = _translate(tmp_path, body, overrides)
    assert out["train"].get("data_workers") == expected


def test_base_includes_are_read(tmp_path: Path) -> None:
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_/reader.yml").write_text("worker_num: 6\nTrainReader: {batch_size: 4}\n")
    assert _translate(tmp_path, "_BASE_: ['_base_/reader.yml']\n")["train"]["data_workers"] == 6
    assert (
        _translate(tmp_path, "_BASE_: ['_base_/reader.yml']\nworker_num: 2\n")["train"]["data_workers"] == 2
    )


def test_our_data_workers_win_with_a_warning_when_they_differ(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=LOG):
        out = _translate(tmp_path, "worker_num: 8\n", train={"data_workers": 1})
        same = _translate(tmp_path, "worker_num: 1\n", train={"data_workers": 1})
    assert out["train"]["data_workers"] == same["train"]["data_workers"] == 1
    assert [r.getMessage() for r in caplog.records] == [
        "task.options.ppdet_config: worker_num=8 ignored: train.data_workers (1) is set in our own section and wins"
    ]


def test_the_validated_config_carries_it(tmp_path: Path) -> None:
    (tmp_path / "ppdet.yml").write_text("worker_num: 3\n")
    ours = tmp_path / "ours.yaml"
    ours.write_text(
        f"task: {{kind: detection, options: {{ppdet_config: {tmp_path / 'ppdet.yml'}}}}}\n"
        "schedule: {total_steps: 4}\n"
    )
    assert load_config(ours, env={}).train.data_workers == 3
    assert load_config(ours, ["train.data_workers=0"], env={}).train.data_workers == 0


@pytest.mark.parametrize(("body", "overrides", "message"), [
    ("worker_num: -1\n", None, "task.options.ppdet_config: worker_num: expected a whole number >= 0 "
     "(0 = batches made in the trainer), got -1"),
    ("worker_num: '4'\n", None, "task.options.ppdet_config: worker_num: expected a whole number >= 0 "
     "(0 = batches made in the trainer), got '4'"),
    ("worker_num: 2\n", {"worker_num": 1.5}, "task.options.overrides.worker_num: expected a whole number >= 0 "
     "(0 = batches made in the trainer), got 1.5"),
    ("worker_num: true\n", None, "task.options.ppdet_config: worker_num: expected a whole number >= 0 "
     "(0 = batches made in the trainer), got True"),
])  # fmt: skip
def test_bad_values_are_one_line(tmp_path: Path, body: str, overrides: dict | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _translate(tmp_path, body, overrides)
    assert info.value.line() == message


def test_a_readers_own_worker_num_is_named_as_not_read_by_ppdet() -> None:
    assert reader_key_warnings("TrainReader", {"batch_size": 8, "worker_num": 4}) == [
        "TrainReader.worker_num (not used: ppdet reads only the top-level worker_num, which becomes "
        "train.data_workers)"
    ]
