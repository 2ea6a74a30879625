"""Access to what the ``paddleocr`` wheel ships: its ``ppocr`` data ops, CTC decoder, dictionaries and the
``tools/infer`` text-recognition predictor.

The wheel installs them as top-level packages (``ppocr``, ``tools``) inside ``site-packages/paddleocr``;
importing ``paddleocr`` itself would load the whole OCR system, so we put that folder on ``sys.path``
and import only the modules we need. ``app`` is imported first, which imports ``zlib`` before paddle
(FIELD_NOTES: pyclipper, pulled in by ``ppocr.postprocess``, crashes otherwise).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import app  # noqa: F401  (zlib before paddle)
from app.errors import ConfigError, TaskError

__all__ = ["wheel_dir", "ppocr_module", "builtin_dict_path", "ctc_decoder", "ctc_encoder"]


@cache
def wheel_dir() -> Path:
    """``site-packages/paddleocr``, added to ``sys.path`` so ``ppocr`` and ``tools`` import."""
    spec = importlib.util.find_spec("paddleocr")
    if spec is None or not spec.submodule_search_locations:
        raise TaskError("the paddleocr wheel is not installed", hint="install requirements/tasks.txt")
    root = Path(list(spec.submodule_search_locations)[0])
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return root


def ppocr_module(name: str) -> ModuleType:
    """Import a module of the wheel, e.g. ``ppocr.data.imaug`` or ``tools.infer.predict_rec``."""
    wheel_dir()
    return importlib.import_module(name)


def builtin_dict_path(name: str) -> Path:
    """A dictionary shipped under the wheel's ``ppocr/utils`` (e.g. ``en_dict.txt``)."""
    base = (wheel_dir() / "ppocr" / "utils").resolve()
    path = (base / name).resolve()
    if base not in path.parents or path.suffix != ".txt" or not path.is_file():
        known = sorted(p.name for p in base.glob("*.txt"))
        raise ConfigError(
            f"task.options.builtin_dict: {name!r} is not a dictionary in the paddleocr wheel",
            hint=f"e.g. {', '.join(known)} or dict/<language>_dict.txt",
        )
    return path


def ctc_encoder(dict_path: Path, max_text_length: int, use_space_char: bool):
    """The wheel's ``CTCLabelEncode`` (index 0 is the CTC blank)."""
    ops = ppocr_module("ppocr.data.imaug.label_ops")
    return ops.CTCLabelEncode(
        max_text_length=max_text_length, character_dict_path=str(dict_path), use_space_char=use_space_char
    )


def ctc_decoder(dict_path: Path, use_space_char: bool):
    """The wheel's ``CTCLabelDecode``, the same post-processing its predictor uses."""
    post = ppocr_module("ppocr.postprocess.rec_postprocess")
    return post.CTCLabelDecode(character_dict_path=str(dict_path), use_space_char=use_space_char)
