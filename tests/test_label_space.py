"""Label spaces in checkpoint meta: the record and its schema, what a difference reads like, and that
each task's class-layer globs are exactly the parameters whose shapes follow the label count."""

from __future__ import annotations

import fnmatch

import paddle
import pytest

from app.checkpoint.labels import (
    MAX_STORED_NAMES,
    LabelSpace,
    check_label_record,
    describe_change,
    label_digest,
    label_record,
)
from app.checkpoint.schema import check_meta
from app.errors import CheckpointError

WHERE = "s3://b/run/step-00000010/meta.json"


def _space(names: str | list[str], kind: str = "dictionary") -> LabelSpace:
    return LabelSpace(kind, tuple(names), ("head.fc.*",))


def test_record_holds_kind_count_digest_and_names():
    record = label_record(_space("abc"))
    assert record == {
        "kind": "dictionary",
        "count": 3,
        "sha256": label_digest(["a", "b", "c"]),
        "names": ["a", "b", "c"],
    }
    assert label_digest(["a", "b", "c"]) != label_digest(["a", "c", "b"])
    assert label_digest(["ab", "c"]) != label_digest(["a", "bc"])  # a list, not a concatenation
    assert check_label_record(record, WHERE) == record


def test_large_or_long_names_are_recorded_by_count_and_digest_only():
    many = [f"c{i}" for i in range(MAX_STORED_NAMES + 1)]
    assert "names" not in label_record(_space(many))
    assert "names" not in label_record(_space(["x" * 257]))
    assert label_record(_space(many[:MAX_STORED_NAMES]))["count"] == MAX_STORED_NAMES


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": ""}, "label_space.kind must be a string of 1 to 64 characters"),
        ({"count": -1}, "label_space.count must be an integer in [0, 2147483648]"),
        ({"count": True}, "label_space.count must be an integer in [0, 2147483648]"),
        ({"sha256": "AB" * 32}, "label_space.sha256 must be 64 lower-case hex digits"),
        ({"names": ["a", "b"]}, "label_space.names must be a list of count (3) names, at most 10000"),
        ({"names": ["a", "b", 3]}, "label_space.names must be strings of at most 256 characters"),
        ({"names": ["a", "c", "b"]}, "label_space.names do not match label_space.sha256"),
    ],
)
def test_meta_schema_refuses_a_bad_label_space(change, message):
    meta = {"step": 10, "label_space": {**label_record(_space("abc")), **change}}
    with pytest.raises(CheckpointError) as err:
        check_meta(meta, WHERE, 10)
    assert err.value.line() == f"{WHERE}: {message}"


def test_meta_without_label_space_still_passes():
    assert check_meta({"step": 3, "metrics": {}}, WHERE, 3) == {"step": 3, "metrics": {}}


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (_space("abcd"), _space("abcd"), None),
        (
            _space("abcd"),
            _space("abdc"),
            "label space differs (dictionary: checkpoint 4 vs this run 4 labels, 2 differ; same names in "
            "another order; first: index 2 'c' vs 'd')",
        ),
        (
            _space("abcd"),
            _space("abxy"),
            "label space differs (dictionary: checkpoint 4 vs this run 4 labels, 2 differ; "
            "first: index 2 'c' vs 'x')",
        ),
        (
            _space("abc"),
            _space("abcd"),
            "label space differs (dictionary: checkpoint 3 vs this run 4 labels, first: index 3 (none) vs 'd')",
        ),
        (
            _space("01234", "classes"),
            _space("abcde"),
            "label space differs (checkpoint: classes, 5 labels; this run: dictionary, 5 labels)",
        ),
    ],
)
def test_describe_change(old, new, expected):
    assert describe_change(label_record(old), new) == expected


def test_describe_change_without_stored_names_compares_digests():
    record = {k: v for k, v in label_record(_space("abcd")).items() if k != "names"}
    new = _space("abdc")
    assert describe_change(record, new) == (
        "label space differs (dictionary: checkpoint 4 vs this run 4 labels, contents differ "
        f"(sha256 {record['sha256'][:12]}… vs {label_digest(list('abdc'))[:12]}…))"
    )
    assert describe_change(record, _space("abcd")) is None


def _shape_followers(build, small: int, large: int) -> list[str]:
    """Model names whose shapes change with the class count: what must not load under other labels."""
    shapes = []
    for count in (small, large):
        with paddle.utils.unique_name.guard():
            shapes.append({k: tuple(v.shape) for k, v in build(count).state_dict().items()})
    return sorted(k for k in shapes[0] if shapes[0][k] != shapes[1][k])


def _matched(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns))


def test_ocr_class_layers_are_the_dictionary_sized_tensors():
    from app.tasks.ocr.arch import model as v4
    from app.tasks.ocr.arch import model_v3 as v3
    from app.tasks.ocr.model import CLASS_LAYERS, build_model
    from app.tasks.ocr.options import ModelOptions

    cases = {
        "crnn": (lambda n: build_model(ModelOptions(width=8, hidden_size=16), n, 32), CLASS_LAYERS),
        "svtr_lcnet": (lambda n: v4.SvtrLcnetRecognizer(v4.SvtrLcnetConfig(ctc_classes=n)), v4.CLASS_LAYERS),
        "ppocrv3": (lambda n: v3.SvtrMv1eRecognizer(v3.SvtrMv1eConfig(ctc_classes=n)), v3.CLASS_LAYERS),
    }
    for name, (build, patterns) in cases.items():
        followers = _shape_followers(build, 11, 14)
        with paddle.utils.unique_name.guard():
            names = list(build(11).state_dict())
        assert _matched(names, patterns) == followers, name
    assert _shape_followers(cases["svtr_lcnet"][0], 11, 14) == [
        "head.ctc_head.fc.bias",
        "head.ctc_head.fc.weight",
        "head.gtc_head.embedding.embedding.weight",
        "head.gtc_head.tgt_word_prj.weight",
    ]


def test_digits_names_its_head():
    from app.tasks.digits import DigitsTask

    task = DigitsTask({"classes": [3, 1, 2]}, seed=0)
    assert task.label_space() == LabelSpace("classes", ("3", "1", "2"), ("head.*",))
    with paddle.utils.unique_name.guard():
        names = list(task.build_model().state_dict())
    assert _matched(names, ("head.*",)) == ["head.bias", "head.weight"]


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    from app.tasks.det.synth import write_shapes

    return write_shapes(tmp_path_factory.mktemp("shapes"), n_train=4, n_eval=2, size=64, seed=3)


@pytest.mark.parametrize(
    ("config", "arch"),
    [
        ("det_picodet_s.yaml", "PicoDet"),
        ("det_ppyoloe_plus_s.yaml", "PPYOLOE"),
        ("det_yolov3_mbv1.yaml", "YOLOv3"),
    ],
)
def test_detection_class_layers_are_the_class_sized_tensors(shapes_dir, config, arch):
    from app.config import load_config
    from app.tasks.base import build_task
    from app.tasks.det.task import CLASS_LAYERS
    from tests.train_helpers import ROOT

    def task(count: int):
        sets = [f"task.options.dataset_dir={shapes_dir}", f"task.options.num_classes={count}"]
        return build_task(load_config(ROOT / "configs" / config, sets, env={}).task, 0)

    small = task(3)
    space = small.label_space()
    assert space == LabelSpace("classes", ("rectangle", "ellipse", "triangle"), CLASS_LAYERS[arch])
    followers = _shape_followers(lambda n: (small if n == 3 else task(n)).build_model(), 3, 5)
    with paddle.utils.unique_name.guard():
        names = list(small.build_model().state_dict())
    assert followers and _matched(names, space.class_layers) == followers


@pytest.mark.parametrize(("gtc", "module"), [(None, "app.tasks.ocr.model"), ("nrtr", "app.tasks.ocr.arch.model"),
                                             ("sar", "app.tasks.ocr.arch.model_v3")])  # fmt: skip
def test_the_ocr_task_names_the_class_layers_of_the_model_it_builds(gtc, module):
    import importlib
    import types

    from app.tasks.ocr.task import OcrRecTask

    task = types.SimpleNamespace(gtc=gtc, characters=["a", "b"])
    space = OcrRecTask.label_space(task)
    assert tuple(space.class_layers) == importlib.import_module(module).CLASS_LAYERS
