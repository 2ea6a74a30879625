"""StoreConfig validation names the field and the limit."""

from __future__ import annotations

import pytest

from app.errors import ConfigError
from app.store.config import StoreConfig


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"part_size_mb": 4}, "store.part_size_mb (4) must be at least 5"),
        ({"max_concurrency": 0}, "store.max_concurrency (0) must be at least 1"),
        ({"max_attempts": 0}, "store.max_attempts (0) must be at least 1"),
        ({"backoff_base_s": 5.0, "backoff_max_s": 1.0}, "store.backoff_base_s (5.0)"),
        ({"read_timeout_s": 0}, "must be positive"),
    ],
)
def test_invalid_values_are_named(changes: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        StoreConfig(**changes).validate("store")


def test_defaults_are_valid() -> None:
    StoreConfig().validate("store")
    assert not any("key" in name or "secret" in name for name in StoreConfig.__dataclass_fields__)
