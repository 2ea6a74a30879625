"""Model and optimizer state as named numpy arrays, and strict loading back into Paddle objects.

Optimizer accumulators are keyed in Paddle by the parameter's generated name (``linear_3.w_0_moment1_0``),
which depends on how many layers a process created before. We store them under the parameter's
structured name instead (``head.weight/moment1_0``), so files are readable and load into any process.
Loading never goes through ``set_state_dict``'s warn-and-skip path for the model: keys and shapes are
checked first and every mismatch is reported.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
import paddle
from paddle.base.data_feeder import convert_dtype

from app.checkpoint.tensorio import host_array
from app.errors import CheckpointError

__all__ = [
    "LoadReport",
    "model_arrays",
    "model_tensors",
    "optimizer_arrays",
    "optimizer_tensors",
    "compare",
    "ignored_names",
    "assign",
    "load_optimizer",
]

_SEP = "/"


def model_tensors(model: paddle.nn.Layer) -> dict[str, paddle.Tensor]:
    """Every parameter and buffer by structured name (the live tensors, not copies)."""
    return dict(model.state_dict().items())


def optimizer_tensors(
    optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer
) -> dict[str, paddle.Tensor]:
    """Accumulators as ``<structured param name>/<accumulator>`` (e.g. ``head.weight/moment1``), live."""
    struct = {p.name: n for n, p in model.named_parameters()}
    out: dict[str, paddle.Tensor] = {}
    for acc, per_param in optimizer._accumulators.items():
        for generated, tensor in per_param.items():
            out[f"{struct.get(generated, generated)}{_SEP}{acc}"] = tensor
    return out


def model_arrays(model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """A host copy of every parameter and buffer, by structured name."""
    return {name: host_array(t) for name, t in model_tensors(model).items()}


def optimizer_arrays(optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer) -> dict[str, np.ndarray]:
    """Host copies of the accumulators, named as in :func:`optimizer_tensors`."""
    return {name: host_array(t) for name, t in optimizer_tensors(optimizer, model).items()}


def _create_accumulators(optimizer: paddle.optimizer.Optimizer, params: list[paddle.Tensor]) -> None:
    """Make the optimizer create its accumulators now, as its first ``step()`` would.

    Paddle names accumulators with a process-wide counter and only fills them from ``set_state_dict`` when
    names match, so we create them ourselves and assign values by (parameter, accumulator kind).
    """
    from paddle.base import framework
    from paddle.base.layer_helper import LayerHelper

    if getattr(optimizer, "helper", None) is None:
        optimizer.helper = LayerHelper(optimizer.__class__.__name__)
    optimizer._create_accumulators(framework.default_main_program().global_block(), params)


def load_optimizer(
    optimizer: paddle.optimizer.Optimizer, model: paddle.nn.Layer, arrays: dict[str, np.ndarray], source: str
) -> None:
    """Restore optimizer accumulators, refusing any entry this model and optimizer would not have."""
    by_struct = dict(model.named_parameters())
    wanted: dict[str, dict[str, np.ndarray]] = {}
    unknown = []
    for key, value in arrays.items():
        structured, _, acc = key.rpartition(_SEP)
        if structured not in by_struct:
            unknown.append(structured or key)
        else:
            wanted.setdefault(structured, {})[acc] = value
    if unknown:
        raise CheckpointError(
            f"optimizer state in {source} belongs to parameters this model does not have: "
            f"{', '.join(sorted(set(unknown))[:5])}",
            hint="resume needs the same architecture; use init.mode=partial for a changed model",
        )
    _create_accumulators(optimizer, [by_struct[n] for n in wanted])
    for structured, accs in wanted.items():
        param = by_struct[structured]
        for acc, value in accs.items():
            target = optimizer._accumulators.get(acc, {}).get(param.name)
            if target is None or tuple(target.shape) != value.shape:
                raise CheckpointError(
                    f"optimizer state {structured}{_SEP}{acc} in {source} does not fit this optimizer "
                    f"({type(optimizer).__name__})",
                    hint="resume with the same optim.name as the run that saved it",
                )
            target.set_value(value)


@dataclass
class LoadReport:
    """What a warm start did with each parameter name."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # matched an ignore pattern
    #: Class layers not loaded because the label space changed (names and shapes matched).
    label_skipped: list[str] = field(default_factory=list)
    #: Why: ``label space differs (...)`` (app.checkpoint.labels.describe_change); "" when nothing was.
    label_reason: str = ""
    #: model name -> source name, where init.key_map / init.match paired different names.
    sources: dict[str, str] = field(default_factory=dict)
    loaded_numel: int = 0
    total_numel: int = 0
    ignored_numel: int = 0

    @property
    def loaded_fraction(self) -> float:
        """Loaded elements over the model's elements that were meant to load (ignored ones excluded)."""
        expected = self.total_numel - self.ignored_numel
        return self.loaded_numel / expected if expected else 0.0

    @property
    def clean(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.ignored or self.label_skipped)

    def problems(self, limit: int = 5) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing from checkpoint: {', '.join(self.missing[:limit])}")
        if self.unexpected:
            parts.append(f"not in model: {', '.join(self.unexpected[:limit])}")
        if self.mismatched:
            shown = [f"{n} {list(c)} vs model {list(m)}" for n, c, m in self.mismatched[:limit]]
            parts.append(f"shape mismatch: {', '.join(shown)}")
        if self.label_skipped:
            parts.append(f"{self.label_reason}: {', '.join(self.label_skipped[:limit])}")
        return "; ".join(parts)

    def mapped(self) -> list[tuple[str, str]]:
        """(source name, model name) of every loaded tensor whose names differ."""
        return [(self.sources[n], n) for n in self.loaded if n in self.sources]

    def lines(self) -> list[str]:
        out = [
            f"loaded {len(self.loaded)} tensors ({self.loaded_fraction:.1%} of the model elements "
            f"not ignored; {self.loaded_numel / max(self.total_numel, 1):.1%} of all)",
        ]
        mapped = self.mapped()
        if mapped:
            out.append(f"{len(mapped)} loaded under another name (source -> model):")
            out += [f"  {src} -> {model}" for src, model in mapped]
        for label, names in (("skipped (ignore)", self.ignored), ("missing", self.missing)):
            if names:
                out.append(f"{label}: {', '.join(names)}")
        if self.unexpected:
            out.append(f"unexpected (unused): {', '.join(self.unexpected)}")
        for name, ckpt, model in self.mismatched:
            src = f" (source {self.sources[name]})" if name in self.sources else ""
            out.append(
                f"shape mismatch (skipped): {name}{src} checkpoint {list(ckpt)} vs model {list(model)}"
            )
        if self.label_skipped:
            out.append(f"{self.label_reason}, skipped: {', '.join(self.label_skipped)}")
        elif self.label_reason:
            out.append(f"{self.label_reason}; no class layer left to skip (ignored or shape-mismatched)")
        return out

    def as_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "mismatched": [[n, list(c), list(m)] for n, c, m in self.mismatched],
            "ignored": self.ignored,
            "label_skipped": self.label_skipped,
            "label_reason": self.label_reason,
            "mapped": [list(pair) for pair in self.mapped()],
            "loaded_fraction": round(self.loaded_fraction, 6),
        }


def ignored_names(model: paddle.nn.Layer, ignore: list[str]) -> set[str]:
    """Model names matching an ``init.ignore`` glob."""
    return {n for n in model.state_dict() if any(fnmatch.fnmatchcase(n, p) for p in ignore)}


def compare(
    model: paddle.nn.Layer,
    arrays: dict[str, np.ndarray],
    ignore: list[str] = (),
    pairs: dict[str, str] | None = None,
    relabel: tuple[str, tuple[str, ...]] | None = None,
) -> LoadReport:
    """Sort every name into loaded / missing / unexpected / mismatched / ignored / label_skipped (nothing
    is assigned).

    ``pairs`` (model name -> source name, from :mod:`app.checkpoint.keymap`) says which source tensor
    each model name takes; without it, the one of the same name. ``relabel`` = (reason, class-layer
    globs): names matching a glob that would load are skipped for that reason instead.
    """
    report = LoadReport()
    own = model.state_dict()
    if pairs is None:
        pairs = {n: n for n in own if n in arrays}
    report.sources = {m: s for m, s in pairs.items() if m != s}
    report.label_reason = relabel[0] if relabel is not None else ""
    for name, tensor in own.items():
        numel = int(np.prod(tensor.shape)) if tensor.shape else 1
        report.total_numel += numel
        source = pairs.get(name)
        if any(fnmatch.fnmatchcase(name, pat) for pat in ignore):
            report.ignored.append(name)
            report.ignored_numel += numel
        elif source is None:
            report.missing.append(name)
        elif tuple(arrays[source].shape) != tuple(tensor.shape):
            report.mismatched.append((name, tuple(arrays[source].shape), tuple(tensor.shape)))
        elif relabel is not None and any(fnmatch.fnmatchcase(name, pat) for pat in relabel[1]):
            report.label_skipped.append(name)
        else:
            report.loaded.append(name)
            report.loaded_numel += numel
    taken = set(pairs.values())
    report.unexpected = sorted(
        n for n in arrays if n not in taken and not any(fnmatch.fnmatchcase(n, p) for p in ignore)
    )
    return report


def assign(
    model: paddle.nn.Layer,
    arrays: dict[str, np.ndarray],
    names: list[str],
    sources: dict[str, str] | None = None,
) -> None:
    """Copy each source tensor into the model name it was paired with (already checked by :func:`compare`)."""
    own = model.state_dict()
    sources = sources or {}
    for name in names:
        target = own[name]
        value = arrays[sources.get(name, name)]
        want = np.dtype(convert_dtype(target.dtype))
        target.set_value(value if value.dtype == want else value.astype(want))
