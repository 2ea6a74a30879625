"""Load a PaddleDetection config (with ``_BASE_`` includes) into ppdet's workspace and build from it.

ppdet keeps one process-wide ``global_config`` that every ``load_config`` merges into and that
``create`` mutates. :func:`load_ppdet_config` first puts that registry back to how it was right after
ppdet registered its modules, so two configs loaded in one process (tests, a warm run after a cold one)
never leak keys into each other. Architectures known to be broken in this wheel are refused up front.
Each file is parsed with a safe YAML loader first (ppdet's own ``yaml.Loader`` would run
``!!python/object`` tags). :func:`check_pickle_loads` refuses, before anything is built, every key that would make ppdet unpickle a
file (a backbone's ``pretrained``, ``DecodeCache.cache_root``) unless ``init.allow_pickle`` is set.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import app  # noqa: F401  (zlib before paddle)
from app.checkpoint.pdparams import allow_pickle_file, pickle_refused
from app.errors import ConfigError, TaskError
from app.tasks.det.translate import read_ppdet_yaml

__all__ = [
    "load_ppdet_config",
    "build_architecture",
    "check_pickle_loads",
    "BROKEN_ARCHITECTURES",
    "SUPPORTED_HINT",
]

log = logging.getLogger(__name__)

#: Architectures that do not train with paddledet 2.6.0 on Paddle >= 2.5 (see FIELD_NOTES).
BROKEN_ARCHITECTURES = {
    "FasterRCNN": "its RPN head fails on Paddle >= 2.5 ('The axis is expected to be in range of [0, 0)')",
    "MaskRCNN": "it shares the broken RPN head of Faster R-CNN",
    "CascadeRCNN": "it shares the broken RPN head of Faster R-CNN",
}
SUPPORTED_HINT = "use PicoDet, PPYOLOE or YOLOv3 (configs/det_*.yaml)"

_PRISTINE: dict[str, Any] | None = None
#: Registered ppdet constructors -> deep copies of their default arguments. Some ppdet modules mutate a
#: mutable default in place (LCPAN appends to ``spatial_scales`` when ``num_features: 4``), which would
#: change every later build in the process (an export rebuilds the model; tests load many configs).
_DEFAULTS: dict[Any, tuple[Any, Any]] = {}


def _workspace() -> Any:
    import ppdet.core.workspace as ws  # registers every ppdet module on import
    import ppdet.data  # noqa: F401  (transforms and data sets)
    import ppdet.modeling  # noqa: F401
    import ppdet.optimizer  # noqa: F401

    global _PRISTINE
    if _PRISTINE is None:
        _PRISTINE = {k: copy.copy(v) for k, v in ws.global_config.items()}
        _snapshot_defaults(ws)
    return ws


def _snapshot_defaults(ws: Any) -> None:
    from ppdet.core.config.schema import SchemaDict

    for name, schema in ws.global_config.items():
        init = (
            getattr(getattr(schema.pymodule, name, None), "__init__", None)
            if isinstance(schema, SchemaDict)
            else None
        )
        if init is None or not (getattr(init, "__defaults__", None) or getattr(init, "__kwdefaults__", None)):
            continue
        try:
            _DEFAULTS[init] = (copy.deepcopy(init.__defaults__), copy.deepcopy(init.__kwdefaults__))
        except Exception:  # noqa: BLE001  (an uncopyable default: left as it is)
            continue


def _restore_defaults() -> None:
    """Give every registered ppdet constructor fresh copies of its original default arguments."""
    for init, (defaults, kwdefaults) in _DEFAULTS.items():
        init.__defaults__ = copy.deepcopy(defaults)
        init.__kwdefaults__ = copy.deepcopy(kwdefaults)


def _reset(ws: Any) -> None:
    """Put ppdet's global registry (and its constructors' defaults) back to the just-imported state."""
    assert _PRISTINE is not None
    _restore_defaults()
    for key in list(ws.global_config):
        if key not in _PRISTINE:
            del ws.global_config[key]
    for key, saved in _PRISTINE.items():
        current = ws.global_config.get(key)
        if isinstance(saved, dict) and isinstance(current, dict):
            dict.clear(current)
            dict.update(current, copy.deepcopy(dict(saved)))
        else:
            ws.global_config[key] = saved


def _merge_raw(raw: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """The safe parse with ``task.options.overrides`` merged over it, as ppdet merges them."""
    out = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        if isinstance(out.get(key), dict) and isinstance(value, dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _check_architecture(arch: Any, p: Path) -> None:
    if not arch:
        raise ConfigError(f"task.options.ppdet_config {str(p)!r}: no 'architecture' key")
    if arch in BROKEN_ARCHITECTURES:
        raise ConfigError(
            f"task.options.ppdet_config {str(p)!r}: architecture {arch} is not supported: "
            f"{BROKEN_ARCHITECTURES[arch]}",
            hint=SUPPORTED_HINT,
        )


def load_ppdet_config(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None,
) -> Any:
    """ppdet's ``global_config`` for ``path`` (``_BASE_`` resolved) with ``overrides`` merged on top.

    ``check(merged, overrides)`` sees the safely parsed config (``!Tag`` as ``name: Tag``, overrides
    merged) before ppdet reads the file, so its errors come before ppdet's."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"task.options.ppdet_config: {str(p)!r} does not exist")
    # ppdet parses with yaml.Loader, which runs `!!python/object/apply` tags: the safe parse goes first
    raw = read_ppdet_yaml(p)
    ws = _workspace()
    merged = _merge_raw(raw, overrides)
    if merged.get("architecture") in BROKEN_ARCHITECTURES:
        _check_architecture(merged["architecture"], p)
    if check is not None:
        check(merged, overrides or {})
    _reset(ws)
    try:
        cfg = ws.load_config(str(p))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"task.options.ppdet_config {str(p)!r}: an included file is missing: {exc.filename}"
        ) from None
    except Exception as exc:  # yaml errors, unknown !Tags: the user's file, reported as a config error
        raise ConfigError(f"task.options.ppdet_config {str(p)!r}: cannot be loaded: {exc}") from None
    if overrides:
        ws.merge_config(copy.deepcopy(overrides))
    _check_architecture(cfg.get("architecture"), p)
    return cfg


def build_architecture(cfg: Any) -> Any:
    """``create(cfg.architecture)``; a failure inside ppdet becomes a TaskError naming the architecture."""
    import ppdet.core.workspace as ws

    _restore_defaults()  # a second build in one process (export) starts from ppdet's own defaults
    try:
        return ws.create(cfg["architecture"])
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        raise TaskError(
            f"ppdet cannot build architecture {cfg['architecture']!r} from task.options.ppdet_config: {exc}",
            hint="check the model section names against ppdet's registered modules",
        ) from None


def _walk(node: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str, Any]]:
    """(dotted path, key, value) of every mapping entry under ``node`` (lists included)."""
    if depth > 32:
        return
    if isinstance(node, dict):
        for key, value in dict.items(node):  # the values set, not a SchemaDict's defaults
            where = f"{path}.{key}" if path else str(key)
            yield where, str(key), value
            yield from _walk(value, where, depth + 1)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]", depth + 1)


def _gate(where: str, value: str, allow_pickle: bool, why: str) -> None:
    source = f"{value} (ppdet config {where})"
    if Path(value).is_file():
        allow_pickle_file(Path(value), allow_pickle=allow_pickle, source=source, why=why)
    elif not allow_pickle:
        raise pickle_refused(source, why)
    else:
        log.warning(
            "%s: %s may unpickle %s because allow_pickle is set (no local file to hash)", where, why, value
        )


def check_pickle_loads(cfg: Any, allow_pickle: bool) -> None:
    """Refuse (or, with ``allow_pickle``, log with sha256) every config key that makes ppdet unpickle."""
    for where, key, value in _walk(cfg, ""):
        if key == "pretrained" and isinstance(value, str) and value:
            _gate(where, value, allow_pickle, "a ppdet backbone's `pretrained` goes to paddle.load")
        if key == "DecodeCache" and isinstance(value, dict) and value.get("cache_root"):
            _gate(where + ".cache_root", str(value["cache_root"]), allow_pickle,
                  "ppdet's DecodeCache pickle.loads cached images from its cache_root")  # fmt: skip
