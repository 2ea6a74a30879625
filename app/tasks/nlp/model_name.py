"""A ``model_dir`` that is a PaddleNLP model *name* (``ernie-3.0-medium-zh``, ``org/name``): its cache folder.

PaddleNLP's ``from_pretrained(name)`` keeps what it downloads from its model server in
``<MODEL_HOME>/<name>/<file>`` (``paddlenlp.utils.download.bos_try_to_load_from_cache``), with
``MODEL_HOME = <PPNLP_HOME>/models`` and ``PPNLP_HOME`` defaulting to ``~/.paddlenlp``
(``paddlenlp.utils.env``). A name resolves to that folder; it then goes through the same checks and the
same pickle gate as any local ``model_dir`` (:mod:`app.tasks.nlp.checked_dir`).

A name not in the cache is fetched into it with PaddleNLP's own file download (``resolve_file_path``:
files only, nothing is unpickled), unless ``WARMSTART_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` is set in the
environment the command started with. Offline, or when the download fails: one line, exit 5, naming the
model and the folder where its files can be placed by hand.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from app.errors import TaskError

__all__ = ["looks_like_name", "model_home", "cache_folder", "is_offline", "resolve_name"]

log = logging.getLogger(__name__)

#: A name as PaddleNLP's model server and hubs spell them: one ``org/`` part at most, no path syntax.
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_TRUE = ("1", "true", "yes", "on")
#: The switches as the command found them: ``pretrained.offline()`` sets HF_HUB_OFFLINE later, in-process.
_STARTED_OFFLINE = {k: os.environ.get(k, "") for k in ("WARMSTART_OFFLINE", "HF_HUB_OFFLINE")}
#: What a fetch asks PaddleNLP's server for, group by group (the first name found in a group is enough).
_GROUPS = (
    ("config.json",),
    ("model.safetensors", "model_state.pdparams"),
    ("tokenizer_config.json",),
    ("vocab.txt", "sentencepiece.bpe.model", "spm.model", "vocab.json"),
    ("special_tokens_map.json",),
)


def looks_like_name(text: str) -> bool:
    """True for ``ernie-3.0-medium-zh`` / ``org/name``; False for anything with path syntax."""
    return bool(_NAME.match(text)) and ".." not in text.split("/")


def model_home() -> Path:
    """PaddleNLP's ``MODEL_HOME`` by its own rule, read now (paddlenlp computes it once, at import)."""
    home = os.environ.get("PPNLP_HOME") or os.path.join(os.path.expanduser("~"), ".paddlenlp")
    return Path(home) / "models"


def cache_folder(name: str) -> Path:
    return model_home() / name


def is_offline() -> bool:
    """True when the command started with ``WARMSTART_OFFLINE`` or ``HF_HUB_OFFLINE`` set true."""
    current = {k: os.environ.get(k, "") for k in _STARTED_OFFLINE}
    return any(v.lower() in _TRUE for v in (*_STARTED_OFFLINE.values(), current["WARMSTART_OFFLINE"]))


def _not_available(name: str, folder: Path, why: str) -> TaskError:
    return TaskError(
        f"model_dir {name!r} is neither a local folder nor in PaddleNLP's cache ({why})",
        hint=f"put the files save_pretrained writes (config.json, model.safetensors or model_state.pdparams, "
        f"tokenizer_config.json, vocab) into {folder}, or set task.options.model_dir to a folder",
    )


def _complete(folder: Path) -> bool:
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    return all(names.intersection(group) for group in _GROUPS[:4])


def _fetch(name: str, folder: Path) -> None:
    """Download the missing file groups with PaddleNLP's own ``resolve_file_path`` into its cache."""
    from paddlenlp.utils.download import resolve_file_path

    for group in _GROUPS:
        if any((folder / f).is_file() for f in group):
            continue
        try:
            found = resolve_file_path(name, list(group), cache_dir=str(model_home()))
        except Exception as exc:  # noqa: BLE001 - PaddleNLP raises many kinds; all mean "not fetched"
            if group == _GROUPS[-1]:
                continue  # optional
            raise _not_available(name, folder, f"download failed: {type(exc).__name__}") from None
        if found is None and group != _GROUPS[-1]:
            raise _not_available(name, folder, f"the server has none of {', '.join(group)}")


def resolve_name(name: str) -> Path:
    """The cache folder of the model ``name``, fetched first when missing and allowed."""
    folder = cache_folder(name)
    if _complete(folder):
        log.info("model_dir %s: PaddleNLP's cache %s", name, folder)
        return folder
    if is_offline():
        state = "incomplete" if folder.is_dir() else "not cached"
        raise _not_available(name, folder, f"{state}; WARMSTART_OFFLINE/HF_HUB_OFFLINE set, no download")
    log.info("model_dir %s: not in PaddleNLP's cache %s; downloading with PaddleNLP", name, folder)
    _fetch(name, folder)
    return folder
