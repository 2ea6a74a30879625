"""Say what becomes of every key of a ppdet config's ``TrainReader`` / ``EvalReader`` / ``TestReader``.

The detection task builds its transforms from the reader sections (``sample_transforms``,
``batch_transforms``, ``collate_batch``), the translator takes ``TrainReader.batch_size`` into
``train.batch_size``, and ppdet's exporter reads ``TestReader``. The loader keys (``shuffle``,
``drop_last``, ``use_shared_memory``, ...) are Warmstart's own business: a value that matches what
Warmstart does anyway is ignored quietly (docs/detection.md lists them); one that does not, and any key
not listed here, gets a WARNING naming it. A ``worker_num`` inside a reader is warned about too: ppdet
passes it on unused (its loaders take the top-level ``worker_num``, which the translator makes
``train.data_workers``). Nothing is dropped without a word.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["USED", "QUIET", "MECHANICS", "MISPLACED", "reader_key_warnings", "report_reader_keys"]

log = logging.getLogger(__name__)

WHERE = "task.options.ppdet_config"

#: Keys each reader section uses, and by whom.
USED = {
    "TrainReader": ("sample_transforms", "batch_transforms", "collate_batch", "batch_size"),
    "EvalReader": ("sample_transforms", "batch_transforms", "collate_batch", "batch_size"),
    # ppdet's exporter writes these into infer_cfg.yml; batch_size is the export's own
    "TestReader": ("inputs_def", "sample_transforms", "batch_transforms", "batch_size", "fuse_normalize"),
}
#: key -> (the value Warmstart behaves as, why): other values are warned about.
QUIET: dict[str, dict[str, tuple[Any, str]]] = {
    "TrainReader": {
        "shuffle": (True, "training order is a seeded permutation per epoch"),
        "drop_last": (True, "an epoch's tail shorter than one global batch is dropped"),
    },
    "EvalReader": {
        "shuffle": (False, "evaluation runs in file order"),
        "drop_last": (False, "evaluation uses every image"),
    },
    "TestReader": {},
}
#: Loader mechanics with no effect on what is trained: ignored whatever the value.
MECHANICS = {
    "use_shared_memory": "train.data_workers' processes choose their own transport",
    "num_classes": "ppdet sets it from the top-level num_classes",
}
#: Keys ppdet itself does not read in a reader section (its reader passes them on unused): warned about.
MISPLACED = {
    "worker_num": "ppdet reads only the top-level worker_num, which becomes train.data_workers",
}


def reader_key_warnings(name: str, section: Any) -> list[str]:
    """The keys of one reader section that Warmstart does not use as ppdet would, with the reason."""
    if not isinstance(section, dict):
        return []
    out = []
    for key, value in section.items():
        if key in USED[name] or key in MECHANICS or key == "name":
            continue
        if key in MISPLACED:
            out.append(f"{name}.{key} (not used: {MISPLACED[key]})")
            continue
        quiet = QUIET[name].get(key)
        if quiet is None:
            out.append(f"{name}.{key} (not used by warmstart)")
        elif value != quiet[0]:
            out.append(f"{name}.{key}: {value!r} (warmstart behaves as {quiet[0]!r}: {quiet[1]})")
    return out


def report_reader_keys(merged: dict[str, Any]) -> list[str]:
    """One WARNING naming every reader key Warmstart does not honour; returns them."""
    warnings = [w for name in USED for w in reader_key_warnings(name, merged.get(name))]
    if warnings:
        log.warning("%s: reader keys not used by warmstart: %s", WHERE, "; ".join(warnings))
    return warnings
