"""A deterministic synthetic text-line set rendered with real fonts, in PaddleOCR's data layout.

Sample ``i`` of a split is a pure function of ``(seed, split, i)`` and the options: a random word from
``charset``, a font, a size, ink and paper greys and an offset, rendered with FreeType (Pillow) onto a
48-px-high line at most 320 px wide (so PP-OCR's predictor and our evaluation resize it identically).
Output: ``<data_dir>/images/<split>/NNNNNN.png``, ``<data_dir>/<split>.txt`` (``path<TAB>text``),
``<data_dir>/charset_dict.txt`` (the charset, one character per line) and ``<data_dir>/synth.json`` (the
options; a matching file means the set is already there).

Fonts are looked up in the Debian ``fonts-dejavu-core`` folder first, then in matplotlib's bundled
``mpl-data/fonts/ttf`` (always installed with the pinned matplotlib), so tests need no apt package.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import app  # noqa: F401  (zlib before paddle: PNG writing)
from app.errors import ConfigError
from app.tasks.ocr.options import SynthOptions

__all__ = ["FONT_DIRS", "find_font", "render_line", "write_synthetic", "ensure_synthetic"]

log = logging.getLogger(__name__)

LINE_HEIGHT = 48
MAX_WIDTH = 320


def _font_dirs() -> list[Path]:
    dirs = [Path("/usr/share/fonts/truetype/dejavu")]
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except ImportError:  # pragma: no cover - matplotlib is pinned
        pass
    return dirs


FONT_DIRS = _font_dirs()


def find_font(name: str) -> Path:
    """A font file by path, or by file name in :data:`FONT_DIRS` (first hit wins)."""
    direct = Path(name)
    if direct.is_file():
        return direct
    for folder in FONT_DIRS:
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(
        f"task.options.synthetic.fonts: font {name!r} not found",
        hint=f"give a path or a file name in {', '.join(map(str, FONT_DIRS))}",
    )


def _word(rng: np.random.Generator, opts: SynthOptions) -> str:
    n = int(rng.integers(opts.min_len, opts.max_len + 1))
    return "".join(opts.charset[int(k)] for k in rng.integers(0, len(opts.charset), n))


def render_line(text: str, font_path: Path, size: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB line image (uint8, 48 px high), shrinking the font until it fits 320 px."""
    while True:
        font = ImageFont.truetype(str(font_path), size)
        left, top, right, bottom = font.getbbox(text)
        margin = int(rng.integers(2, 9))
        width = right - left + 2 * margin
        if width <= MAX_WIDTH or size <= 8:
            break
        size -= 2
    paper = int(rng.integers(170, 256))
    ink = int(rng.integers(0, 90))
    image = Image.new("RGB", (min(max(width, LINE_HEIGHT // 2), MAX_WIDTH), LINE_HEIGHT), (paper,) * 3)
    slack = max(0, LINE_HEIGHT - (bottom - top))
    dy = int(rng.integers(0, slack + 1)) - top
    ImageDraw.Draw(image).text((margin - left, dy), text, font=font, fill=(ink,) * 3)
    return np.asarray(image)


def _sample(opts: SynthOptions, fonts: list[Path], split: int, index: int) -> tuple[str, np.ndarray]:
    rng = np.random.default_rng([opts.seed, split, index])
    text = _word(rng, opts)
    font = fonts[int(rng.integers(0, len(fonts)))]
    size = int(rng.integers(opts.min_font_size, opts.max_font_size + 1))
    return text, render_line(text, font, size, rng)


def write_synthetic(data_dir: Path, opts: SynthOptions) -> dict[str, Path]:
    """Render the train and eval splits; returns ``{"train": label file, "eval": ..., "dict": ...}``."""
    fonts = [find_font(name) for name in opts.fonts]
    out: dict[str, Path] = {}
    for split_id, (split, count) in enumerate((("train", opts.n_train), ("eval", opts.n_eval))):
        folder = data_dir / "images" / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(count):
            text, image = _sample(opts, fonts, split_id, i)
            rel = f"images/{split}/{i:06d}.png"
            Image.fromarray(image).save(data_dir / rel)
            lines.append(f"{rel}\t{text}")
        out[split] = data_dir / f"{split}.txt"
        out[split].write_text("\n".join(lines) + "\n", encoding="utf-8")
    out["dict"] = data_dir / "charset_dict.txt"
    out["dict"].write_text("".join(f"{c}\n" for c in dict.fromkeys(opts.charset)), encoding="utf-8")
    return out


def ensure_synthetic(data_dir: Path, opts: SynthOptions) -> None:
    """Write the set unless ``synth.json`` says these exact options were already written there."""
    marker = data_dir / "synth.json"
    spec = json.dumps(asdict(opts), sort_keys=True)
    if marker.is_file() and marker.read_text(encoding="utf-8") == spec:
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("writing the synthetic OCR set (%d train, %d eval) to %s", opts.n_train, opts.n_eval, data_dir)
    write_synthetic(data_dir, opts)
    marker.write_text(spec, encoding="utf-8")
