"""Typed configuration of object-store transfers (the ``store:`` section). Never holds credentials."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["StoreConfig"]


@dataclass
class StoreConfig:
    #: S3-compatible endpoint (MinIO, moto_server, OSS). None = the SDK default (AWS), or for oss:// the
    #: endpoint from OSS_ENDPOINT / the region.
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: Literal["auto", "virtual", "path"] = "auto"
    part_size_mb: int = 16
    max_concurrency: int = 8
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
