"""Translate a PaddleDetection config's ``LearningRate``, ``OptimizerBuilder``, ``pretrain_weights`` and
``worker_num``.

Registered in ``CONFIG_TRANSLATORS["detection"]``; runs on the raw config before validation, so
``warmstart plan`` shows the translated schedule. Only keys absent from our own ``schedule`` / ``optim``
/ ``train`` sections are filled; keys you set win. The LR per optimizer step equals ppdet's own
``LearningRate`` (tested as a table). The ppdet YAML is read here without importing ppdet or paddle:
``_BASE_`` includes are merged the way ppdet merges them, and ``!Tag`` nodes become ``{"name": Tag}``.

| ppdet | ours |
|---|---|
| ``base_lr`` | ``schedule.base_lr`` |
| ``LinearWarmup{steps or epochs, start_factor}`` | ``warmup: linear``, ``start_lr = base_lr * start_factor`` |
| ``ExpWarmup{steps or epochs, power}`` | ``warmup: custom`` ``lr = base_lr * (t/W)^power`` |
| ``CosineDecay{max_epochs, min_lr_ratio, last_plateau_epochs}`` | ``cosine`` to ``base_lr * min_lr_ratio``
  at ``max_epochs`` (then a constant plateau) |
| ``PiecewiseDecay{milestones (epochs), gamma or values}`` | ``piecewise`` with step boundaries |
| top-level ``epoch`` | ``schedule.epochs`` (the run length) |
| ``OptimizerBuilder`` | ``optim`` (:mod:`app.tasks.det.optimizer`) |
| top-level ``pretrain_weights`` | ``init.from``, ``mode: partial``, ``match: ppdet`` (:mod:`app.tasks.det.pretrain`) |
| top-level ``worker_num`` | ``train.data_workers`` (loader worker processes; 0 = in the trainer) |

Keys ppdet's ``LearningRate`` and its schedulers would reject are refused here too, with one line.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import yaml

from app.config.typed import worker_count
from app.errors import ConfigError
from app.tasks.det.optimizer import translate_optimizer
from app.tasks.det.pretrain import translate_pretrain

__all__ = ["translate", "read_ppdet_yaml", "ppdet_schedule", "count_train_images", "count_voc_images"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config"


class _TagLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!COCODataSet {...}`` / ``!CosineDecay {...}`` into ``{"name": tag, ...}``."""


class _Tagged(dict):
    """A ``!Tag`` mapping: ppdet builds it into an object while reading, so merging replaces it whole."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return _Tagged({"name": suffix, **loader.construct_mapping(node, deep=True)})
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return _Tagged({"name": suffix})


_TagLoader.add_multi_constructor("!", _tagged)


def _plain(value: Any) -> bool:
    return isinstance(value, dict) and not isinstance(value, _Tagged)


def _merge(dst: dict, src: dict) -> dict:
    """ppdet's ``dict_merge``: mappings merge key by key; an object built from a ``!Tag`` is replaced."""
    for k, v in src.items():
        if _plain(dst.get(k)) and _plain(v):
            _merge(dst[k], v)
        else:
            dst[k] = v
    return dst


def read_ppdet_yaml(path: str | Path) -> dict[str, Any]:
    """The merged config: ``_BASE_`` files in order, the including file's own keys on top."""
    p = Path(path)
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_TagLoader) or {}
    except OSError as exc:
        raise ConfigError(f"{WHERE}: cannot read {str(p)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{WHERE}: {str(p)!r} is not valid YAML: {exc}") from None
    merged: dict[str, Any] = {}
    for base in data.pop("_BASE_", None) or []:
        base_path = Path(os.path.expanduser(base))
        _merge(merged, read_ppdet_yaml(base_path if base_path.is_absolute() else p.parent / base_path))
    return _merge(merged, data)


def _unreadable(anno_file: str | Path, why: str) -> ConfigError:
    return ConfigError(
        f"{WHERE}: PiecewiseDecay / a cosine shorter than the run needs steps per epoch, counted from "
        f"{str(anno_file)!r}, which {why}",
        hint="create the data set first, or set schedule.* in the Warmstart config yourself",
    )


def _voc_objects(xml_file: Path) -> int:
    try:
        return len(ElementTree.parse(xml_file).getroot().findall("object"))
    except (OSError, ElementTree.ParseError):
        return 0  # ppdet skips a missing xml; an unreadable one is reported when the task reads the data


def count_voc_images(anno_file: str | Path, root: str | Path, image_dir: str = "") -> int:
    """Lines of a VOC list whose image and xml exist and hold an object: what ppdet's VOCDataSet keeps."""
    try:
        lines = Path(anno_file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        raise _unreadable(anno_file, "cannot be read") from None
    base = Path(root) / image_dir
    n = 0
    for line in lines:
        parts = line.split()
        if len(parts) >= 2 and (base / parts[0]).exists() and _voc_objects(base / parts[1]) > 0:
            n += 1
    return n


def count_train_images(anno_file: str | Path) -> int:
    """Images with at least one valid non-crowd box: the records ppdet's COCODataSet keeps by default."""
    try:
        coco = json.loads(Path(anno_file).read_text(encoding="utf-8"))
    except OSError:
        raise _unreadable(anno_file, "cannot be read") from None
    except (ValueError, UnicodeDecodeError):
        raise _unreadable(anno_file, "is not COCO json") from None
    valid = {
        a["image_id"]
        for a in coco.get("annotations", [])
        if not a.get("iscrowd") and a["bbox"][2] > 0 and a["bbox"][3] > 0
    }
    return sum(1 for img in coco.get("images", []) if img["id"] in valid)


def _power_warmup(power: int):
    def warmup(step: int, steps: int, start_lr: float, base_lr: float) -> float:
        return start_lr + (base_lr - start_lr) * (step / float(steps)) ** power

    warmup.__doc__ = f"ppdet ExpWarmup(power={power}): lr(t) = start + (base - start) * (t / W)^{power}."
    return warmup


power1_warmup, power2_warmup, power3_warmup, power4_warmup = (_power_warmup(p) for p in (1, 2, 3, 4))
_POWER_WARMUPS = {1: "power1_warmup", 2: "power2_warmup", 3: "power3_warmup", 4: "power4_warmup"}

_DEFAULTS = {
    "CosineDecay": {"max_epochs": 1000, "use_warmup": True, "min_lr_ratio": 0.0, "last_plateau_epochs": 0},
    "PiecewiseDecay": {"gamma": [0.1, 0.01], "milestones": [8, 11], "values": None, "use_warmup": True},
    "LinearWarmup": {"steps": 500, "start_factor": 1.0 / 3, "epochs": None},
    "ExpWarmup": {"steps": 1000, "epochs": None, "power": 2},
}


def _scheduler(entry: Any, index: int) -> tuple[str, dict[str, Any]]:
    if not isinstance(entry, dict) or entry.get("name") not in _DEFAULTS:
        name = entry.get("name") if isinstance(entry, dict) else entry
        raise ConfigError(
            f"{WHERE}: LearningRate.schedulers[{index}] {name!r} is not translated "
            f"(supported: {', '.join(_DEFAULTS)})",
            hint="set schedule.* in the Warmstart config instead",
        )
    unknown = [k for k in entry if k != "name" and k not in _DEFAULTS[entry["name"]]]
    if unknown:  # ppdet's own constructor would reject them
        raise ConfigError(
            f"{WHERE}: LearningRate.schedulers[{index}] {entry['name']}: unknown key(s) {', '.join(unknown)} "
            f"(it takes {', '.join(_DEFAULTS[entry['name']])})"
        )
    args = {**_DEFAULTS[entry["name"]], **{k: v for k, v in entry.items() if k != "name"}}
    return entry["name"], args


def _warmup(name: str, args: dict[str, Any], base: float) -> tuple[dict[str, Any], Any]:
    """Our warmup section, and its length as (steps, None) or (None, epochs)."""
    length = (
        {"epochs": args["epochs"]} if args["epochs"] is not None else {"steps": max(int(args["steps"]), 1)}
    )
    if name == "LinearWarmup":
        # start_factor 0 is ppdet's own choice (the toolkit starts there): not the hand-written-config lint's case
        warm = {
            "kind": "linear",
            **length,
            "start_lr": base * float(args["start_factor"]),
            "start_lr_lint": False,
        }
        return warm, length
    power = args["power"]
    if power not in _POWER_WARMUPS:
        raise ConfigError(f"{WHERE}: ExpWarmup power {power!r} is not translated (supported: 1, 2, 3, 4)")
    fn = f"{__name__}:{_POWER_WARMUPS[power]}"
    return {"kind": "custom", **length, "start_lr": 0.0, "callable": fn, "start_lr_lint": False}, length


def _warmup_steps(length: dict[str, Any] | None, spe: int) -> int:
    if not length:
        return 0
    return int(length["steps"]) if "steps" in length else math.ceil(float(length["epochs"]) * spe)


def ppdet_schedule(lr: dict[str, Any], run_epochs: int | None, spe: Any) -> dict[str, Any]:
    """Our ``schedule`` section for a ppdet ``LearningRate`` block; ``spe()`` gives steps per epoch."""
    unknown = [k for k in lr if k not in ("base_lr", "schedulers")]
    if unknown:  # ppdet's LearningRate takes only these two
        raise ConfigError(
            f"{WHERE}: LearningRate: unknown key(s) {', '.join(unknown)} (it takes base_lr, schedulers)"
        )
    base = float(lr.get("base_lr", 0.01))
    entries = lr.get("schedulers") or [{"name": "PiecewiseDecay"}, {"name": "LinearWarmup"}]
    decay_name, decay = _scheduler(entries[0], 0)
    out: dict[str, Any] = {"base_lr": base, "warmup": {"kind": "none"}}
    length = None
    if decay["use_warmup"]:
        if len(entries) < 2:
            raise ConfigError(
                f"{WHERE}: LearningRate: {decay_name} uses a warmup but no warmup scheduler follows"
            )
        out["warmup"], length = _warmup(*_scheduler(entries[1], 1), base)
    if decay_name == "CosineDecay":
        max_epochs, plateau = int(decay["max_epochs"]), int(decay["last_plateau_epochs"])
        min_lr = base * float(decay["min_lr_ratio"])
        out["epochs"] = max_epochs  # ppdet's top-level `epoch` may stop earlier; see docs/detection.md
        if plateau:
            n = spe()
            cosine = (max_epochs - plateau) * n - _warmup_steps(length, n)
            out["stages"] = [
                {"decay": {"kind": "cosine", "min_lr": min_lr}, "steps": cosine},
                {"decay": {"kind": "constant"}},
            ]
        else:
            out["decay"] = {"kind": "cosine", "min_lr": min_lr}
        return out
    n = spe()
    w = _warmup_steps(length, n)
    gamma = decay["gamma"]
    gammas = gamma if isinstance(gamma, list) else [gamma / 10**i for i in range(len(decay["milestones"]))]
    values = decay["values"] if decay["values"] is not None else [base] + [base * g for g in gammas]
    boundaries = [n * int(m) - w for m in decay["milestones"]]
    if run_epochs is None:
        raise ConfigError(f"{WHERE}: PiecewiseDecay needs the top-level 'epoch' (the run length)")
    out.update(
        epochs=int(run_epochs), decay={"kind": "piecewise", "boundaries": boundaries, "values": values}
    )
    return out


def _steps_per_epoch(data: dict[str, Any], ppcfg: dict[str, Any]) -> int:
    opts = data["task"].get("options") or {}
    ds = ppcfg.get("TrainDataset") or {}
    root = opts.get("dataset_dir") or ds.get("dataset_dir") or ""
    anno = Path(root) / (opts.get("train_anno") or ds.get("anno_path") or "")
    image_dir = opts.get("image_dir") or ds.get("image_dir") or ""
    images = (
        count_voc_images(anno, root, image_dir)
        if ds.get("name") == "VOCDataSet"
        else count_train_images(anno)
    )
    train = data.get("train") or {}
    world = int(os.environ.get("PADDLE_TRAINERS_NUM") or os.environ.get("PADDLE_GLOBAL_SIZE") or 1)
    batch = int(train.get("batch_size", 32)) * world
    return max(1, images // batch // int(train.get("grad_accum_steps", 1)))


def _fill(section: dict[str, Any], values: dict[str, Any], exclusive: list[tuple[str, str]]) -> None:
    """Set keys the user did not set; of each exclusive pair, keep the user's choice."""
    for key, value in values.items():
        partner = next((b if a == key else a for a, b in exclusive if key in (a, b)), None)
        if key not in section and (partner is None or partner not in section):
            section[key] = value


def _worker_num(out: dict[str, Any], ppcfg: dict[str, Any], overrides: Any) -> None:
    """ppdet's top-level ``worker_num`` (its DataLoader's ``num_workers`` for every reader) ->
    ``train.data_workers``, unless our own ``train`` section sets it (ours wins, with a warning)."""
    if isinstance(overrides, dict) and "worker_num" in overrides:
        value, where = overrides["worker_num"], "task.options.overrides.worker_num"
    else:
        value, where = ppcfg.get("worker_num"), f"{WHERE}: worker_num"
    if value is None:
        return
    value = worker_count(value, where)
    train = out.setdefault("train", {})
    if not isinstance(train, dict):
        return  # our own validation names the shape of the train section
    if "data_workers" in train:
        if train["data_workers"] == value:
            return
        log.warning(
            "%s=%s ignored: train.data_workers (%s) is set in our own section and wins",
            where, value, train["data_workers"],
        )  # fmt: skip
        return
    train["data_workers"] = value


def translate(data: dict[str, Any]) -> dict[str, Any]:
    """The ``CONFIG_TRANSLATORS["detection"]`` hook."""
    opts = (data.get("task") or {}).get("options") or {}
    path = opts.get("ppdet_config") if isinstance(opts, dict) else None
    if not isinstance(path, str) or not path:
        return data  # the task's own validation reports it
    if not Path(path).is_file():
        raise ConfigError(f"{WHERE}: {path!r} does not exist")
    ppcfg = read_ppdet_yaml(path)
    out = copy.deepcopy(data)
    translate_pretrain(out, ppcfg, opts.get("overrides"))
    _worker_num(out, ppcfg, opts.get("overrides"))
    train = out.setdefault("train", {})
    # VOC evaluation gives mAP at IoU 0.5 only (app/tasks/det/task.py)
    metric = "bbox_map50" if ppcfg.get("metric") == "VOC" else "bbox_map"
    _fill(train, {"metric": metric, "metric_mode": "max"}, [])
    batch = (ppcfg.get("TrainReader") or {}).get("batch_size")
    if batch is not None:
        _fill(train, {"batch_size": int(batch)}, [])
    for key in ("LearningRate", "OptimizerBuilder"):
        if ppcfg.get(key) is not None and not isinstance(ppcfg[key], dict):
            raise ConfigError(f"{WHERE}: {key} must be a mapping, got {ppcfg[key]!r}")
    if isinstance(ppcfg.get("OptimizerBuilder"), dict):
        _fill(out.setdefault("optim", {}), translate_optimizer(ppcfg["OptimizerBuilder"]), [])
    lr = ppcfg.get("LearningRate")
    if isinstance(lr, dict):
        sched = out.setdefault("schedule", {})
        user_len = "total_steps" in sched or "epochs" in sched
        translated = ppdet_schedule(lr, ppcfg.get("epoch"), lambda: _steps_per_epoch(out, ppcfg))
        if user_len:
            translated.pop("epochs", None)
        _fill(sched, translated, [("decay", "stages")])
        log.info(
            "%s: LearningRate translated to schedule %s",
            WHERE,
            {k: sched[k] for k in translated if k in sched},
        )
        run_epochs = ppcfg.get("epoch")
        if run_epochs and "epochs" in translated and int(run_epochs) < translated["epochs"]:
            log.warning(
                "%s: ppdet stops at epoch %s of a cosine planned for %s epochs; Warmstart runs the whole "
                "cosine (set schedule.total_steps to stop earlier; that re-times the cosine)",
                WHERE, run_epochs, translated["epochs"],
            )  # fmt: skip
    return out
