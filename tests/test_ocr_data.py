"""OCR data: the synthetic generator, PaddleOCR label files and dictionaries, augmentation determinism,
PaddleOCR's metrics, the model's shapes and option errors."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import paddle
import pytest

from app.config.typed import from_data
from app.errors import ConfigError, TaskError
from app.tasks.ocr.data import Augmenter, Preprocess, load_image, read_label_files
from app.tasks.ocr.metrics import rec_metrics
from app.tasks.ocr.model import build_model
from app.tasks.ocr.options import AugmentOptions, ModelOptions, OcrRecOptions, SynthOptions
from app.tasks.ocr.synth import find_font, write_synthetic
from app.tasks.ocr.task import OcrRecTask, resolve_dict
from app.tasks.ocr.wheel import builtin_dict_path, ctc_encoder

SYNTH = SynthOptions(charset="abc01", min_len=2, max_len=4, n_train=12, n_eval=4, seed=3)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_synthetic_set_is_deterministic_and_in_paddleocr_layout(tmp_path: Path) -> None:
    files = write_synthetic(tmp_path / "a", SYNTH)
    write_synthetic(tmp_path / "b", SYNTH)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert sorted(files) == ["dict", "eval", "train"]
    lines = files["train"].read_text().splitlines()
    assert len(lines) == 12 and lines[0].startswith("images/train/000000.png\t")
    texts = [line.split("\t")[1] for line in lines]
    assert all(2 <= len(t) <= 4 and set(t) <= set("abc01") for t in texts)
    assert files["dict"].read_text() == "a\nb\nc\n0\n1\n"
    image = load_image(tmp_path / "a" / "images" / "train" / "000000.png")
    assert image.dtype == np.uint8 and image.shape[0] == 48 and image.shape[1] <= 320 and image.shape[2] == 3
    other = write_synthetic(tmp_path / "c", SynthOptions(**{**SYNTH.__dict__, "seed": 4}))
    assert other["train"].read_text() != files["train"].read_text()


def test_fonts_fall_back_to_matplotlib(tmp_path: Path) -> None:
    import matplotlib

    mpl = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    assert find_font("DejaVuSerif.ttf").name == "DejaVuSerif.ttf"
    assert find_font(str(mpl / "DejaVuSansMono.ttf")) == mpl / "DejaVuSansMono.ttf"
    with pytest.raises(ConfigError, match="font 'NoSuchFont.ttf' not found"):
        find_font("NoSuchFont.ttf")


def test_label_files_and_wheel_encoder(tmp_path: Path) -> None:
    files = write_synthetic(tmp_path, SYNTH)
    (tmp_path / "mixed.txt").write_text(
        "images/train/000000.png\tab\nimages/train/000001.png\tzz\nimages/train/000002.png\tabcab01\n"
    )
    encoder = ctc_encoder(files["dict"], max_text_length=4, use_space_char=False)
    lines = read_label_files(tmp_path, ["mixed.txt"], encoder)
    assert lines.texts == ["ab"]  # "zz": no dictionary character; "abcab01": longer than 4
    assert lines.labels.tolist() == [[1, 2, 0, 0]] and lines.lengths.tolist() == [2]
    (tmp_path / "bad.txt").write_text("images/train/000000.png ab\n")
    with pytest.raises(TaskError, match=r"bad.txt:1: expected 'image_path<TAB>text'"):
        read_label_files(tmp_path, ["bad.txt"], encoder)
    (tmp_path / "gone.txt").write_text("images/nope.png\tab\n")
    with pytest.raises(TaskError, match=r"images/nope.png \(listed in gone.txt\) does not exist"):
        read_label_files(tmp_path, ["gone.txt"], encoder)
    with pytest.raises(TaskError, match="label file .*missing.txt does not exist"):
        read_label_files(tmp_path, ["missing.txt"], encoder)


def test_dictionaries_from_the_wheel_and_files(tmp_path: Path) -> None:
    en = builtin_dict_path("en_dict.txt")
    assert len(ctc_encoder(en, 25, use_space_char=True).character) == 95 + 1 + 1  # + space + blank
    assert len(ctc_encoder(builtin_dict_path("ppocr_keys_v1.txt"), 25, False).character) == 6623 + 1
    with pytest.raises(
        ConfigError, match="builtin_dict: 'nope.txt' is not a dictionary in the paddleocr wheel"
    ):
        builtin_dict_path("nope.txt")
    with pytest.raises(ConfigError, match="not a dictionary"):
        builtin_dict_path("../../paddleocr.py")
    (tmp_path / "d.txt").write_text("x\n")
    opts = from_data(OcrRecOptions, {"data_dir": str(tmp_path), "character_dict_path": "d.txt"}, "o")
    assert resolve_dict(opts) == tmp_path / "d.txt"


def test_preprocess_matches_paddleocr_predictor_resize(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (48, 100, 3), dtype=np.uint8)
    out = Preprocess([3, 32, 128])(image)
    assert out.shape == (3, 32, 128) and out.dtype == np.float32
    width = int(np.ceil(32 * 100 / 48))  # 67 columns of image, then zero padding
    assert np.all(out[:, :, width:] == 0) and np.abs(out[:, :, :width]).max() <= 1.0


def test_augmentation_replays_from_the_global_rngs() -> None:
    aug = Augmenter(
        AugmentOptions(rotate_prob=0.7, blur_prob=0.5, noise_prob=0.5, hsv_prob=0.5, jitter_prob=0.5)
    )
    image = np.full((48, 120, 3), 200, dtype=np.uint8)
    image[10:38, 20:100] = 30

    def run() -> list[np.ndarray]:
        random.seed(5)
        np.random.seed(5)
        return [aug(image.copy()) for _ in range(6)]

    first, second = run(), run()
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=False))
    assert any(not np.array_equal(a, image) for a in first)


def test_metrics_as_paddleocr_reports_them() -> None:
    got = rec_metrics(["hello", "wor ld", "abc", ""], ["hello", "world", "abd", "xy"])
    # exact: hello, world (spaces ignored); edit distances 0, 0, 1/3, 2/2
    assert got["word_accuracy"] == pytest.approx(2 / (4 + 1e-5), abs=1e-12)
    assert got["norm_edit_dis"] == pytest.approx(1 - (1 / 3 + 1) / (4 + 1e-5), abs=1e-12)
    assert rec_metrics(["Ab-1"], ["ab1"], is_filter=True)["word_accuracy"] == pytest.approx(1 / (1 + 1e-5))
    assert rec_metrics(["a b"], ["ab"], ignore_space=False)["norm_edit_dis"] == pytest.approx(
        1 - 1 / 3 / (1 + 1e-5)
    )


@pytest.mark.parametrize(("encoder", "neck_keys"), [("bilstm", 20), ("mixer", 18), ("none", 0)])
def test_model_shapes_and_names(encoder: str, neck_keys: int) -> None:
    with paddle.utils.unique_name.guard():
        model = build_model(ModelOptions(width=4, hidden_size=8, encoder=encoder, heads=2), num_classes=7)
    out = model(paddle.zeros([2, 3, 48, 320]))
    assert out.shape == [2, 80, 7]
    names = list(model.state_dict())
    assert names[0] == "backbone.stem.conv.weight" and names[-2:] == ["head.fc.weight", "head.fc.bias"]
    assert sum(n.startswith("neck.") for n in names) == neck_keys
    assert model(paddle.zeros([1, 3, 48, 100])).shape == [1, 25, 7]  # any width


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"builtin_dict": "en_dict.txt"}, "task.options.data_dir: required"),
        ({"data_dir": "d"}, "set exactly one"),
        ({"data_dir": "d", "builtin_dict": "en_dict.txt", "character_dict_path": "x"}, "set exactly one"),
        ({"data_dir": "d", "builtin_dict": "en_dict.txt", "image_shape": [1, 32, 100]}, "expected [3, H, W]"),
        (
            {"data_dir": "d", "builtin_dict": "en_dict.txt", "image_shape": [3, 40, 320]},
            "H must be a multiple of 16",
        ),
        (
            {
                "data_dir": "d",
                "builtin_dict": "e",
                "model": {"encoder": "mixer", "hidden_size": 10, "heads": 3},
            },
            "heads (3)",
        ),
        ({"data_dir": "d", "builtin_dict": "e", "model": {"encoder": "gru"}}, "task.options.model.encoder"),
        (
            {"data_dir": "d", "builtin_dict": "e", "augment": {"blur_prob": 2}},
            "blur_prob: must be within [0, 1]",
        ),
        (
            {"data_dir": "d", "builtin_dict": "e", "synthetic": {"min_len": 3, "max_len": 2}},
            "min_len <= max_len",
        ),
    ],
)
def test_option_errors_name_the_field(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        OcrRecTask(options, seed=0)
    assert message in info.value.message
