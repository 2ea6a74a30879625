"""Deployable artifacts of a trained NLP model: a PaddleNLP folder and a Paddle inference program.

``<out>/pretrained/`` loads back with ``AutoModelFor*Classification.from_pretrained`` (config with the
label names, ``model.safetensors``, tokenizer files) and can serve as another run's ``model_dir``.
``<out>/inference.pdmodel`` / ``.pdiparams`` take ``input_ids`` and ``token_type_ids`` (int64,
``[batch, seq_len]``, padded with the tokenizer's pad id) and return the logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import paddle

__all__ = ["export_all", "export_pretrained", "export_inference"]


def export_pretrained(model: paddle.nn.Layer, tokenizer: Any, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    return sorted(p for p in out_dir.iterdir() if p.is_file())


def export_inference(model: paddle.nn.Layer, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = [
        paddle.static.InputSpec(shape=[None, None], dtype="int64", name="input_ids"),
        paddle.static.InputSpec(shape=[None, None], dtype="int64", name="token_type_ids"),
    ]
    static = paddle.jit.to_static(model, input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(out_dir / "inference"), input_spec=spec)
    return [out_dir / "inference.pdmodel", out_dir / "inference.pdiparams"]


def export_all(model: paddle.nn.Layer, tokenizer: Any, out_dir: Path) -> list[Path]:
    """Both formats; the PaddleNLP folder first (``to_static`` converts the model's forward in place)."""
    return export_pretrained(model, tokenizer, out_dir / "pretrained") + export_inference(model, out_dir)
