"""The model registry's on-disk state: which bundle of a bundles directory serves.

    BUNDLES_DIR/ACTIVE      {"version": "v2026...", "previous": "...", "promoted_at": ISO,
                             "by": "pipeline", "reason": "..."}

Written atomically (temporary file + rename in the same directory), so a reader sees the old
pointer or the new one, never half of it. Who reads it:

* `resolve_bundle(dir, None)` (what `newsdesk serve` loads at start) takes the pointer when it
  exists and the newest bundle otherwise, so candidates the pipeline trained and rejected stay
  on disk without ever being served by a restart;
* running servers watch it (`serving/bundle_watcher.py`) and hot-swap when it changes.

Only `version` is read back for serving; the rest is for people reading the file.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsdesk.errors import BundleError

ACTIVE_FILE = "ACTIVE"


def read_active(bundles_dir: str | Path) -> dict[str, Any] | None:
    """The pointer's content, or None when the directory has none."""
    path = Path(bundles_dir) / ACTIVE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the active-bundle pointer ({exc})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: active-bundle pointer is not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        raise BundleError(f"{path}: field 'version' is missing from the active-bundle pointer")
    return data


def active_version(bundles_dir: str | Path) -> str | None:
    """The version the pointer names (None without a pointer)."""
    data = read_active(bundles_dir)
    return None if data is None else str(data["version"])


def write_active(bundles_dir: str | Path, version: str, *, by: str = "pipeline",
                 reason: str = "", **extra: Any) -> dict[str, Any]:
    """Point the directory at `version` (which must exist there); atomic. Returns the content."""
    root = Path(bundles_dir)
    if not (root / version / "manifest.json").is_file():
        raise BundleError(f"{root}: cannot activate {version!r}: no such bundle")
    previous = active_version(root)
    data = {"version": version, "previous": previous,
            "promoted_at": datetime.now(UTC).isoformat(), "by": by, "reason": reason,
            "host": socket.gethostname(), "pid": os.getpid(), **extra}
    tmp = root / f".{ACTIVE_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    with tmp.open("w") as fh:
        fh.write(json.dumps(data, indent=2, default=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / ACTIVE_FILE)
    _fsync_dir(root)
    return data


def _fsync_dir(path: Path) -> None:
    # the rename is durable only once the directory entry is on disk
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
