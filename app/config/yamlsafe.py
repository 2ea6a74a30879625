"""Parse untrusted YAML text (a config file, a ``--set`` or ``WARMSTART_*`` value) into plain data, safely.

On top of PyYAML's ``SafeLoader`` (no Python objects are ever built):

- a duplicate key in a mapping is an error naming the key and both lines (PyYAML keeps the last one);
- nesting deeper than :data:`MAX_DEPTH` is refused before anything recursive runs (no ``RecursionError``);
- anchors and aliases work, but the expanded document may hold at most :data:`MAX_NODES` nodes, and an
  alias inside its own anchor is refused ("billion laughs" and recursive structures);
- the text may be at most :data:`MAX_BYTES` long;
- every failure, including PyYAML's own (and ``ValueError`` from a 5000-digit integer), is one
  :class:`~app.errors.ConfigError` naming the source and the line.
"""

from __future__ import annotations

import math
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    NodeEvent,
    ScalarEvent,
)
from yaml.nodes import MappingNode

from app.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_NODES", "MAX_BYTES", "YamlSyntaxError", "parse_yaml", "check_depth"]

#: Deepest nesting of mappings/lists accepted anywhere in a config (ours is about 5 deep).
MAX_DEPTH = 32
#: Most nodes (scalars, mappings, lists) in a document after alias expansion.
MAX_NODES = 100_000
#: Largest config text accepted, in bytes.
MAX_BYTES = 1024 * 1024


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "an unknown line"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (the mapping's keys are compared after construction)."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                ) from None
            if first is not None:
                raise ConfigError(
                    f"duplicate key {key!r} at {_line(key_node.start_mark)} "
                    f"(first at {_line(first)}); remove one of them"
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _plain_string(loader: _StrictLoader, node: Any) -> str:
    """A date such as 2024-01-01 (or a bare "=") stays the text it is: config values are plain JSON data."""
    return loader.construct_scalar(node)


def _unsupported(loader: _StrictLoader, node: Any) -> Any:
    raise ConfigError(
        f"YAML tag {node.tag!r} at {_line(node.start_mark)} is not supported in a config "
        "(use strings, numbers, booleans, null, lists and mappings)"
    )


_StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", _plain_string)
_StrictLoader.add_constructor("tag:yaml.org,2002:value", _plain_string)  # a bare "=" (YAML 1.1)
for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _unsupported)


class YamlSyntaxError(ConfigError):
    """The text is not valid YAML (as opposed to valid YAML that breaks a limit)."""


def _too_big(source: str, what: str, event: Any) -> ConfigError:
    return ConfigError(f"{source}: {what} at {_line(getattr(event, 'start_mark', None))}")


def _check_events(text: str, source: str) -> None:
    """Walk the event stream (iteratively) and enforce the depth and expanded-size limits."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, height)
    stack: list[list[Any]] = []  # open collections: [anchor, nodes so far, height]
    total = 0

    def add(event: Any, nodes: int, height: int) -> None:
        nonlocal total
        if len(stack) + height > MAX_DEPTH:
            raise _too_big(source, f"nesting deeper than {MAX_DEPTH} levels", event)
        if stack:
            stack[-1][1] += nodes
            stack[-1][2] = max(stack[-1][2], height + 1)
            nodes = stack[-1][1]
        else:
            total += nodes
            nodes = total
        if nodes > MAX_NODES:
            raise _too_big(source, f"more than {MAX_NODES} values once aliases are expanded", event)

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, AliasEvent):
            if event.anchor not in anchors:
                raise YamlSyntaxError(
                    f"{source}: alias *{event.anchor} at {_line(event.start_mark)} refers to an unknown "
                    "anchor or to one it is inside of"
                )
            add(event, *anchors[event.anchor])
        elif isinstance(event, ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = (1, 0)
            add(event, 1, 0)
        elif isinstance(event, CollectionStartEvent):
            if len(stack) >= MAX_DEPTH:
                raise _too_big(source, f"nesting deeper than {MAX_DEPTH} levels", event)
            stack.append([event.anchor, 1, 0])
        elif isinstance(event, CollectionEndEvent):
            anchor, nodes, height = stack.pop()
            if anchor:
                anchors[anchor] = (nodes, height)
            add(event, nodes, height)
        elif isinstance(event, NodeEvent):  # pragma: no cover - every node event is handled above
            raise _too_big(source, f"unexpected YAML event {type(event).__name__}", event)


def parse_yaml(text: str, source: str) -> Any:
    """Plain data from YAML ``text``; ``source`` (e.g. ``config file 'a.yaml'``) prefixes every error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ConfigError(f"{source}: larger than {MAX_BYTES // 1024} KiB; a config is a few KiB of YAML")
    try:
        _check_events(text, source)
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except ConfigError as exc:
        if exc.message.startswith(source):
            raise
        raise ConfigError(f"{source}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise YamlSyntaxError(f"{source}: {problem}{where}") from None
    except (ValueError, OverflowError, IndexError, TypeError, KeyError) as exc:
        # PyYAML's constructors on odd scalars: a 5000-digit integer, an empty "!!float ''", ...
        raise YamlSyntaxError(
            f"{source}: a value cannot be read ({type(exc).__name__}: {str(exc)[:100]})"
        ) from None
    except RecursionError:  # pragma: no cover - the depth check runs first; a last line of defence
        raise ConfigError(f"{source}: nesting too deep") from None


def check_depth(data: Any, where: str) -> None:
    """Refuse plain data nested deeper than :data:`MAX_DEPTH` (iteratively: deep input cannot recurse),
    and a NaN or infinite number anywhere (also in free-form sections such as ``task.options``)."""
    pending: list[tuple[Any, int, str]] = [(data, 0, "")]
    seen = 0
    while pending:
        node, depth, path = pending.pop()
        seen += 1
        if seen > MAX_NODES:
            raise ConfigError(f"{where}: more than {MAX_NODES} values")
        if isinstance(node, float) and not math.isfinite(node):
            raise ConfigError(f"{path or where}: must be a finite number, got {node!r}")
        if isinstance(node, dict | list):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{where}: nesting deeper than {MAX_DEPTH} levels")
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                sub = f"{path}[{key}]" if isinstance(node, list) else (f"{path}.{key}" if path else str(key))
                pending.append((child, depth + 1, sub))
