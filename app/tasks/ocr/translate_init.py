"""PaddleOCR's ``Global.pretrained_model`` / ``Global.checkpoints`` mapped onto our ``init`` section.

PaddleOCR 2.8 (``ppocr/utils/save_load.py``, ``load_model``) reads ``checkpoints`` first and then, only
when it is empty, ``pretrained_model``; an empty value (``None``, ``""``) means "not set". Either names a
``.pdparams`` file with or without that suffix (the suffix is added when missing); an http(s) URL is
downloaded as given.

- ``pretrained_model`` -> ``init.from`` (the ``.pdparams`` file) with ``init.mode: partial``: PaddleOCR's
  ``load_pretrained_params`` loads every tensor whose name and shape match and skips the others with a
  warning, which is what ``partial`` does (our report lists the skipped tensors; unlike PaddleOCR, a
  load below ``init.min_loaded_fraction`` stops the run).
- ``checkpoints`` -> ``init.from`` with ``init.mode: weights`` (strict) and a warning: PaddleOCR resumes
  its own run from ``.pdparams`` + ``.pdopt`` (optimizer and LR state) + ``.states`` (epoch); only the
  weights cross over, so the optimizer and the schedule start at step 0. Once this run has saved a
  checkpoint, a restart resumes from that (exactly), and ``init`` is no longer read.

A key set in our own ``init`` section wins: ``init.from`` drops the PaddleOCR value entirely, ``init.mode``
keeps our mode for the PaddleOCR file; each with a warning naming both. A ``.pdparams`` is a pickle:
loading it still needs ``init.allow_pickle: true`` or a matching ``init.sha256`` (the loader's refusal
says so), or a one-time ``warmstart ckpt import``.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from app.errors import ConfigError
from app.redact import redact_url

__all__ = ["INIT_KEYS", "SUFFIX", "weights_file", "apply_init"]

log = logging.getLogger(__name__)

#: The ``Global`` keys read here, in PaddleOCR's order of precedence.
INIT_KEYS = ("checkpoints", "pretrained_model")
SUFFIX = ".pdparams"
#: ``Global`` key -> the ``init.mode`` with PaddleOCR's loading semantics for it.
MODES = {"checkpoints": "weights", "pretrained_model": "partial"}


class Writer(Protocol):
    data: dict[str, Any]

    def allowed(self, key: str, source: str) -> bool: ...

    def set(self, key: str, value: Any, source: str) -> None: ...


def _is_unset(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, str) and not value.strip())


def weights_file(value: Any, where: str) -> str:
    """The file PaddleOCR reads for ``value``: an http(s) URL as given, else ``.pdparams`` added if missing."""
    if not isinstance(value, str):
        raise ConfigError(
            f"{where}: expected the path (or http(s) URL) of a .pdparams file, got {value!r}",
            hint="give the file with or without .pdparams, or leave it empty for no weights",
        )
    text = value.strip()
    if text.startswith(("http://", "https://")) or text.endswith(SUFFIX):
        return text
    return text + SUFFIX


def _chosen(section: dict[str, Any]) -> tuple[str, str] | None:
    """(Global key, file) PaddleOCR would load, or None; a set ``pretrained_model`` behind ``checkpoints``
    is reported (PaddleOCR does not load it either)."""
    found = [
        (key, weights_file(section[key], f"Global.{key}"))
        for key in INIT_KEYS
        if not _is_unset(section.get(key))
    ]
    if not found:
        return None
    if len(found) == 2:
        log.warning(
            "Global.pretrained_model=%s is not loaded: Global.checkpoints is set and wins, as in PaddleOCR",
            redact_url(found[1][1]),
        )
    return found[0]


def apply_init(section: dict[str, Any], w: Writer) -> None:
    """Fill ``init.from`` / ``init.mode`` from ``Global`` (see the module docstring)."""
    chosen = _chosen(section)
    if chosen is None:
        return
    key, file = chosen
    source = f"Global.{key}"
    if not w.allowed("init.from", source):
        return
    mode = MODES[key]
    w.set("init.from", file, source)
    w.set("init.mode", mode, f"{source} (init.mode {mode})")
    init = w.data.get("init")
    mode = init.get("mode", mode) if isinstance(init, dict) else mode
    if key == "checkpoints":
        log.warning(
            "Global.checkpoints: the weights %s start this run (init.mode %s); PaddleOCR's optimizer state "
            "(.pdopt) and epoch (.states) are not read, so the optimizer and the schedule start at step 0 "
            "(lower Global.epoch_num to the epochs left); later restarts resume from this run's own "
            "checkpoints",
            redact_url(file), mode,
        )  # fmt: skip
    else:
        log.info(
            "Global.pretrained_model -> init.from=%s, init.mode=%s (partial is PaddleOCR's "
            "load_pretrained_params: tensors whose shapes differ are skipped and reported)",
            redact_url(file), mode,
        )  # fmt: skip
