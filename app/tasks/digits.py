"""The demo task: a small convolutional classifier on scikit-learn's bundled 8x8 digits (no download).

Options (``task.options``): ``classes`` (digits to use, default 0-9), ``num_classes`` (head size, default
``len(classes)``), ``width`` (channels), ``dropout``, ``eval_fraction``. Labels are indices into
``classes`` so a 5-class model trained on 0-4 and a 10-class model on 0-9 agree on digits 0-4.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn

from app.checkpoint.labels import LabelSpace
from app.config.typed import from_data
from app.tasks.digits_options import DigitsOptions

__all__ = ["DigitsOptions", "DigitsNet", "DigitsTask"]


class DigitsNet(nn.Layer):
    """backbone (two conv blocks) -> head (linear). Parameter names: ``backbone.*``, ``head.*``."""

    def __init__(self, num_classes: int, width: int, dropout: float) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2D(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2D(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2D(2),
            nn.Flatten(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(2 * width * 16, num_classes)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return self.head(self.backbone(x))


def _load_split(classes: list[int], eval_fraction: float) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = np.isin(digits.target, classes)
    images = (digits.images[keep] / 16.0).astype("float32")[:, None, :, :]
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.array([lookup[int(t)] for t in digits.target[keep]], dtype="int64")
    # A fixed split, independent of the run seed, so every run evaluates on the same images.
    order = np.random.default_rng(0).permutation(len(labels))
    n_eval = int(round(len(labels) * eval_fraction))
    ev, tr = order[:n_eval], order[n_eval:]
    return images[tr], labels[tr], images[ev], labels[ev]


class DigitsTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        self.opts: DigitsOptions = from_data(DigitsOptions, options, "task.options")
        self.num_classes = self.opts.num_classes or len(self.opts.classes)
        self.x_train, self.y_train, self.x_eval, self.y_eval = _load_split(
            self.opts.classes, self.opts.eval_fraction
        )
        self.data_source = f"sklearn.datasets.load_digits classes={self.opts.classes}"

    def label_space(self) -> LabelSpace:
        """The digits in head order (rows past ``len(classes)`` are unused)."""
        return LabelSpace("classes", tuple(str(c) for c in self.opts.classes), ("head.*",))

    def build_model(self) -> nn.Layer:
        return DigitsNet(self.num_classes, self.opts.width, self.opts.dropout)

    def train_size(self) -> int:
        return len(self.y_train)

    def train_arrays(self, indices: list[int], epoch: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(indices)
        return self.x_train[idx], self.y_train[idx]

    def to_batch(self, arrays: tuple[np.ndarray, np.ndarray]) -> tuple[paddle.Tensor, paddle.Tensor]:
        return paddle.to_tensor(arrays[0]), paddle.to_tensor(arrays[1])

    def loss(self, model: nn.Layer, batch: tuple[paddle.Tensor, paddle.Tensor]) -> paddle.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(model(x), y)

    @paddle.no_grad()
    def evaluate(self, model: nn.Layer) -> dict[str, float]:
        logits = model(paddle.to_tensor(self.x_eval))
        loss = float(nn.functional.cross_entropy(logits, paddle.to_tensor(self.y_eval)))
        pred = logits.argmax(axis=-1).numpy()
        return {"accuracy": float((pred == self.y_eval).mean()), "eval_loss": loss}

    def export(self, model: nn.Layer, out_dir: Path) -> list[Path]:
        """A Paddle inference model (``inference.pdmodel`` / ``.pdiparams``) taking ``x: [N, 1, 8, 8]``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = [paddle.static.InputSpec(shape=[None, 1, 8, 8], dtype="float32", name="x")]
        static = paddle.jit.to_static(model, input_spec=spec)
        paddle.jit.save(static, str(out_dir / "inference"))
        return [out_dir / "inference.pdmodel", out_dir / "inference.pdiparams"]
