"""Checkpoints: committed, verified, pickle-free step folders on any store, saved in the background.

Rules (what "latest" means, what to keep) live in :mod:`catalog` and :mod:`retention`; mechanics (how
files are written, hashed, read) in :mod:`writer`, :mod:`reader` and :mod:`tensorio`. The trainer uses
:class:`CheckpointManager` and :func:`open_source`.
"""

from app.checkpoint.config import CheckpointConfig
from app.checkpoint.layout import CheckpointRef, Manifest
from app.checkpoint.manager import CheckpointManager, Snapshot, host_copy
from app.checkpoint.reader import LoadedCheckpoint
from app.checkpoint.source import open_source

__all__ = [
    "CheckpointConfig",
    "CheckpointManager",
    "CheckpointRef",
    "LoadedCheckpoint",
    "Manifest",
    "Snapshot",
    "host_copy",
    "open_source",
]
