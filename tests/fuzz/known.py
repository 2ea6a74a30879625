"""Inputs the audit of issue #13 reported (and close relatives), pinned as explicit examples.

Hypothesis runs these first in every profile, so ``make test`` always tries each reported class even
though its generated examples are few. Store inputs are :class:`~tests.fuzz.strategies.Edit` recipes
applied to the real file of the fixture checkpoint; config inputs are YAML text, ``--set`` lists and
environment values.
"""

from __future__ import annotations

from tests.fuzz.strategies import Raw, deep_json_text, edit

__all__ = ["UNCHANGED", "STORE", "YAML", "SETS", "ENVS", "DUPLICATES"]

_DEEP = Raw(deep_json_text(1000))
_DEEP_OBJ = Raw(deep_json_text(1000, "{"))

#: The valid file unchanged: every reader must succeed on it (guards the harness against false alarms).
UNCHANGED = edit()

#: file kind -> examples (an Edit of the valid file, or raw bytes).
STORE = {
    "manifest": [
        edit((("step",), Raw("1e999"))),
        edit((("version",), 2)),
        edit((("files", 0, "name"), "..\\..\\x")),
        edit((("files", 0, "size"), Raw("1e999"))),
        edit((("files", 0, "name"), {"a": 1})),
        edit((("files", 0, "name"), "a" * 300)),
        edit((("files", 0, "name"), "model\n.safetensors")),
        edit(((), _DEEP)),
        edit(((), [])),
        edit(((), "manifest")),
        b"{not json",
    ],
    "trainer_state": [
        edit(((), {})),
        edit((("step",), 2)),
        edit((("step",), "3")),
        edit((("rng",), "garbage")),
        edit((("rng", "numpy", "keys"), [1.5, "x"])),
        edit((("data",), None)),
        edit((("scheduler",), [1, 2])),
        edit(((), _DEEP)),
    ],
    "meta": [
        edit(((), _DEEP_OBJ)),
        edit((("metrics",), [1, 2])),
        edit((("metrics",), "accuracy")),
        edit((("code_version",), Raw("Infinity"))),
        edit(((), [])),
    ],
    "tag": [
        edit(((), _DEEP)),
        edit((("step",), Raw("1e999"))),
        edit((("step",), -1)),
        edit((("manifest_sha256",), {"a": 1})),
        edit(((), [])),
        b"\xff\xfe",
    ],
    "safetensors": [
        edit(((), Raw(deep_json_text(1000)))),
        edit(((), Raw(deep_json_text(1000, "{")))),
        edit((("*", "dtype"), "BF16"), (("*", "data_offsets"), [0, Raw("1e999")])),
        edit((("*", "dtype"), "BF16"), (("*", "shape"), [2**70])),
        edit((("*", "shape"), [-1])),
        edit((("__metadata__",), {"format": {"a": 1}})),
    ],
}

_DEEP_YAML_BLOCK = "run:\n" + "".join("  " * i + "a:\n" for i in range(1, 500)) + "  " * 500 + "a: 1\n"
YAML = [
    _DEEP_YAML_BLOCK.encode(),
    ("run:\n  name: " + "[" * 500 + "]" * 500 + "\n").encode(),
    b"schedule:\n  base_lr: .nan\n",
    b"schedule:\n  warmup:\n    start_lr: .nan\n",
    b"checkpoint:\n  every_minutes: .inf\n",
    b"optim:\n  grad_clip_norm: -1.0\n",
    b"run: &r {name: *r}\n",
    b"run:\n  seed: 1.0e+999\n",
]
SETS = [
    ["run.name=" + "[" * 500 + "]" * 500],
    ["schedule.base_lr=.nan"],
    ["schedule.base_lr=.inf"],
    ["optim.grad_clip_norm=-1"],
    ["run.seed=" + str(2**70)],
]
ENVS = [
    {"WARMSTART_RUN_NAME": "[" * 500 + "]" * 500},
    {"WARMSTART_BASE_LR": ".nan"},
    {"WARMSTART_GRACE_SECONDS": ".inf"},
    {"WARMSTART_TOTAL_STEPS": str(2**70)},
]
DUPLICATES = [
    "checkpoint:\n  uri: /tmp/a\n  uri: /tmp/b\n",
    "checkpoint:\n  uri: /tmp/a\nrun:\n  name: x\ncheckpoint:\n  keep_last: 2\n",
]
