"""Appending lines to a shared file: one `write` on an O_APPEND descriptor.

Several processes (serving workers, a pipeline and an admin) may append to the same file at
once; a single `write` of whole lines on an O_APPEND descriptor keeps their lines whole. With
`fsync` the bytes are on disk before the call returns (tombstones, audit decisions)."""

from __future__ import annotations

import os
from pathlib import Path


def append_lines(path: Path, data: bytes, *, mode: int = 0o600, fsync: bool = True) -> None:
    """Append `data` (whole lines, newline-terminated) to `path`, creating it and its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, mode)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
