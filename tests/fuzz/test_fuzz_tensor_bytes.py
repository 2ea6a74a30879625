"""Same tensors, same bytes: a checkpoint's sha256 must depend only on what it holds.

Generated groups of tensors (names, dtypes, shapes, values) are written several times with the writer
every save uses; every copy must be byte-identical, and reading it back must give the same arrays.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from app.checkpoint.tensorio import read_tensors, write_tensors
from tests.fuzz.harness import TALLY, budget, collect_mode, contract, run_call

_DTYPES = st.sampled_from(
    [np.float32, np.float16, np.float64, np.int64, np.int32, np.uint16, np.uint8, np.bool_]
)
_ARRAYS = _DTYPES.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))
_GROUPS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_.]{0,12}", fullmatch=True), _ARRAYS, min_size=1, max_size=6
)
_TARGET = "tensors: write_tensors"


@settings(max_examples=budget(15))
@given(tensors=_GROUPS)
def _same_bytes(tensors: dict[str, np.ndarray]) -> None:
    example = repr({k: (v.dtype.name, v.shape) for k, v in tensors.items()})
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-st-") as tmp:
        paths = [Path(tmp) / f"{i}.safetensors" for i in range(4)]
        for path in paths:
            ok, _ = run_call(_TARGET, lambda path=path: write_tensors(dict(tensors), path, "fuzz"), example)
            if not ok:
                return
        digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
        if len(digests) != 1:
            contract(_TARGET, f"same tensors gave {len(digests)} different files", example)
        ok, back = run_call("tensors: read_tensors", lambda: read_tensors(paths[0], "fuzz"), example)
        if ok and (sorted(back) != sorted(tensors) or not all(
            back[k].dtype == v.dtype and np.array_equal(back[k], v, equal_nan=True) for k, v in tensors.items()
        )):  # fmt: skip
            contract("tensors: read_tensors", "arrays read back differ from those written", example)


def test_fuzz_same_tensors_same_bytes() -> None:
    seen = TALLY.snapshot()
    _same_bytes()
    if collect_mode():
        assert not TALLY.new_since(seen), "\n".join(TALLY.new_since(seen))
