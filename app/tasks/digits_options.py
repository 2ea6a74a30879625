"""Typed ``task.options`` of the ``digits`` demo task, apart from the model code so that the config
loader can check them without importing Paddle (importing Paddle replaces the SIGTERM handler)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.config.typed import limits
from app.errors import ConfigError

__all__ = ["DigitsOptions"]


@dataclass
class DigitsOptions:
    classes: list[int] = field(default_factory=lambda: list(range(10)), metadata=limits(ge=0, le=9))
    num_classes: int | None = field(default=None, metadata=limits(gt=0))
    width: int = field(default=16, metadata=limits(gt=0))
    dropout: float = field(default=0.1, metadata=limits(ge=0, lt=1))
    eval_fraction: float = field(default=0.25, metadata=limits(gt=0, lt=1))

    def validate(self, path: str) -> None:
        if not self.classes or any(not 0 <= c <= 9 for c in self.classes):
            raise ConfigError(f"{path}.classes: must be digits 0-9, got {self.classes}")
        if self.num_classes is not None and self.num_classes < len(self.classes):
            raise ConfigError(
                f"{path}.num_classes ({self.num_classes}) is smaller than len(classes) ({len(self.classes)})"
            )
        if not 0.0 < self.eval_fraction < 1.0:
            raise ConfigError(f"{path}.eval_fraction: must be in (0, 1), got {self.eval_fraction}")
