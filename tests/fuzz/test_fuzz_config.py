"""Fuzz the config loader: YAML files, ``--set KEY=VALUE`` lists and WARMSTART_* environment values.

Every input goes through ``warmstart config --print`` in this process (what a user runs) and through
:func:`app.config.load_config` (what every command calls). Each either loads or ends with one
``warmstart: config: ...`` line and a documented exit code; a loaded config holds no NaN/inf and no
negative clip norm; a file with a duplicate key is refused (exit 2).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.config import load_config
from app.config.load import ENV_VARS
from app.config.typed import to_data
from app.errors import EXIT_USAGE
from tests.fuzz import known
from tests.fuzz.harness import TALLY, budget, collect_mode, contract, run_call, run_cli
from tests.fuzz.strategies import Raw, finite, json_values, mutated_document, nasty_names
from tests.train_helpers import ROOT

DEMO = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
DEFAULTS = to_data(load_config(None, [], env={}))


def _dotted(data: dict[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        out.append(prefix + key)
        if isinstance(value, dict):
            out += _dotted(value, f"{prefix}{key}.")
    return out


KEYS = _dotted(DEFAULTS)


def _deep_flow(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "[" else "{a: " * depth + "1" + "}" * depth


def _deep_block(depth: int) -> str:
    return "run:\n" + "".join("  " * i + "a:\n" for i in range(1, depth)) + "  " * depth + "a: 1\n"


#: YAML scalars and fragments that broke loaders: overflow, NaN, tags, aliases, deep nesting.
YAML_NASTY = [
    ".nan", ".inf", "-.inf", "1.0e+999", "1e999", "-1", "0", str(2**70), str(-(2**70)), "true", "null", "~",
    "''", "[]", "{}", "[1, 2]", "{a: 1}", "!!binary aGVsbG8=", "!!timestamp 2001-12-14", "!!set {a, b}",
    "!!python/object/apply:os.system [echo hi]", "&x [*x]", "&y {a: *y}", "*undefined", "!!float nan",
    "0x1F", "0o17", "1_000", "2001-12-14", "'\\x00'", '"\\0"', "\t", "@", "`", "%", "|\n  text", ">-",
    _deep_flow(500, "["), _deep_flow(500, "{"), _deep_flow(50, "["),
]  # fmt: skip
yaml_values = st.one_of(st.sampled_from(YAML_NASTY), st.text(max_size=30))


def _yaml_doc(doc: Any) -> str:
    """safe_dump with :class:`Raw` placeholders substituted by their text (flow YAML fragments)."""
    raws: list[str] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"RAW{len(raws) - 1}PLACEHOLDER"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    text = yaml.safe_dump(swap(doc), sort_keys=False, allow_unicode=True)
    for i, raw in enumerate(raws):
        text = text.replace(f"RAW{i}PLACEHOLDER", raw)
    return text


_yaml_raw = st.sampled_from(YAML_NASTY).map(Raw)


@st.composite
def duplicate_key_yaml(draw: st.DrawFn) -> str:
    """A config whose mapping repeats one key (top level or nested), with other keys in between."""
    section = draw(st.sampled_from(["run", "checkpoint", "schedule", "store", "init"]))
    fields = [k.split(".", 1)[1] for k in KEYS if k.startswith(section + ".") and k.count(".") == 1]
    key = draw(st.sampled_from(fields))
    first, second = draw(st.sampled_from(["/tmp/a", "1", "x"])), draw(st.sampled_from(["/tmp/b", "2", "y"]))
    if draw(st.booleans()):
        return f"{section}:\n  {key}: {first}\n  {fields[0]}: {DEFAULTS[section][fields[0]]!r}\n  {key}: {second}\n"
    return f"{section}:\n  {key}: {first}\ntask:\n  kind: digits\n{section}:\n  {key}: {second}\n"


yaml_files = st.one_of(
    mutated_document(DEMO).map(_yaml_doc).map(str.encode),
    mutated_document(DEFAULTS).map(_yaml_doc).map(str.encode),
    st.dictionaries(st.sampled_from(KEYS), st.one_of(json_values, _yaml_raw), max_size=6)
    .map(lambda d: "".join(f"{k}: {v.text if isinstance(v, Raw) else json.dumps(v)}\n" for k, v in d.items()))
    .map(str.encode),
    st.builds(
        lambda s, k, v: f"{s}:\n  {k}: {v}\n",
        st.sampled_from(list(DEFAULTS)),
        st.sampled_from(KEYS),
        yaml_values,
    ).map(str.encode),  # fmt: skip
    st.sampled_from([400, 1000]).map(_deep_block).map(str.encode),
    st.sampled_from(
        [
            b"a: &a [*a]\n",
            b"run: &r {name: *r}\n",
            b"run: {name: &n [*n]}\n",
            b"x: &l [1,1,1,1,1,1,1,1]\ny: &m [*l,*l,*l,*l,*l,*l,*l,*l]\nz: &n [*m,*m,*m,*m,*m,*m,*m,*m]\n"
            b"run: {notes: [*n,*n,*n,*n,*n,*n,*n,*n]}\n",
            b"1: 2\n",
            b"? [a]\n: 1\n",
            b"run: {1: 2}\n",
            b"run: !!set {name}\n",
            b"\xff\xfe\x00r",
            b"run:\n  name: \xff\xfe\n",
            b"\xef\xbb\xbfrun: {name: x}\n",
            b"run: {name: x}\x00\n",
            b"- 1\n- 2\n",
            b"just text",
            b"",
            b"---\n---\n",
            b"run: {name: !!python/name:os.system}\n",
        ]
    ),  # fmt: skip
    duplicate_key_yaml().map(str.encode),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)

set_items = st.lists(
    st.one_of(
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS), yaml_values),
        st.builds(lambda k, v: f"{k}={v}", st.one_of(nasty_names, st.text(max_size=12)), yaml_values),
        st.builds(lambda k, v: f"{k}={v}", st.sampled_from(KEYS).map(lambda k: k + ".x.y"), yaml_values),
        st.text(max_size=30),
    ),
    max_size=5,
)
env_values = st.dictionaries(st.sampled_from(sorted(ENV_VARS)), yaml_values.filter(lambda v: "\x00" not in v),
                             max_size=4)  # fmt: skip


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """os.environ without any WARMSTART_* variable, plus ``extra``; restored afterwards."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("WARMSTART_")]:
        del os.environ[name]
    os.environ.update(extra)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _check_loaded(target: str, cfg: Any, example: str) -> None:
    data = to_data(cfg)
    data["task"].pop("options", None)  # free-form: each task validates its own options when it is built
    if not finite(data):
        bad = [k for k in KEYS if not isinstance(_get(data, k), dict) and not finite(_get(data, k))]
        contract(target, f"{', '.join(bad[:4]) or 'a field'} accepted NaN/inf", example)
    clip = data["optim"].get("grad_clip_norm")
    if isinstance(clip, int | float) and clip < 0:
        contract(target, f"negative optim.grad_clip_norm accepted: {clip}", example)


def _get(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _one(target: str, text: bytes | None, sets: list[str], env: dict[str, str]) -> int | None:
    example = json.dumps({"yaml": (text or b"")[:300].decode("utf-8", "replace"), "set": sets, "env": env})
    with tempfile.TemporaryDirectory(prefix="ws-fuzz-cfg-") as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(text if text is not None else DEMO_BYTES)
        with _environ(env):
            rc, _, _ = run_cli(f"{target}:cli", ["config", "--print", "--config", str(path),
                                                *[f"--set={s}" for s in sets]], example)  # fmt: skip
        ok, cfg = run_call(f"{target}:load_config", lambda: load_config(path, sets, env=env), example)
        if ok:
            _check_loaded(f"{target}:load_config", cfg, example)
    return rc


DEMO_BYTES = (ROOT / "configs" / "demo.yaml").read_bytes()


def _examples(name: str, items: list[Any], **fixed: Any) -> Any:
    """Decorate with one ``@example(name=item, **fixed)`` per known input."""

    def wrap(fn: Any) -> Any:
        for item in reversed(items):
            fn = example(**{name: item}, **fixed)(fn)
        return fn

    return wrap


def _assert_clean(prefix: str) -> None:
    if collect_mode():
        found = TALLY.failures_of(prefix)
        assert not found, "\n".join(found)


def test_fuzz_yaml_file() -> None:
    @settings(max_examples=budget(30))
    @given(text=yaml_files)
    @_examples("text", known.YAML)
    def run(text: bytes) -> None:
        _one("config.yaml", text, [], {})

    run()
    _assert_clean("config.yaml")


def test_fuzz_set_overrides() -> None:
    @settings(max_examples=budget(40))
    @given(sets=set_items)
    @_examples("sets", known.SETS)
    def run(sets: list[str]) -> None:
        _one("config.set", None, sets, {})

    run()
    _assert_clean("config.set")


def test_fuzz_env_values() -> None:
    @settings(max_examples=budget(40))
    @given(env=env_values, sets=set_items)
    @_examples("env", known.ENVS, sets=[])
    def run(env: dict[str, str], sets: list[str]) -> None:
        _one("config.env", None, sets[:1], env)

    run()
    _assert_clean("config.env")


def test_fuzz_duplicate_keys_are_refused() -> None:
    @settings(max_examples=budget(20))
    @given(text=duplicate_key_yaml())
    @_examples("text", known.DUPLICATES)
    def run(text: str) -> None:
        rc = _one("config.duplicate", text.encode(), [], {})
        if rc is not None and rc != EXIT_USAGE:
            contract("config.duplicate:cli", f"duplicate key accepted (exit {rc})", text)

    run()
    _assert_clean("config.duplicate")
