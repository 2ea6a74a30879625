"""The zlib-before-paddle guard: after `import app`, zlib, Pillow PNG and paddle coexist in one process."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import app  # must come first: it imports zlib before libpaddle
import io, zlib
import numpy as np
import paddle
from PIL import Image
data = bytes(range(256)) * 4096
assert zlib.decompress(zlib.compress(data, 9)) == data
buf = io.BytesIO()
Image.fromarray((np.arange(64 * 64) % 255).astype("uint8").reshape(64, 64)).save(buf, format="PNG")
buf.seek(0)
img = np.asarray(Image.open(buf))
assert img.shape == (64, 64) and int(img[1, 0]) == 64
print("ok", paddle.__version__)
"""


def test_app_import_guards_zlib_for_paddle_processes():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok 2.6.2"


def test_zlib_is_imported_by_the_package_itself():
    src = open(__import__("app").__file__).read()
    first_import = next(line for line in src.splitlines() if line.startswith("import "))
    assert first_import.startswith("import zlib")
