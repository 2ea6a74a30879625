"""What a file IS, by content: safetensors, a pickle, a zip archive (a zip-pickle), or something else.

The one place that decides whether a file could be unpickled. Names are never trusted: a pickle called
``model.safetensors`` or ``vocab.txt`` is a pickle, and a safetensors file called ``w.pdparams`` is not.

A pickle is recognised by walking its opcodes with :mod:`pickletools` (which parses, never executes)
and emulating the unpickler's stack: a stream is a pickle once it reaches ``STOP``, or once a code-running
opcode (``REDUCE``, ``BUILD``, ``INST``, ``OBJ``, ``NEWOBJ``) follows an import (``GLOBAL``,
``STACK_GLOBAL``, ``INST``, ``EXT*``) with the stack the unpickler would have. That covers the legacy
text protocols 0/1, while a text file that merely starts with ``c`` or ``i`` (which the unpickler would
reject before running anything) is not one. The protocol 2-5 header (``\\x80\\x02``..``\\x80\\x05``)
alone is enough, even when what follows is damaged.
"""

from __future__ import annotations

import io
import pickletools
import struct
import zipfile
from pathlib import Path
from typing import Literal

__all__ = ["FileKind", "WINDOW_BYTES", "sniff_file", "may_unpickle", "pickle_prefix"]

FileKind = Literal["safetensors", "pickle", "zip", "other"]

#: How much of a file the pickle walk reads; a stream still valid after this much is taken as a pickle.
WINDOW_BYTES = 1 << 20
_MAX_HEADER = 100 << 20
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_PROTOCOLS = (b"\x02", b"\x03", b"\x04", b"\x05")
_IMPORTS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "EXT1", "EXT2", "EXT4"})
_CALLS = frozenset({"REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX"})


def _pop(stack: list, before: list) -> bool:
    """Apply an opcode's pops to the emulated stack; False when the unpickler would fail here."""
    count = len(before)
    if pickletools.markobject in before:
        if pickletools.markobject not in stack:
            return False
        while stack.pop() is not pickletools.markobject:
            pass
        count = before.index(pickletools.markobject)
    if len(stack) < count:
        return False
    del stack[len(stack) - count :]
    return True


def pickle_prefix(data: bytes, truncated: bool) -> bool:
    """True if ``data`` (a file's first bytes; ``truncated`` if the file goes on) would be unpickled
    far enough to run code or finish, i.e. the unpickler would not reject it first."""
    if data[:1] == b"\x80" and data[1:2] in _PROTOCOLS:
        return True
    stack: list = []
    imported = False
    valid_until = 0
    try:
        for op, _arg, pos in pickletools.genops(io.BytesIO(data)):
            if not _pop(stack, op.stack_before):
                return False
            stack.extend(op.stack_after)
            if op.name == "STOP" or (imported and op.name in _CALLS):
                return True
            imported = imported or op.name in _IMPORTS
            valid_until = pos or 0
    except (ValueError, TypeError, UnicodeDecodeError, struct.error):
        # a malformed stream, or one cut by our window: only the latter, well into it, is still a pickle
        return truncated and valid_until > len(data) // 2
    return truncated


def _looks_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    return 2 <= length <= min(size - 8, _MAX_HEADER) and head[8:9] == b"{"


def _read_window(path: Path, limit: int = WINDOW_BYTES) -> tuple[bytes, int]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        return fh.read(limit), size


def _is_zip(path: Path, head: bytes) -> bool:
    if head[:4] in _ZIP_MAGIC:
        return True
    try:
        return zipfile.is_zipfile(path)  # the end record: a zip with anything prepended still opens
    except OSError:
        return False


def may_unpickle(path: Path) -> bool:
    """True if a loader that unpickles could run code from ``path``: a pickle or a zip archive.

    Used for files handed to a library that may unpickle them; unlike :func:`sniff_file` it does not
    let a plausible safetensors header win, so a polyglot file is still caught.
    """
    head, size = _read_window(path)
    return pickle_prefix(head, size > len(head)) or _is_zip(path, head)


def sniff_file(path: Path) -> FileKind:
    """The kind of ``path`` by content; a well-formed safetensors header wins (we read it pickle-free)."""
    head, size = _read_window(path, 16)
    if _looks_safetensors(head, size):
        return "safetensors"
    head, size = _read_window(path)
    if pickle_prefix(head, size > len(head)):
        return "pickle"
    if _is_zip(path, head):
        return "zip"
    return "other"
