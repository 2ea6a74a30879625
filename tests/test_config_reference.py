"""docs/config-reference.md is generated from the config dataclasses and must stay current."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from app.config.reference import render
from app.config.schema import Config

DOC = Path(__file__).resolve().parent.parent / "docs" / "config-reference.md"


def test_committed_reference_is_current():
    assert DOC.read_text() == render(), "run: python -m app.config.reference > docs/config-reference.md"


def test_every_top_level_section_and_key_is_documented():
    text = render()
    for f in dataclasses.fields(Config):
        assert f"## `{f.name}" in text
    assert "| `from` | str \\| null | `null` |" in text  # init.from under its YAML name
    assert "| `grace_seconds` | float | `25.0` |" in text
