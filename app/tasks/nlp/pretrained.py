"""The PaddleNLP pretrained folder: find it (local, object store or a model name in PaddleNLP's cache),
check it, load model and tokenizer.

PaddleNLP is handed an absolute local folder that was checked to hold a config, weights and tokenizer
files, and hub access is switched off in the environment. A model *name* (``ernie-3.0-medium-zh``,
``org/name``) is looked up where PaddleNLP's own download puts it, ``<PPNLP_HOME>/models/<name>``
(:mod:`app.tasks.nlp.model_name`); nothing is downloaded here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from app.errors import StorageError, TaskError
from app.store.config import StoreConfig

__all__ = ["WEIGHT_FILES", "fetch_model_dir", "check_model_dir", "load_tokenizer", "load_model", "offline"]

log = logging.getLogger(__name__)

#: Weight files PaddleNLP's from_pretrained reads from a folder (one is enough).
WEIGHT_FILES = (
    "model_state.pdparams",
    "model.safetensors",
    "model_state.pdparams.index.json",
    "model.safetensors.index.json",
)
#: Tokenizer files: the config plus one vocabulary file.
TOKENIZER_CONFIG = "tokenizer_config.json"
VOCAB_FILES = ("vocab.txt", "sentencepiece.bpe.model", "spm.model", "vocab.json")


def offline() -> None:
    """Make sure no library falls back to a hub (PaddleNLP reads huggingface_hub's switches)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def fetch_model_dir(uri: str, cache_dir: Path, store_cfg: StoreConfig | None) -> Path:
    """Download every object under ``uri`` into ``cache_dir`` (files already there with the size kept)."""
    from app.store import open_store

    store = open_store(uri, store_cfg)
    objects = store.list("")
    if not objects:
        raise StorageError(f"model_dir {uri} holds no files", hint="check task.options.model_dir")
    cache_dir.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for obj in objects:
        local = cache_dir / obj.key
        if local.is_file() and local.stat().st_size == obj.size:
            continue
        local.parent.mkdir(parents=True, exist_ok=True)
        store.download_file(obj.key, local)
        fetched += 1
    log.info(
        "model_dir %s: %d file(s) fetched into %s (%d cached)",
        uri,
        fetched,
        cache_dir,
        len(objects) - fetched,
    )
    return cache_dir


def check_model_dir(path: Path, source: str) -> Path:
    """The absolute folder, or a TaskError naming what is missing."""
    if not path.is_dir():
        raise TaskError(
            f"model_dir {source!r} is not a folder",
            hint="point task.options.model_dir at a PaddleNLP save_pretrained folder",
        )
    names = {p.name for p in path.iterdir()}
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not names.intersection(WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES[:2]))
    if TOKENIZER_CONFIG not in names:
        missing.append(TOKENIZER_CONFIG)
    if not names.intersection(VOCAB_FILES):
        missing.append("a vocabulary (" + " / ".join(VOCAB_FILES) + ")")
    if missing:
        raise TaskError(
            f"model_dir {source!r} lacks {', '.join(missing)}",
            hint="save both the model and the tokenizer with save_pretrained into that folder",
        )
    return path.resolve()


def load_tokenizer(model_dir: Path) -> Any:
    offline()
    from paddlenlp.transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def load_model(model_dir: Path, kind: str, labels: list[str]) -> Any:
    """A fresh ``AutoModelFor{Sequence,Token}Classification`` with a ``len(labels)`` head.

    The backbone comes from the folder; a head of another size found there is re-initialised.
    """
    offline()
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    auto = AutoModelForSequenceClassification if kind == "seq" else AutoModelForTokenClassification
    return auto.from_pretrained(
        str(model_dir),
        num_classes=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        ignore_mismatched_sizes=True,
        use_safetensors=True,  # never paddle.load (a pickle): the folder is a checked copy (checked_dir)
        convert_from_torch=False,
    )
