"""Recognition metrics computed the way PaddleOCR's ``RecMetric`` reports them (defaults
``ignore_space=True``, ``is_filter=False``):

* ``word_accuracy`` (PaddleOCR's ``acc``) = exact matches / (N + 1e-5);
* ``norm_edit_dis`` = 1 - sum of normalized Levenshtein distances / (N + 1e-5), where a pair's distance
  is ``edit_distance / max(len(pred), len(target))`` (0 when both are empty; rapidfuzz, as PaddleOCR).

Spaces are removed from both sides before comparing. ``is_filter`` additionally keeps only ASCII letters
and digits and lower-cases them.
"""

from __future__ import annotations

import string

from rapidfuzz.distance import Levenshtein

__all__ = ["EPS", "rec_metrics"]

EPS = 1e-5
_KEEP = set(string.digits + string.ascii_letters)


def _normalize(text: str, ignore_space: bool, is_filter: bool) -> str:
    if ignore_space:
        text = text.replace(" ", "")
    if is_filter:
        text = "".join(c for c in text if c in _KEEP).lower()
    return text


def rec_metrics(
    preds: list[str], targets: list[str], ignore_space: bool = True, is_filter: bool = False
) -> dict[str, float]:
    """``{"word_accuracy", "norm_edit_dis"}`` over aligned prediction / target lists."""
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    correct, distance = 0, 0.0
    for pred, target in zip(preds, targets, strict=False):
        pred, target = _normalize(pred, ignore_space, is_filter), _normalize(target, ignore_space, is_filter)
        distance += Levenshtein.normalized_distance(pred, target)
        correct += pred == target
    n = len(preds)
    return {"word_accuracy": correct / (n + EPS), "norm_edit_dis": 1 - distance / (n + EPS)}
