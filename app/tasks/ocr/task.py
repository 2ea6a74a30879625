"""The ``ocr_rec`` task adapter: PaddleOCR-format data and dictionaries, the recognizer (our CRNN-class
model, PaddleOCR's PP-OCRv4 ``svtr_lcnet`` with its CTC + NRTR MultiLoss, or PP-OCRv3 ``svtr_mv1e`` with
its CTC + SAR MultiLoss), PaddleOCR's metrics, and an export that the paddleocr wheel's own predictor runs.

Options: :class:`app.tasks.ocr.options.OcrRecOptions` (docs/ocr.md). The loop, schedule, checkpoints
and warm-start rules are the shared ones; this module only adapts OCR to the task protocol.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from app.checkpoint.labels import LabelSpace
from app.config.typed import from_data
from app.errors import ConfigError
from app.tasks.ocr.arch import model as v4_arch
from app.tasks.ocr.arch import model_v3 as v3_arch
from app.tasks.ocr.arch.labels import MultiLabels
from app.tasks.ocr.arch.model import SvtrLcnetConfig, SvtrLcnetRecognizer, multi_loss
from app.tasks.ocr.arch.model_v3 import SvtrMv1eConfig, SvtrMv1eRecognizer, multi_loss_sar
from app.tasks.ocr.data import Augmenter, LineSet, Preprocess, load_image, read_label_files
from app.tasks.ocr.metrics import rec_metrics
from app.tasks.ocr.model import CLASS_LAYERS, SoftmaxExport, build_model
from app.tasks.ocr.multiscale import epoch_plan
from app.tasks.ocr.options import OcrRecOptions
from app.tasks.ocr.pipeline import GTC_KEYS, PPOCRv4Pipeline, train_batch
from app.tasks.ocr.synth import ensure_synthetic
from app.tasks.ocr.wheel import builtin_dict_path, ctc_decoder, ctc_encoder
from app.train import rng

__all__ = ["OcrRecTask", "resolve_dict", "EXPORT_FILES"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: What ``export`` writes: the inference model, the dictionary and the predictor's settings.
EXPORT_FILES = ("inference.pdmodel", "inference.pdiparams", "dict.txt", "predictor.json")
#: ``model.algorithm`` of PaddleOCR's MultiHead models -> their guidance branch (labels and loss).
GUIDANCE = {"svtr_lcnet": "nrtr", "svtr_mv1e": "sar"}


def resolve_dict(opts: OcrRecOptions) -> Path:
    """The dictionary file: a wheel dictionary, or ``character_dict_path`` (cwd first, then data_dir)."""
    if opts.builtin_dict is not None:
        return builtin_dict_path(opts.builtin_dict)
    assert opts.character_dict_path is not None
    for candidate in (Path(opts.character_dict_path), Path(opts.data_dir) / opts.character_dict_path):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"task.options.character_dict_path: {opts.character_dict_path!r} not found "
        f"(tried it as given and under data_dir {opts.data_dir!r})"
    )


def _arch_config(cls: type[T], block: Any, ctc_classes: int, opts: Any) -> T:
    """An architecture dataclass from its option block (same field names; lists become tuples), with the
    class count from the dictionary and ``max_text_length`` from the task's options."""
    given = {"ctc_classes": ctc_classes, "max_text_length": opts.max_text_length}
    values = {
        f.name: tuple(v) if isinstance(v := getattr(block, f.name), list) else v
        for f in dataclasses.fields(cls)
        if f.name not in given and hasattr(block, f.name)
    }
    return cls(**values, **given)


class OcrRecTask:
    def __init__(self, options: dict, seed: int, allow_pickle: bool = False) -> None:
        self.opts: OcrRecOptions = from_data(OcrRecOptions, options, "task.options")
        self.seed = seed
        data_dir = Path(self.opts.data_dir)
        if self.opts.synthetic is not None:
            ensure_synthetic(data_dir, self.opts.synthetic)
        self.dict_path = resolve_dict(self.opts)
        #: "nrtr" (svtr_lcnet), "sar" (svtr_mv1e) or None (crnn): the MultiHead guidance branch.
        self.gtc = GUIDANCE.get(self.opts.model.algorithm)
        self.svtr = self.gtc is not None
        if self.gtc is not None:
            encoder = MultiLabels(
                self.dict_path, self.opts.max_text_length, self.opts.use_space_char, gtc=self.gtc
            )
        else:
            encoder = ctc_encoder(self.dict_path, self.opts.max_text_length, self.opts.use_space_char)
        self.decoder = ctc_decoder(self.dict_path, self.opts.use_space_char)
        self.num_classes = len(encoder.character)
        self.characters = tuple(encoder.character[1:])  # the dictionary (+ space), after the CTC blank
        ms = self.opts.multiscale
        sizes = ms is not None and ms.ds_width
        self.train_set: LineSet = read_label_files(data_dir, self.opts.train_label_files, encoder, sizes)
        self.eval_set: LineSet = read_label_files(data_dir, self.opts.eval_label_files, encoder)
        self.gtc_labels = encoder.gtc(self.train_set.texts) if isinstance(encoder, MultiLabels) else None
        self.preprocess = Preprocess(self.opts.image_shape)
        self.augment = Augmenter(self.opts.augment) if self.opts.augment.enabled else None
        self.pipeline = self._pipeline()
        self.data_source = (
            f"PaddleOCR label files {self.opts.train_label_files} under {data_dir} "
            f"({len(self.train_set)} train / {len(self.eval_set)} eval lines, dictionary {self.dict_path.name}, "
            f"{self.num_classes} classes)"
        )

    def _pipeline(self) -> PPOCRv4Pipeline | None:
        """PaddleOCR's PP-OCRv4 / v3 training pipeline when any of multiscale / rec_aug / rec_con_aug is
        set; without multiscale it replaces a failed sample like ``SimpleDataSet`` (a random one)."""
        o = self.opts
        if o.multiscale is None and o.rec_aug is None and o.rec_con_aug is None:
            return None
        return PPOCRv4Pipeline(
            self.train_set.paths, self.train_set.texts, self.dict_path, o.max_text_length, o.use_space_char,
            o.rec_aug, o.rec_con_aug, self.gtc or "nrtr", random_retry=o.multiscale is None,
        )  # fmt: skip

    def epoch_batches(self, epoch: int, world: int, rank: int) -> list[tuple[list[int], list[int]]] | None:
        """With ``multiscale``: this rank's MultiScaleSampler batches of ``epoch``, each tagged with its
        ``[width, height]`` (app.tasks.ocr.multiscale; ranks take ``order[rank::world]``). Else None: the
        shared stream of ``train.batch_size``."""
        ms = self.opts.multiscale
        if ms is None:
            return None
        plan = epoch_plan(len(self.train_set), ms, self.seed, epoch, world, rank, self.train_set.ratios)
        return [([b.width, b.height], list(b.indices)) for b in plan]

    def label_space(self) -> LabelSpace:
        """The dictionary in class order (the CTC blank excluded; the space last with use_space_char)."""
        layers = {"nrtr": v4_arch.CLASS_LAYERS, "sar": v3_arch.CLASS_LAYERS}.get(self.gtc, CLASS_LAYERS)
        return LabelSpace("dictionary", self.characters, layers)

    def svtr_config(self) -> SvtrLcnetConfig:
        return _arch_config(SvtrLcnetConfig, self.opts.model.svtr_lcnet, self.num_classes, self.opts)

    def mv1e_config(self) -> SvtrMv1eConfig:
        return _arch_config(SvtrMv1eConfig, self.opts.model.svtr_mv1e, self.num_classes, self.opts)

    def build_model(self) -> nn.Layer:
        if self.gtc == "nrtr":
            return SvtrLcnetRecognizer(self.svtr_config())
        if self.gtc == "sar":
            return SvtrMv1eRecognizer(self.mv1e_config())
        return build_model(self.opts.model, self.num_classes, self.opts.image_shape[1])

    def train_size(self) -> int:
        return len(self.train_set)

    def _images(self, paths: list[Path]) -> np.ndarray:
        return np.stack([self.preprocess(load_image(path)) for path in paths])

    def _augmented(self, index: int, epoch: int) -> tuple[np.ndarray, float]:
        """One training image and its valid ratio; its augmentation seeded from (run seed, epoch, index),
        whoever runs it."""
        image = load_image(self.train_set.paths[index])
        if self.augment is not None:
            with rng.seeded(self.seed, epoch, index):
                image = self.augment(image)
        return self.preprocess.with_ratio(image)

    def train_arrays(self, indices: list[int], epoch: int) -> tuple[np.ndarray, ...] | dict[str, np.ndarray]:
        """Without PaddleOCR's pipeline: (images, CTC labels, lengths) for CRNN, plus the NRTR labels for
        svtr_lcnet, plus the SAR labels and valid ratios for svtr_mv1e. With it: the pipeline's batch dict
        at the batch's scale (``indices`` = [width, height, *samples], see :meth:`epoch_batches`) or at
        ``image_shape``."""
        if self.pipeline is not None:
            if self.opts.multiscale is not None:
                width, height, samples = indices[0], indices[1], indices[2:]
            else:
                (_, height, width), samples = self.opts.image_shape, indices
            return train_batch(self.pipeline, width, height, tuple(samples), self.seed, epoch)
        idx = np.asarray(indices)
        images, ratios = zip(*(self._augmented(i, epoch) for i in indices), strict=True)
        arrays = (np.stack(images), self.train_set.labels[idx], self.train_set.lengths[idx])
        if self.gtc_labels is not None:
            arrays += (self.gtc_labels[idx],)
        if self.gtc == "sar":
            arrays += (np.asarray(ratios, dtype="float32"),)
        return arrays

    def to_batch(self, arrays: tuple[np.ndarray, ...] | dict[str, np.ndarray]) -> tuple[paddle.Tensor, ...]:
        if isinstance(arrays, dict):  # the pipeline's keys; only the SAR branch reads valid_ratio
            keys = ["image", "label_ctc", "length", GTC_KEYS[self.gtc or "nrtr"]]
            arrays = tuple(arrays[k] for k in keys + (["valid_ratio"] if self.gtc == "sar" else []))
        return tuple(paddle.to_tensor(a) for a in arrays)

    def loss(self, model: nn.Layer, batch: tuple[paddle.Tensor, ...]) -> paddle.Tensor:
        """PaddleOCR's CTCLoss: per-sample CTC (blank 0) over all steps, then the batch mean; for
        svtr_lcnet its MultiLoss, CTC + NRTR (label-smoothed cross-entropy of the guidance decoder); for
        svtr_mv1e CTC + SAR (cross-entropy of the teacher-forced SAR decoder, attention masked past each
        image's valid width, ``<PAD>`` ignored)."""
        if self.gtc == "sar":
            images, labels, lengths, sar_labels, ratios = batch
            out = model(images, sar_labels, ratios)
            return multi_loss_sar(out, labels, sar_labels, lengths, self.mv1e_config())["loss"]
        if self.gtc == "nrtr":
            images, labels, lengths, nrtr_labels = batch
            out = model(images, nrtr_labels, lengths)
            return multi_loss(out, labels, nrtr_labels, lengths, self.svtr_config())["loss"]
        images, labels, lengths = batch
        logits = model(images).astype("float32").transpose([1, 0, 2])  # [T, N, C]
        steps = paddle.full([logits.shape[1]], logits.shape[0], dtype="int64")
        return F.ctc_loss(logits, labels, steps, lengths, blank=0, reduction="none").mean()

    @paddle.no_grad()
    def probabilities(self, model: nn.Layer, images: np.ndarray) -> np.ndarray:
        """Softmax ``[N, T, C]`` for preprocessed images, what the exported model returns (svtr_lcnet: its
        eval-mode output, computed in eval mode)."""
        if not self.svtr:
            return F.softmax(model(paddle.to_tensor(images)), axis=-1).numpy()
        was_training = model.training
        model.eval()
        try:
            return model(paddle.to_tensor(images)).numpy()
        finally:
            if was_training:
                model.train()

    def recognize(self, model: nn.Layer, paths: list[Path]) -> list[tuple[str, float]]:
        """(text, confidence) per image file, decoded by the wheel's ``CTCLabelDecode``."""
        out: list[tuple[str, float]] = []
        size = self.opts.eval_batch_size
        for start in range(0, len(paths), size):
            probs = self.probabilities(model, self._images(paths[start : start + size]))
            out.extend((text, float(conf)) for text, conf in self.decoder(probs))
        return out

    def eval_targets(self) -> list[str]:
        """The eval labels as PaddleOCR's RecMetric sees them: the encoded CTC label decoded by the wheel's
        ``CTCLabelDecode`` (characters outside the dictionary, e.g. a space without ``use_space_char``,
        are not in it)."""
        labels = self.eval_set.labels.astype("int64")
        return [text for text, _ in self.decoder.decode(labels, is_remove_duplicate=False)]

    def evaluate(self, model: nn.Layer) -> dict[str, float]:
        preds = [text for text, _ in self.recognize(model, self.eval_set.paths)]
        metric = self.opts.metric
        return rec_metrics(preds, self.eval_targets(), metric.ignore_space, metric.is_filter)

    def _inference_layer(self, model: nn.Layer) -> nn.Layer:
        """What is exported: CRNN wrapped with a softmax; svtr_lcnet's / svtr_mv1e's CTC branch in eval
        mode, copied into a fresh model (svtr_lcnet: its backbone blocks folded to single convs, upstream's
        inference form)."""
        if not self.svtr:
            return SoftmaxExport(model)
        # Parameter names of their own: the static program resolves parameters by name, and a copy named
        # like the model it copies (both built in fresh name guards) exports the wrong tensors.
        with paddle.utils.unique_name.guard(paddle.utils.unique_name.generate("ocr_export") + "_"):
            copy = self.build_model()
        copy.set_state_dict(model.state_dict())
        copy.eval()
        if isinstance(copy, SvtrLcnetRecognizer):
            copy.reparameterize()
        return copy

    def export(self, model: nn.Layer, out_dir: Path) -> list[Path]:
        """A Paddle inference model for ``tools/infer/predict_rec.py`` (``--rec_algorithm CRNN``, or
        ``SVTR_LCNet`` for svtr_lcnet and svtr_mv1e): input ``x: [N, 3, H, W]`` (any W), output softmax ``[N, T, C]``;
        plus the dictionary and the predictor settings (``predictor.json``)."""
        out_dir.mkdir(parents=True, exist_ok=True)
        _, height, width = self.opts.image_shape
        spec = [paddle.static.InputSpec(shape=[None, 3, height, None], dtype="float32", name="x")]
        layer = self._inference_layer(model)
        layer.eval()
        paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec), str(out_dir / "inference"))
        shutil.copyfile(self.dict_path, out_dir / "dict.txt")
        settings = {
            "rec_algorithm": "SVTR_LCNet" if self.svtr else "CRNN",
            "rec_image_shape": f"3,{height},{width}",
            "rec_char_dict_path": "dict.txt",
            "use_space_char": self.opts.use_space_char,
        }
        (out_dir / "predictor.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
        log.info("exported the recognizer (%d classes) to %s", self.num_classes, out_dir)
        return [out_dir / name for name in EXPORT_FILES]
