"""PaddleOCR's ``Architecture`` / ``Loss`` / ``PostProcess`` / ``Metric`` blocks of a recognition config,
checked against what Warmstart builds and turned into ``task.options.model`` keys.

Supported (anything else is one ConfigError line naming these):

* ``algorithm: SVTR_LCNet`` with ``Backbone: PPLCNetV3`` and ``Head: MultiHead`` (a ``CTCHead`` with an
  ``svtr`` neck and an ``NRTRHead``) -> ``model.algorithm: svtr_lcnet`` and ``model.svtr_lcnet.*``
  (PP-OCRv4 mobile recognition); ``Loss: MultiLoss`` of ``CTCLoss`` + ``NRTRLoss``.
* ``algorithm: SVTR_LCNet`` with ``Backbone: MobileNetV1Enhance`` and ``Head: MultiHead`` (``CTCHead`` with
  an ``svtr`` neck and a ``SARHead``; PP-OCRv3) -> ``model.algorithm: svtr_mv1e`` and ``model.svtr_mv1e.*``;
  ``Loss: MultiLoss`` of ``CTCLoss`` + ``SARLoss``.
* ``algorithm: CRNN`` with a ``SequenceEncoder`` neck (``rnn`` -> ``bilstm``, ``hidden_size``) and a
  ``CTCHead`` -> our CRNN-class recognizer; ``Loss: CTCLoss``. Its ``Backbone`` block is not rebuilt:
  the recipe's backbone is Warmstart's PP-LCNet-style convs (``model.width``), and a warning says so.

``PostProcess`` must be ``CTCLabelDecode`` (what every algorithm decodes with at inference) and ``Metric``
``RecMetric``: ``ignore_space`` / ``is_filter`` become ``task.options.metric.*`` (PP-OCRv3 sets
``ignore_space: false``: spaces count), ``main_indicator`` ``acc`` or ``norm_edit_dis`` becomes
``train.metric``. The functions return ``(dotted key, value, source)``
triples; :mod:`app.tasks.ocr.translate` writes them unless our own section set the key.
"""

from __future__ import annotations

import logging
from typing import Any

from app.errors import ConfigError

__all__ = ["ALGORITHMS", "architecture", "loss", "postprocess", "metric", "mapping"]

log = logging.getLogger(__name__)

Item = tuple[str, Any, str]
M = "task.options.model"
#: PP-OCRv3's algorithm is SVTR_LCNet too; the backbone tells them apart (this name is ours).
V3 = "SVTR_LCNet (MobileNetV1Enhance)"

#: PaddleOCR ``Architecture.algorithm`` -> what it needs (for the one-line refusal).
ALGORITHMS = {
    "SVTR_LCNet": "Backbone PPLCNetV3 + Head MultiHead [CTCHead (Neck svtr), NRTRHead], Loss MultiLoss",
    V3: "Backbone MobileNetV1Enhance + Head MultiHead [CTCHead (Neck svtr), SARHead], Loss MultiLoss",
    "CRNN": "Neck SequenceEncoder (encoder_type rnn) + Head CTCHead, Loss CTCLoss",
}
#: ``svtr`` neck key -> our ``model.svtr_lcnet`` key, with PaddleOCR's defaults when a key is absent.
SVTR_NECK = {
    "dims": ("dims", 64),
    "depth": ("depth", 2),
    "hidden_dims": ("hidden_dims", 120),
    "kernel_size": ("kernel_size", [3, 3]),
    "use_guide": ("use_guide", False),
}
#: The NRTR decoder is built with PaddleOCR's 4 layers; its max_text_length is Global.max_text_length.
NRTR_LAYERS = 4
_METRICS = {"acc": "word_accuracy", "norm_edit_dis": "norm_edit_dis"}


def _supported() -> str:
    return "; ".join(f"{name}: {need}" for name, need in ALGORITHMS.items())


def _refuse(where: str, got: Any) -> ConfigError:
    return ConfigError(
        f"{where}: {got!r} is not a supported PaddleOCR recognition setup (supported: {_supported()})",
        hint="or describe the model in task.options.model (docs/ocr.md)",
    )


def mapping(value: Any, where: str) -> dict[str, Any]:
    """A PaddleOCR config section: a dict, or {} when absent (null); anything else is refused."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def _name(section: dict[str, Any], where: str) -> str:
    return str(section.get("name", "")) or f"<no {where}.name>"


def _only(section: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key, value in section.items():
        if key not in known and value is not None:
            raise ConfigError(
                f"{where}.{key}: not read by Warmstart for this algorithm (known: {', '.join(known)})"
            )


def _heads(head: dict[str, Any], guide: str = "NRTRHead") -> tuple[dict[str, Any], dict[str, Any]]:
    """(CTCHead settings, guidance head settings) of a MultiHead's ``head_list``."""
    found: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(head.get("head_list") or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(
                f"Architecture.Head.head_list[{i}]: expected {{HeadName: settings}}, got {entry!r}"
            )
        ((name, settings),) = entry.items()
        found[name] = mapping(settings, f"Architecture.Head.head_list[{i}].{name}")
    if set(found) != {"CTCHead", guide}:
        raise _refuse("Architecture.Head.head_list", sorted(found))
    return found["CTCHead"], found[guide]


def _ctc_branch(ctc: dict[str, Any], params: dict[str, Any]) -> None:
    """The ``CTCHead`` entry's svtr ``Neck`` and ``Head`` settings into ``params``."""
    neck = mapping(ctc.get("Neck"), "Architecture.Head.head_list.CTCHead.Neck")
    if _name(neck, "Neck") != "svtr":
        raise _refuse("Architecture.Head.head_list.CTCHead.Neck", _name(neck, "Neck"))
    _only(neck, ("name", *SVTR_NECK), "Architecture.Head.head_list.CTCHead.Neck")
    ctc_head = mapping(ctc.get("Head"), "Architecture.Head.head_list.CTCHead.Head")
    _only(ctc_head, ("fc_decay",), "Architecture.Head.head_list.CTCHead.Head")
    for key, (ours, default) in SVTR_NECK.items():
        params[ours] = neck.get(key, default)
    params["fc_decay"] = float(ctc_head.get("fc_decay", 0.0004))


#: MobileNetV1Enhance keys -> (our ``model.svtr_mv1e`` key, PaddleOCR's default).
MV1E_BACKBONE = {
    "scale": ("scale", 0.5),
    "last_conv_stride": ("last_conv_stride", 1),
    "last_pool_type": ("last_pool_type", "max"),
    "last_pool_kernel_size": ("last_pool_kernel_size", [3, 2]),
}


def _svtr_mv1e(arch: dict[str, Any]) -> list[Item]:
    """PP-OCRv3: MobileNetV1Enhance + MultiHead [CTCHead (svtr), SARHead]."""
    backbone = mapping(arch.get("Backbone"), "Architecture.Backbone")
    head = mapping(arch.get("Head"), "Architecture.Head")
    if _name(head, "Head") != "MultiHead":
        raise _refuse("Architecture", f"SVTR_LCNet with MobileNetV1Enhance + {_name(head, 'Head')}")
    _only(backbone, ("name", *MV1E_BACKBONE), "Architecture.Backbone")
    ctc, sar = _heads(head, guide="SARHead")
    _only(sar, ("enc_dim", "max_text_length"), "Architecture.Head.head_list.SARHead")
    params: dict[str, Any] = {
        ours: backbone.get(key, default) for key, (ours, default) in MV1E_BACKBONE.items()
    }
    if not isinstance(params["last_conv_stride"], list):
        params["last_conv_stride"] = [params["last_conv_stride"]] * 2
    _ctc_branch(ctc, params)
    params["enc_dim"] = int(sar.get("enc_dim", 512))
    return [(f"{M}.algorithm", "svtr_mv1e", "Architecture.algorithm")] + [
        (f"{M}.svtr_mv1e.{key}", value, "Architecture") for key, value in params.items()
    ]


def _svtr_lcnet(arch: dict[str, Any]) -> list[Item]:
    backbone = mapping(arch.get("Backbone"), "Architecture.Backbone")
    head = mapping(arch.get("Head"), "Architecture.Head")
    if _name(backbone, "Backbone") != "PPLCNetV3" or _name(head, "Head") != "MultiHead":
        raise _refuse(
            "Architecture", f"SVTR_LCNet with {_name(backbone, 'Backbone')} + {_name(head, 'Head')}"
        )
    _only(backbone, ("name", "scale"), "Architecture.Backbone")
    ctc, nrtr = _heads(head)
    _only(nrtr, ("nrtr_dim", "max_text_length", "num_decoder_layers"), "Architecture.Head.head_list.NRTRHead")
    if int(nrtr.get("num_decoder_layers", NRTR_LAYERS)) != NRTR_LAYERS:
        raise _refuse("Architecture.Head.head_list.NRTRHead.num_decoder_layers", nrtr["num_decoder_layers"])
    if "max_text_length" in nrtr:
        log.info(
            "Architecture...NRTRHead.max_text_length %s: the NRTR labels use Global.max_text_length "
            "(task.options.max_text_length), as PaddleOCR's MultiLabelEncode does",
            nrtr["max_text_length"],
        )
    params: dict[str, Any] = {"scale": float(backbone.get("scale", 1.0))}
    _ctc_branch(ctc, params)
    params["nrtr_dim"] = int(nrtr.get("nrtr_dim", 256))  # MultiHead's default for an NRTRHead
    where = "Architecture.Head"
    return [(f"{M}.algorithm", "svtr_lcnet", "Architecture.algorithm")] + [
        (f"{M}.svtr_lcnet.{key}", value, where) for key, value in params.items()
    ]


def _crnn(arch: dict[str, Any]) -> list[Item]:
    neck = mapping(arch.get("Neck"), "Architecture.Neck")
    head = mapping(arch.get("Head"), "Architecture.Head")
    if _name(neck, "Neck") != "SequenceEncoder" or neck.get("encoder_type") != "rnn":
        raise _refuse("Architecture.Neck", f"{_name(neck, 'Neck')} {neck.get('encoder_type')!r}")
    if _name(head, "Head") != "CTCHead":
        raise _refuse("Architecture.Head", _name(head, "Head"))
    if arch.get("Backbone"):
        log.warning(
            "Architecture.Backbone (%s) is not rebuilt: the CRNN recipe uses Warmstart's PP-LCNet-style "
            "backbone (task.options.model.width / blocks_per_stage)",
            _name(mapping(arch["Backbone"], "Architecture.Backbone"), "Backbone"),
        )
    items: list[Item] = [(f"{M}.encoder", "bilstm", "Architecture.Neck.encoder_type")]
    if "hidden_size" in neck:
        items.append((f"{M}.hidden_size", int(neck["hidden_size"]), "Architecture.Neck.hidden_size"))
    return items


def architecture(section: Any) -> tuple[str, list[Item]]:
    """(PaddleOCR algorithm name, keys to write) for an ``Architecture`` block."""
    arch = mapping(section, "Architecture")
    if arch.get("model_type", "rec") != "rec":
        raise ConfigError(
            f"Architecture.model_type: only 'rec' is read by task ocr_rec, got {arch['model_type']!r}"
        )
    if arch.get("Transform"):
        raise ConfigError(
            f"Architecture.Transform: not supported (got {arch['Transform']!r}); leave it empty"
        )
    algorithm = arch.get("algorithm")
    backbone = _name(mapping(arch.get("Backbone"), "Architecture.Backbone"), "Backbone")
    if algorithm == "SVTR_LCNet" and backbone == "MobileNetV1Enhance":
        return V3, _svtr_mv1e(arch)
    if algorithm == "SVTR_LCNet":
        return algorithm, _svtr_lcnet(arch)
    if algorithm == "CRNN":
        return algorithm, _crnn(arch)
    raise _refuse("Architecture.algorithm", algorithm)


def _loss_names(section: dict[str, Any]) -> list[str]:
    if section.get("name") != "MultiLoss":
        return [_name(section, "Loss")]
    names = []
    for i, entry in enumerate(section.get("loss_config_list") or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"Loss.loss_config_list[{i}]: expected {{LossName: settings}}, got {entry!r}")
        ((name, settings),) = entry.items()
        if settings:
            raise ConfigError(
                f"Loss.loss_config_list[{i}].{name}: settings are not supported, got {settings!r}"
            )
        names.append(name)
    return ["MultiLoss", *names]


#: MultiLoss weight keys -> our ``model.svtr_lcnet`` keys (``model.svtr_mv1e``: weight_2 is weight_sar).
LOSS_WEIGHTS = {"weight_1": "weight_ctc", "weight_2": "weight_nrtr"}
LOSS_WEIGHTS_V3 = {"weight_1": "weight_ctc", "weight_2": "weight_sar"}


def loss(section: Any, algorithm: str | None) -> list[Item]:
    """Check a ``Loss`` block against the algorithm (our loss is fixed by it); MultiLoss weights map."""
    data = mapping(section, "Loss")
    names = _loss_names(data)
    want = {
        "SVTR_LCNet": ["MultiLoss", "CTCLoss", "NRTRLoss"],
        V3: ["MultiLoss", "CTCLoss", "SARLoss"],
        "CRNN": ["CTCLoss"],
    }
    expected = want.get(algorithm or "CRNN", [])
    weights = LOSS_WEIGHTS if data.get("name") == "MultiLoss" else {}
    extra = [k for k in data if k not in ("name", "loss_config_list", *weights)]
    if data.get("name") == "CTCLoss":
        extra = [k for k in extra if not (k == "use_focal_loss" and not data[k])]
    if names != expected or extra:
        raise ConfigError(
            f"Loss: {names}{' with ' + ', '.join(extra) if extra else ''} does not match "
            f"Architecture.algorithm {algorithm or 'CRNN (the default)'}, which trains with {expected} "
            f"(supported: {_supported()})"
        )
    if not weights:
        return []
    section, names_map = ("svtr_mv1e", LOSS_WEIGHTS_V3) if algorithm == V3 else ("svtr_lcnet", LOSS_WEIGHTS)
    return [
        (f"{M}.{section}.{ours}", float(data[key]), f"Loss.{key}")
        for key, ours in names_map.items()
        if key in data
    ]


def postprocess(section: Any) -> None:
    data = mapping(section, "PostProcess")
    if data.get("name") != "CTCLabelDecode" or set(data) - {"name", "character_dict_path", "use_space_char"}:
        raise ConfigError(
            f"PostProcess: {data!r} is not supported; both algorithms decode with {{name: CTCLabelDecode}} "
            "(the dictionary comes from Global.character_dict_path)"
        )


def metric(section: Any) -> list[Item]:
    data = mapping(section, "Metric")
    if data.get("name") != "RecMetric":
        raise ConfigError(f"Metric.name: only RecMetric is supported, got {data.get('name')!r}")
    _only(data, ("name", "main_indicator", "ignore_space", "is_filter"), "Metric")
    items: list[Item] = []
    for key in ("ignore_space", "is_filter"):
        if key in data:
            if not isinstance(data[key], bool):
                raise ConfigError(f"Metric.{key}: expected true or false, got {data[key]!r}")
            items.append((f"task.options.metric.{key}", data[key], f"Metric.{key}"))
    indicator = data.get("main_indicator", "acc")
    if indicator not in _METRICS:
        raise ConfigError(f"Metric.main_indicator: {indicator!r} is not one of {', '.join(_METRICS)}")
    return [("train.metric", _METRICS[indicator], "Metric.main_indicator"), *items]
