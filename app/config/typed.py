"""Turn plain YAML data into typed dataclasses, naming the field and value on every error.

Supports nested dataclasses, ``X | None``, ``Literal[...]``, ``list[X]``, ``dict[str, X]`` and the scalar
types. Unknown keys are errors with a "did you mean" suggestion. Each dataclass may define
``validate(self, path)`` for cross-field rules; it is called after its fields are converted.

Numbers: a float must be finite, an int must fit in 64 bits, a bool is never a number; a field's allowed
range is declared next to it with :func:`limits` (``field(default=0.1, metadata=limits(gt=0))``) and
checked here, for every element of a list field too, so each error names the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from app.config.paths import resolve_output_dir
from app.errors import ConfigError

__all__ = [
    "from_data",
    "to_data",
    "suggest",
    "field_names",
    "Range",
    "limits",
    "field_range",
    "output_folder",
    "worker_count",
]

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
#: Every int is stored as int64 somewhere (numpy, Paddle, JSON readers): larger ones are input errors.
INT_MAX = 2**63 - 1


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric field: any of ``ge`` (>=), ``gt`` (>), ``le`` (<=), ``lt`` (<)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def text(self) -> str:
        low, high = _first(self.ge, self.gt), _first(self.le, self.lt)
        if low is not None and high is not None:
            left = "[" if self.ge is not None else "("
            right = "]" if self.le is not None else ")"
            return f"within {left}{_num(low)}, {_num(high)}{right}"
        parts = [
            f"{op} {_num(bound)}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts)

    def check(self, value: Any, path: str) -> None:
        if isinstance(value, list):
            for i, item in enumerate(value):
                self.check(item, f"{path}[{i}]")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            return  # None, "auto", ...: not a number, nothing to bound
        ok = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )
        if not ok:
            raise ConfigError(f"{path}: must be {self.text()}, got {_describe(value)}")


def _first(a: float | None, b: float | None) -> float | None:
    return a if a is not None else b


def _num(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e15 else repr(bound)


def limits(
    *, ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None
) -> dict[str, Range]:
    """Field metadata declaring a numeric range, e.g. ``field(default=0.9, metadata=limits(ge=0, lt=1))``."""
    return {"range": Range(ge=ge, gt=gt, le=le, lt=lt)}


def field_range(f: dataclasses.Field) -> Range | None:
    return f.metadata.get("range")


def output_folder() -> dict[str, bool]:
    """Field metadata for a local folder we write to: it must pass the rule of :mod:`app.config.paths`."""
    return {"output_folder": True}


def suggest(name: str, choices: typing.Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def worker_count(value: Any, where: str) -> int:
    """A toolkit config's loader-worker count (PaddleOCR ``num_workers``, ppdet ``worker_num``), which
    becomes ``train.data_workers``: a whole number >= 0, else a ConfigError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"{where}: expected a whole number >= 0 (0 = batches made in the trainer), got {value!r}"
        )
    return value


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _describe(value: Any) -> str:
    if isinstance(value, int) and value.bit_length() > 200:  # repr of a 5000-digit int raises ValueError
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str, hooks: bool = True) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors: list[ConfigError] = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(value, option, path, hooks)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise ConfigError(f"{path}: expected {names}, got {_describe(value)}")
    if origin is Literal:
        allowed = get_args(tp)
        if isinstance(value, bool) and ("on" if value else "off") in allowed:
            value = "on" if value else "off"  # YAML 1.1 reads a bare on/off as a boolean
        if value not in allowed:
            hint = suggest(str(value), [str(a) for a in allowed])
            raise ConfigError(
                f"{path}: {_describe(value)} is not one of {', '.join(map(repr, allowed))}{hint}"
            )
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {_describe(value)}")
        (item_tp,) = get_args(tp)
        return [_convert(v, item_tp, f"{path}[{i}]", hooks) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {_describe(value)}")
        _, val_tp = get_args(tp)
        return {str(k): _convert(v, val_tp, f"{path}.{k}", hooks) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_data(tp, value, path, hooks=hooks)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {_describe(value)}")
    if tp is int:
        return _to_int(value, path)
    if tp is float:
        return _to_float(value, path)
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected a string, got {_describe(value)}")
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug in a schema, not user input


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{path}: expected an integer, got {_describe(value)}")
    if abs(value) > INT_MAX:
        raise ConfigError(f"{path}: integer out of range (at most {INT_MAX} in size), got {_describe(value)}")
    return value


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # PyYAML (YAML 1.1) leaves "1e-5" (no dot) as a string
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ConfigError(f"{path}: expected a number, got {_describe(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{path}: must be a finite number, got {_describe(value)}")
    return number


def from_data(cls: type, data: Any, path: str = "", *, hooks: bool = True) -> Any:
    """Build dataclass ``cls`` from ``data`` (a mapping), validating types, ranges and unknown keys.

    ``hooks=False`` skips the classes' ``validate`` methods (cross-field and "required" rules): used to
    check a section's types and ranges early, before it is complete.
    """
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_describe(data)}")
    hints = typing.get_type_hints(cls)
    # A field may be spelled differently in YAML (``init.from`` is the field ``from_``).
    known = {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(
                f"{path + '.' if path else ''}{_describe(key)}: keys must be strings, got a {type(key).__name__}"
            )
        if key not in known:
            raise ConfigError(
                f"{path + '.' if path else ''}{key}: unknown key{suggest(str(key), known)}"
                f" (known keys: {', '.join(sorted(known))})"
            )
    kwargs = {}
    for name, f in known.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[f.name] = _convert(data[name], hints[f.name], sub, hooks)
            bounds = field_range(f)
            if bounds is not None:
                bounds.check(kwargs[f.name], sub)
            if f.metadata.get("output_folder") and isinstance(kwargs[f.name], str):
                resolve_output_dir(sub, kwargs[f.name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{sub}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None) if hooks else None
    if callable(validate):
        validate(path)
    return obj


def to_data(obj: Any) -> Any:
    """The plain-data (YAML/JSON-ready) form of a config dataclass tree."""
    if dataclasses.is_dataclass(obj):
        return {f.metadata.get("key", f.name): to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list):
        return [to_data(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_data(v) for k, v in obj.items()}
    return obj
