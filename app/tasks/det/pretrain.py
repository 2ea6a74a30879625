"""A ppdet config's ``pretrain_weights`` becomes our warm start (``init.*``), the way ppdet would load it.

ppdet's ``tools/train.py`` loads ``pretrain_weights`` (a path or an http(s) URL) partially, pairing names
with ``match_state_dict`` (a model name takes the longest weight name that is a dotted tail of it), so an
ImageNet backbone file without the ``backbone.`` prefix loads into a detector. Translated:

- ``init.from`` = the value (a local path without a suffix gets ``.pdparams``, as ppdet does);
- ``init.mode`` = ``partial`` and ``init.match`` = ``ppdet``, unless the user set them.

An ``init.from`` set in our config wins, with one INFO line naming both. An empty value
(``task.options.overrides: {pretrain_weights: null}``) means a cold start, as in ppdet. A pickled
``.pdparams`` still needs ``init.allow_pickle`` (the loader says so). URLs are logged redacted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from app.errors import ConfigError
from app.redact import redact_url

__all__ = ["pretrain_source", "translate_pretrain"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config"
KEY = "pretrain_weights"


def pretrain_source(value: str) -> str:
    """The file ppdet would read for ``value``: URLs as they are; ``x`` -> ``x.pdparams`` if only that exists."""
    if "://" in value or Path(value).exists():
        return value
    suffixed = value + ".pdparams"
    return suffixed if Path(suffixed).is_file() else value


def _value(ppcfg: dict[str, Any], overrides: Any) -> tuple[Any, str]:
    if isinstance(overrides, dict) and KEY in overrides:
        return overrides[KEY], "task.options.overrides"
    return ppcfg.get(KEY), WHERE


def translate_pretrain(out: dict[str, Any], ppcfg: dict[str, Any], overrides: Any) -> None:
    """Fill ``out["init"]`` from ``pretrain_weights`` (in place); see the module docstring."""
    value, where = _value(ppcfg, overrides)
    if value is None or value == "" or value is False:
        if KEY in ppcfg:
            log.info("%s: %s is empty in %s: no pretrained weights (cold start)", WHERE, KEY, where)
        return
    if not isinstance(value, str):
        raise ConfigError(
            f"{where}: {KEY} must be a path or an http(s) URL of a weights file, got {type(value).__name__}"
        )
    init = out.setdefault("init", {})
    if not isinstance(init, dict):
        return  # our own validation names the shape of the init section
    if init.get("from"):
        log.info(
            "init.from=%s wins over the ppdet config's %s=%s, which is not loaded",
            redact_url(str(init["from"])), KEY, redact_url(value),
        )  # fmt: skip
        return
    init["from"] = pretrain_source(value)
    init.setdefault("mode", "partial")
    if init["mode"] != "resume":
        init.setdefault("match", "ppdet")
    log.info(
        "%s: %s=%s -> init.from (mode %s, match %s), as ppdet loads it",
        WHERE, KEY, redact_url(init["from"]), init["mode"], init.get("match", "exact"),
    )  # fmt: skip
