"""Typed ``task.options`` of the ``ocr_rec`` task: model size, data layout, dictionary, augmentation.

Paths are only checked when the task is built, so a shipped config validates on a machine that lacks the
data. Names follow PaddleOCR where a PaddleOCR user would look for them (``data_dir``,
``label_file_list``, ``character_dict_path``, ``use_space_char``, ``max_text_length``, ``image_shape``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.config.typed import limits
from app.errors import ConfigError
from app.tasks.ocr.multiscale import MultiScaleOptions

__all__ = [
    "SvtrLcnetOptions",
    "SvtrMv1eOptions",
    "ModelOptions",
    "AugmentOptions",
    "SynthOptions",
    "MetricOptions",
    "OcrRecOptions",
    "mv1e_rows",
]


def _check_ctc_neck(kernel_size: list[int], hidden_dims: int, path: str, example: str) -> None:
    """The SVTR neck of a MultiHead's CTC branch: a 2-D odd conv kernel, hidden dims for its 8 heads."""
    if len(kernel_size) != 2 or any(k <= 0 or k % 2 == 0 for k in kernel_size):
        raise ConfigError(f"{path}.kernel_size: expected two odd sizes such as {example}, got {kernel_size}")
    if hidden_dims % 8:
        raise ConfigError(f"{path}.hidden_dims: must be a multiple of 8 (8 heads), got {hidden_dims}")


@dataclass
class SvtrLcnetOptions:
    """PP-OCRv4 mobile recognition (``algorithm: svtr_lcnet``); defaults are ``ch_PP-OCRv4_rec.yml``'s.
    Only the class counts (from the dictionary) and these sizes change parameter shapes."""

    #: PPLCNetV3 width scale (0.95: 480 output channels).
    scale: float = field(default=0.95, metadata=limits(gt=0))
    #: SVTR neck of the CTC branch: output dims, blocks, hidden dims, conv kernel, gradient guide.
    dims: int = field(default=120, metadata=limits(gt=0))
    depth: int = field(default=2, metadata=limits(gt=0))
    hidden_dims: int = field(default=120, metadata=limits(gt=0))
    kernel_size: list[int] = field(default_factory=lambda: [1, 3], metadata=limits(gt=0))
    #: Stop the CTC branch's gradient at the backbone (the backbone learns from the NRTR branch).
    use_guide: bool = True
    #: L2 decay on the CTC classifier (PaddleOCR ``Head.fc_decay``).
    fc_decay: float = field(default=1e-5, metadata=limits(ge=0))
    #: Width of the NRTR guidance decoder (4 layers, nrtr_dim / 32 heads).
    nrtr_dim: int = field(default=384, metadata=limits(gt=0))
    #: MultiLoss weights: CTC (weight_1) and NRTR (weight_2).
    weight_ctc: float = field(default=1.0, metadata=limits(ge=0))
    weight_nrtr: float = field(default=1.0, metadata=limits(ge=0))

    def validate(self, path: str) -> None:
        _check_ctc_neck(self.kernel_size, self.hidden_dims, path, "[1, 3]")
        if self.nrtr_dim % 32:
            raise ConfigError(f"{path}.nrtr_dim: must be a multiple of 32 (heads of 32), got {self.nrtr_dim}")


@dataclass
class SvtrMv1eOptions:
    """PP-OCRv3 mobile recognition (``algorithm: svtr_mv1e``, PaddleOCR's ``SVTR_LCNet`` with the
    ``MobileNetV1Enhance`` backbone); defaults are ``ch_PP-OCRv3_rec.yml``'s. Only the class counts (from
    the dictionary) and these sizes change parameter shapes."""

    #: MobileNetV1Enhance width scale (0.5: 512 output channels).
    scale: float = field(default=0.5, metadata=limits(gt=0))
    #: [H, W] stride of the last depthwise block ([1, 2]: a 48 x 320 line gives 40 columns).
    last_conv_stride: list[int] = field(default_factory=lambda: [1, 2], metadata=limits(gt=0))
    #: Final pool: avg (kernel = stride = last_pool_kernel_size) or max (2 x 2, stride 2, as upstream).
    last_pool_type: Literal["avg", "max"] = "avg"
    last_pool_kernel_size: list[int] = field(default_factory=lambda: [2, 2], metadata=limits(gt=0))
    #: SVTR neck of the CTC branch: output dims, blocks, hidden dims, conv kernel, gradient guide.
    dims: int = field(default=64, metadata=limits(gt=0))
    depth: int = field(default=2, metadata=limits(gt=0))
    hidden_dims: int = field(default=120, metadata=limits(gt=0))
    kernel_size: list[int] = field(default_factory=lambda: [3, 3], metadata=limits(gt=0))
    #: Stop the CTC branch's gradient at the backbone (the backbone learns from the SAR branch).
    use_guide: bool = True
    #: L2 decay on the CTC classifier (PaddleOCR ``Head.fc_decay``).
    fc_decay: float = field(default=1e-5, metadata=limits(ge=0))
    #: Hidden size of the SAR guidance branch's LSTM encoder and decoder (PaddleOCR ``SARHead.enc_dim``).
    enc_dim: int = field(default=512, metadata=limits(gt=0))
    #: MultiLoss weights: CTC (weight_1) and SAR (weight_2).
    weight_ctc: float = field(default=1.0, metadata=limits(ge=0))
    weight_sar: float = field(default=1.0, metadata=limits(ge=0))

    def validate(self, path: str) -> None:
        for name in ("last_conv_stride", "last_pool_kernel_size"):
            if len(getattr(self, name)) != 2:
                raise ConfigError(f"{path}.{name}: expected [H, W], got {getattr(self, name)}")
        _check_ctc_neck(self.kernel_size, self.hidden_dims, path, "[3, 3]")


def mv1e_rows(height: int, opts: SvtrMv1eOptions) -> int:
    """Rows MobileNetV1Enhance leaves of an ``height``-pixel line: the convs halve H four times (each
    rounding up), the last block divides by ``last_conv_stride[0]`` (rounding up), then the pool."""
    rows = height
    for stride in (2, 2, 2, 2, opts.last_conv_stride[0]):
        rows = -(-rows // stride)
    kernel = opts.last_pool_kernel_size[0] if opts.last_pool_type == "avg" else 2
    return (rows - kernel) // kernel + 1 if rows >= kernel else 0


@dataclass
class ModelOptions:
    """The recognizer. ``crnn``: this project's CRNN-class model, ``backbone`` (PP-LCNet-style convs) ->
    ``neck`` -> ``head`` (CTC). ``svtr_lcnet``: PaddleOCR's PP-OCRv4 mobile recognizer (PPLCNetV3 +
    MultiHead CTC/NRTR) with PaddleOCR's parameter names, so its checkpoints warm-start it.
    ``svtr_mv1e``: PaddleOCR's PP-OCRv3 mobile recognizer (MobileNetV1Enhance + MultiHead CTC/SAR), the
    same contract."""

    #: crnn (the fields below), svtr_lcnet (PP-OCRv4, sized by ``svtr_lcnet``) or svtr_mv1e (PP-OCRv3,
    #: sized by ``svtr_mv1e``).
    algorithm: Literal["crnn", "svtr_lcnet", "svtr_mv1e"] = "crnn"
    #: Channels of the stem; every stage doubles it (PP-LCNet's scale knob, in channels).
    width: int = field(default=16, metadata=limits(gt=0))
    #: Depthwise-separable blocks per stage (4 stages).
    blocks_per_stage: int = field(default=1, metadata=limits(gt=0))
    #: Sequence encoder: bilstm (CRNN), mixer (light global self-attention + MLP blocks), none.
    encoder: Literal["bilstm", "mixer", "none"] = "bilstm"
    #: Hidden size of the encoder (per direction for bilstm).
    hidden_size: int = field(default=48, metadata=limits(gt=0))
    #: bilstm: stacked layers; mixer: blocks.
    encoder_layers: int = field(default=1, metadata=limits(gt=0))
    #: mixer only: attention heads (must divide hidden_size).
    heads: int = field(default=2, metadata=limits(gt=0))
    #: Dropout before the CTC head (train mode only).
    dropout: float = field(default=0.0, metadata=limits(ge=0, lt=1))
    svtr_lcnet: SvtrLcnetOptions = field(default_factory=SvtrLcnetOptions)
    svtr_mv1e: SvtrMv1eOptions = field(default_factory=SvtrMv1eOptions)

    @property
    def multi_head(self) -> bool:
        """PaddleOCR's MultiHead models (CTC + a guidance branch trained by MultiLoss)."""
        return self.algorithm in ("svtr_lcnet", "svtr_mv1e")

    def validate(self, path: str) -> None:
        for name in ("width", "blocks_per_stage", "hidden_size", "encoder_layers", "heads"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{path}.{name}: must be > 0, got {getattr(self, name)}")
        if self.encoder == "mixer" and self.hidden_size % self.heads:
            raise ConfigError(
                f"{path}.heads ({self.heads}) must divide {path}.hidden_size ({self.hidden_size})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{path}.dropout: must be in [0, 1), got {self.dropout}")


@dataclass
class RecAugOptions:
    """The wheel's ``RecAug`` (TIA distort/stretch/perspective, then BaseDataAugmentation); its defaults."""

    tia_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    crop_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    reverse_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    noise_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    jitter_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    blur_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))
    hsv_aug_prob: float = field(default=0.4, metadata=limits(ge=0, le=1))


@dataclass
class RecConAugOptions:
    """The wheel's ``RecConAug``: with ``prob``, append up to ``ext_data_num`` other lines side by side."""

    prob: float = field(default=0.5, metadata=limits(ge=0, le=1))
    ext_data_num: int = field(default=2, metadata=limits(ge=1))
    #: [H, W, C] the concatenation may fill (PaddleOCR ``image_shape`` of RecConAug).
    image_shape: list[int] = field(default_factory=lambda: [48, 320, 3], metadata=limits(gt=0))


@dataclass
class AugmentOptions:
    """PaddleOCR-style training augmentation; each image's draws come from generators seeded by (run seed,
    epoch, sample index), so any data worker and an exact resume make the same augmented images."""

    #: Probability of a slight rotation of up to ``max_angle`` degrees.
    rotate_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    max_angle: float = field(default=3.0, metadata=limits(ge=0, le=180))
    #: PaddleOCR's BaseDataAugmentation probabilities (from the paddleocr wheel): top/bottom crop,
    #: Gaussian blur, HSV brightness, jitter, Gaussian noise, colour inversion.
    crop_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    blur_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    hsv_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    jitter_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    noise_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))
    reverse_prob: float = field(default=0.0, metadata=limits(ge=0, le=1))

    @property
    def enabled(self) -> bool:
        probs = (self.rotate_prob, self.crop_prob, self.blur_prob, self.hsv_prob)
        return any(p > 0 for p in probs + (self.jitter_prob, self.noise_prob, self.reverse_prob))

    def validate(self, path: str) -> None:
        for name in ("rotate_prob", "crop_prob", "blur_prob", "hsv_prob", "jitter_prob", "noise_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{path}.{name}: must be within [0, 1], got {value}")
        if not 0.0 <= self.reverse_prob <= 1.0:
            raise ConfigError(f"{path}.reverse_prob: must be within [0, 1], got {self.reverse_prob}")


@dataclass
class SynthOptions:
    """Render a synthetic text-line set (app.tasks.ocr.synth) into ``data_dir`` before loading it.

    The set is a pure function of these fields: the same options write byte-identical files.
    """

    #: Characters words are drawn from (each must be in the dictionary).
    charset: str = "0123456789"
    min_len: int = field(default=1, metadata=limits(ge=1))
    max_len: int = field(default=5, metadata=limits(ge=1))
    n_train: int = field(default=1000, metadata=limits(gt=0))
    n_eval: int = field(default=100, metadata=limits(gt=0))
    #: Font files: names of DejaVu fonts (found in /usr/share/fonts/truetype/dejavu or matplotlib's
    #: mpl-data) such as "DejaVuSans.ttf", or paths.
    fonts: list[str] = field(default_factory=lambda: ["DejaVuSans.ttf"])
    #: Font size range in pixels (the line is 48 px high before resizing).
    min_font_size: int = field(default=26, metadata=limits(ge=8, le=44))
    max_font_size: int = field(default=34, metadata=limits(ge=8, le=44))
    seed: int = field(default=0, metadata=limits(ge=0))

    def validate(self, path: str) -> None:
        if not self.charset:
            raise ConfigError(f"{path}.charset: must not be empty")
        if not 1 <= self.min_len <= self.max_len:
            raise ConfigError(f"{path}: need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if self.n_train <= 0 or self.n_eval <= 0:
            raise ConfigError(f"{path}.n_train/n_eval: must be > 0")
        if not self.fonts:
            raise ConfigError(f"{path}.fonts: name at least one font")
        if not 8 <= self.min_font_size <= self.max_font_size <= 44:
            raise ConfigError(f"{path}: need 8 <= min_font_size <= max_font_size <= 44")


@dataclass
class MetricOptions:
    """PaddleOCR's ``RecMetric`` settings (its defaults). ``ch_PP-OCRv3_rec.yml`` sets ignore_space false."""

    #: Remove spaces from prediction and label before comparing (false: a missing space is an error).
    ignore_space: bool = True
    #: Keep only ASCII letters and digits, lower-cased, before comparing.
    is_filter: bool = False


@dataclass
class OcrRecOptions:
    """Options of ``task.kind: ocr_rec``."""

    #: Root folder the image paths in the label files are relative to (PaddleOCR's ``data_dir``).
    data_dir: str = ""
    #: Training label files (PaddleOCR ``label_file_list``): ``image_path<TAB>text`` per line; relative
    #: to ``data_dir`` unless absolute.
    train_label_files: list[str] = field(default_factory=lambda: ["train.txt"])
    #: Evaluation label files, same format.
    eval_label_files: list[str] = field(default_factory=lambda: ["eval.txt"])
    #: Dictionary file, one character per line (PaddleOCR ``character_dict_path``). Relative paths are
    #: tried against the working directory, then ``data_dir``.
    character_dict_path: str | None = None
    #: A dictionary shipped in the paddleocr wheel, relative to its ``ppocr/utils``: "en_dict.txt",
    #: "ppocr_keys_v1.txt" (Chinese), "ic15_dict.txt", "dict/japan_dict.txt", ... Set this or
    #: ``character_dict_path``.
    builtin_dict: str | None = None
    #: Append the space character to the dictionary (PaddleOCR ``use_space_char``).
    use_space_char: bool = False
    #: Longest label in characters; longer labels are dropped from the data (as PaddleOCR does).
    max_text_length: int = field(default=25, metadata=limits(gt=0))
    #: C, H, W of the network input (PaddleOCR ``rec_image_shape``); lines are resized to H keeping the
    #: aspect ratio and right-padded to W.
    image_shape: list[int] = field(default_factory=lambda: [3, 48, 320], metadata=limits(gt=0))
    #: Batch size of the evaluation pass.
    eval_batch_size: int = field(default=64, metadata=limits(gt=0))
    model: ModelOptions = field(default_factory=ModelOptions)
    #: How word accuracy and edit distance compare texts (PaddleOCR ``Metric``).
    metric: MetricOptions = field(default_factory=MetricOptions)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    #: Write a synthetic set into ``data_dir`` first (when its files are missing or differ).
    synthetic: SynthOptions | None = None
    #: PaddleOCR's MultiScaleSampler batches (app.tasks.ocr.multiscale); from ``Train.sampler``.
    multiscale: MultiScaleOptions | None = None
    #: The wheel's RecAug, seeded per sample (app.tasks.ocr.pipeline); from ``Train`` transforms.
    rec_aug: RecAugOptions | None = None
    #: The wheel's RecConAug, seeded per sample; from ``Train`` transforms.
    rec_con_aug: RecConAugOptions | None = None

    def validate(self, path: str) -> None:
        if not self.data_dir:
            raise ConfigError(f"{path}.data_dir: required for task.kind ocr_rec (a folder)")
        if (self.character_dict_path is None) == (self.builtin_dict is None):
            raise ConfigError(
                f"{path}.character_dict_path / {path}.builtin_dict: set exactly one "
                "(a dictionary file, or a wheel dictionary such as 'en_dict.txt')"
            )
        if not self.train_label_files or not self.eval_label_files:
            raise ConfigError(f"{path}.train_label_files / eval_label_files: name at least one file")
        if len(self.image_shape) != 3 or self.image_shape[0] != 3:
            raise ConfigError(f"{path}.image_shape: expected [3, H, W], got {self.image_shape}")
        _, height, width = self.image_shape
        if height % 16 or height < 16 or width % 4 or width < height:
            raise ConfigError(
                f"{path}.image_shape: H must be a multiple of 16 and W a multiple of 4 with W >= H, "
                f"got {self.image_shape}"
            )
        if self.model.algorithm == "svtr_lcnet" and (height not in (48, 64, 80) or width % 8):
            raise ConfigError(
                f"{path}.image_shape: svtr_lcnet needs H of 48, 64 or 80 (its eval pooling leaves one row "
                f"of H/16) and W a multiple of 8, got {self.image_shape}",
                hint="PP-OCRv4 uses [3, 48, 320]",
            )
        if self.model.algorithm == "svtr_mv1e" and mv1e_rows(height, self.model.svtr_mv1e) != 1:
            raise ConfigError(
                f"{path}.image_shape: svtr_mv1e needs an H its backbone reduces to one row (got "
                f"{mv1e_rows(height, self.model.svtr_mv1e)} rows of H {height})",
                hint="PP-OCRv3 uses [3, 48, 320] (H 32 and 48 work with its default pooling)",
            )
        if self.max_text_length <= 0 or self.eval_batch_size <= 0:
            raise ConfigError(f"{path}.max_text_length / eval_batch_size: must be > 0")
        pipeline = [n for n in ("multiscale", "rec_aug", "rec_con_aug") if getattr(self, n) is not None]
        if pipeline and not self.model.multi_head:  # MultiLabelEncode feeds MultiLoss (CTC + NRTR / SAR)
            raise ConfigError(
                f"{path}.{pipeline[0]}: PaddleOCR's PP-OCRv3/v4 training data needs {path}.model.algorithm "
                f"svtr_lcnet or svtr_mv1e (their CTC + NRTR / SAR labels), got {self.model.algorithm!r}",
                hint=f"remove {', '.join(f'{path}.{n}' for n in pipeline)}, or use a PP-OCRv3/v4 Architecture",
            )
        if pipeline and self.augment.enabled:  # the wheel's RecAug replaces our augmentation there
            raise ConfigError(
                f"{path}.augment: not applied with {path}.{pipeline[0]} (PaddleOCR's pipeline augments with "
                "RecAug / RecConAug)",
                hint=f"set the {path}.augment probabilities to 0, or use {path}.rec_aug",
            )
