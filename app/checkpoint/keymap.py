"""Which source tensor goes into which model parameter: ``init.key_map`` rules, then ``init.match``.

A warm start's source names (a PaddleClas ImageNet file, another toolkit's checkpoint) often differ from
the model's. ``init.key_map`` rewrites the source names first, rule by rule in order (``add_prefix``,
``strip_prefix``, ``rename`` by regular expression); ``init.match`` then pairs each model name with at
most one source name:

- ``exact``: the same (rewritten) name.
- ``ppdet``: PaddleDetection's ``match_state_dict`` rule. A model name takes the longest source name
  ``b`` with ``model == b`` or ``model.endswith("." + b)``; a source name starting with ``backbone.res5``
  is compared without its ``backbone.`` (ppdet's Faster R-CNN case) but scored by its full length. A
  pair whose shapes differ is not loaded (and the source name does not fall back to a shorter one).
  ppdet refuses one source tensor loading into two parameters; so do we. Where ppdet silently takes the
  alphabetically first of two equally long candidates, we refuse too: both errors list the candidates.

Nothing is assigned here and nothing imports Paddle (the config loader validates the rules).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from app.errors import CheckpointError, ConfigError

__all__ = ["RenameRule", "KeyMapRule", "KeyMatch", "MatchMode", "map_names", "match_keys", "suggest_mapping"]

MatchMode = Literal["exact", "ppdet"]
_RES5 = "backbone.res5"
_GROUP_REF = re.compile(r"\\(\d+)|\\g<([^>]*)>")


@dataclass
class RenameRule:
    """Rewrite source names with a regular expression (Python ``re.sub``, every occurrence)."""

    #: Regular expression searched in each source name, e.g. "^blocks\.(\d+)\.".
    pattern: str = ""
    #: Replacement; "\1" or "\g<name>" insert a group, e.g. "stages.\1.".
    to: str = ""

    def validate(self, path: str) -> None:
        if not self.pattern:
            raise ConfigError(f"{path}.pattern: required (a regular expression)")
        try:
            compiled = re.compile(self.pattern)
        except re.error as exc:
            raise ConfigError(
                f"{path}.pattern: {self.pattern!r} is not a valid regular expression: {exc}"
            ) from None
        for number, name in _GROUP_REF.findall(self.to):
            if (number and int(number) > compiled.groups) or (name and name not in compiled.groupindex):
                raise ConfigError(
                    f"{path}.to: {self.to!r} refers to group {number or name!r}, which {self.pattern!r} "
                    f"does not have ({compiled.groups} group(s))"
                )


@dataclass
class KeyMapRule:
    """One rewrite of the source's tensor names; set exactly one of the three keys."""

    #: Put this in front of every source name, e.g. "backbone." for a PaddleClas ImageNet file.
    add_prefix: str | None = None
    #: Remove this from the front of the source names that start with it (others are left as they are).
    strip_prefix: str | None = None
    #: Rewrite names by regular expression: {pattern: REGEX, to: REPLACEMENT}.
    rename: RenameRule | None = None

    def validate(self, path: str) -> None:
        given = [k for k in ("add_prefix", "strip_prefix", "rename") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(
                f"{path}: set exactly one of add_prefix, strip_prefix, rename (got {', '.join(given) or 'none'})",
                hint="write one rule per list item, e.g. [{strip_prefix: model.}, {add_prefix: backbone.}]",
            )
        if self.add_prefix == "" or self.strip_prefix == "":
            raise ConfigError(f"{path}.{given[0]}: empty prefix")

    def apply(self, name: str) -> str:
        if self.add_prefix is not None:
            return self.add_prefix + name
        if self.strip_prefix is not None:
            return name[len(self.strip_prefix) :] if name.startswith(self.strip_prefix) else name
        assert self.rename is not None
        return re.sub(self.rename.pattern, self.rename.to, name)


def map_names(names: list[str], rules: list[KeyMapRule]) -> dict[str, str]:
    """Rewritten name -> source name. Two source names rewritten to one name is an error naming both."""
    out: dict[str, str] = {}
    for source in names:
        name = source
        for i, rule in enumerate(rules):
            name = rule.apply(name)
            if not name:
                raise CheckpointError(
                    f"init.key_map[{i}] turns the source name {source!r} into an empty name"
                )
        if name in out:
            raise CheckpointError(
                f"init.key_map maps both {out[name]!r} and {source!r} of the source to {name!r}",
                hint="make the rules more specific (e.g. anchor a rename pattern with ^)",
            )
        out[name] = source
    return out


@dataclass
class KeyMatch:
    """The pairing: model name -> source name (as in the file), and what it left over."""

    pairs: dict[str, str] = field(default_factory=dict)
    #: Source names no model name takes.
    unused: list[str] = field(default_factory=list)


def _effective(name: str) -> str:
    return name[len("backbone.") :] if name.startswith(_RES5) else name


def _suffixes(model_name: str) -> list[str]:
    """The name itself and every part after a dot: what a ppdet weight name may equal."""
    return [model_name] + [model_name[i + 1 :] for i, ch in enumerate(model_name) if ch == "."]


def _ppdet_best(model_name: str, index: dict[str, list[str]]) -> str | None:
    candidates = [b for s in _suffixes(model_name) for b in index.get(s, ())]
    if not candidates:
        return None
    longest = max(len(b) for b in candidates)
    best = sorted(b for b in candidates if len(b) == longest)
    if len(best) > 1:
        raise CheckpointError(
            f"init.match ppdet: model parameter {model_name!r} matches source names {best} equally well",
            hint="resolve it with init.key_map (e.g. a rename of one of them), or init.ignore the parameter",
        )
    return best[0]


def _ppdet_pairs(
    model_shapes: dict[str, tuple[int, ...]], mapped_shapes: dict[str, tuple[int, ...]], ignored: set[str]
) -> dict[str, str]:
    """model name -> rewritten source name under ppdet's rule (see the module docstring)."""
    index: dict[str, list[str]] = defaultdict(list)
    for name in mapped_shapes:
        index[_effective(name)].append(name)
    pairs: dict[str, str] = {}
    claims: dict[str, list[str]] = defaultdict(list)
    for model_name in sorted(model_shapes):
        if model_name in ignored:  # its source (if any) is not "unused", and it claims nothing
            found = [b for s in _suffixes(model_name) for b in index.get(s, ())]
            if found:
                pairs[model_name] = max(found, key=len)
            continue
        best = _ppdet_best(model_name, index)
        if best is None:
            continue
        pairs[model_name] = best
        if tuple(mapped_shapes[best]) == tuple(model_shapes[model_name]):
            claims[best].append(model_name)
    for source, models in claims.items():
        if len(models) > 1:
            raise CheckpointError(
                f"init.match ppdet: source tensor {source!r} is the best match of several model parameters "
                f"({', '.join(models[:5])}); ppdet refuses this too",
                hint="split it with init.key_map rules, or init.ignore the parameters it must not load",
            )
    return pairs


def match_keys(
    model_shapes: dict[str, tuple[int, ...]],
    source_shapes: dict[str, tuple[int, ...]],
    rules: list[KeyMapRule],
    mode: MatchMode,
    ignored: set[str] | frozenset[str] = frozenset(),
) -> KeyMatch:
    """Pair model names with source names: ``rules`` rewrite the source names, then ``mode`` matches.

    ``ignored`` model names (``init.ignore``) load nothing but still take their source tensor, so it is
    not reported as unused.
    """
    mapped = map_names(list(source_shapes), rules)
    mapped_shapes = {name: source_shapes[src] for name, src in mapped.items()}
    if mode == "ppdet":
        by_mapped = _ppdet_pairs(model_shapes, mapped_shapes, set(ignored))
    else:
        by_mapped = {m: m for m in model_shapes if m in mapped}
    pairs = {m: mapped[b] for m, b in by_mapped.items()}
    taken = set(pairs.values())
    return KeyMatch(pairs=pairs, unused=sorted(s for s in source_shapes if s not in taken))


def suggest_mapping(model_names: list[str], source_names: list[str]) -> str | None:
    """A rule that would pair more names, in YAML, when most source names are a model name's tail."""
    if not model_names or not source_names:
        return None
    tails: dict[str, list[str]] = defaultdict(list)  # dotted tail -> the prefixes it comes with
    for m in model_names:
        for i, ch in enumerate(m):
            if ch == ".":
                tails[m[i + 1 :]].append(m[: i + 1])
    prefixes: dict[str, int] = defaultdict(int)
    for s in source_names:
        for prefix in set(tails.get(s, ())):
            prefixes[prefix] += 1
    model_set = set(model_names)
    stripped: dict[str, int] = defaultdict(int)
    for s in source_names:
        for i, ch in enumerate(s):
            if ch == "." and s[i + 1 :] in model_set:
                stripped[s[: i + 1]] += 1
    hints = ["init.match: ppdet"] if prefixes else []
    if prefixes:
        best = max(prefixes, key=lambda p: (prefixes[p], -len(p)))
        hints.append(f"init.key_map: [{{add_prefix: {best}}}]")
    if stripped:
        best = max(stripped, key=lambda p: (stripped[p], -len(p)))
        hints.append(f"init.key_map: [{{strip_prefix: {best}}}]")
    return " or ".join(hints) if hints else None
