"""Dataset directories in object storage (`s3://...`), through pyarrow filesystems.

    pull_dataset("s3://bucket/data/sim", local_dir) -> SyncStats   a verified local copy
    push_dataset(local_dir, "s3://bucket/data/sim") -> SyncStats   upload what changed

The pipeline's steps (export, training, replay) read and write a local directory: Polars,
LightGBM and the exporter's fsync-and-rename commit protocol all want files. A dataset whose
home is object storage is therefore worked on in a local copy that is pulled before a cycle
and pushed after the export; both directions are the same code (`_sync`), with a local path
going through pyarrow's LocalFileSystem and a URL through `FileSystem.from_uri` (S3
credentials from the usual AWS variables; an S3-compatible endpoint with
`?endpoint_override=host:port&scheme=http`, as for bundles in `models/bundle_remote.py`).

Consistency, as for bundles: every push writes `_files.json` (relative path -> size and
sha256 of every file) last; a pull downloads each file whose local sha256 differs from the
index, checks each download against it, and deletes local files the index does not name
(a re-import replaced them). A dataset uploaded by other means (no index) is pulled by
listing, comparing sizes. Objects are whole or absent (an S3 PUT is atomic) and the order of
a push keeps the exporter's commit rule remotely: Parquet parts first, then the chunk commit
markers (`_eventlog/*.json`), then `manifest.json`, then the index; a reader never sees a
marker whose parts are missing, and a part without its marker is an uncommitted chunk the
exporter deletes and redoes (`pipelines/export.py`), locally and, on the next push, remotely.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.fs as pafs

from newsdesk.errors import DatasetError

INDEX = "_files.json"
_CHUNK = 1 << 20


def is_remote(url: str | Path) -> bool:
    """True for URLs with a scheme other than file:// (s3://, gs://, ...)."""
    text = str(url)
    return "://" in text and not text.startswith("file://")


@dataclass
class SyncStats:
    """What one pull or push did (relative paths)."""

    copied: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    bytes: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"copied": len(self.copied), "deleted": len(self.deleted),
                "unchanged": self.unchanged, "bytes": self.bytes}


def _fs(location: str | Path) -> tuple[pafs.FileSystem, str]:
    if not is_remote(location):
        return pafs.LocalFileSystem(), str(Path(str(location).removeprefix("file://"))
                                           .resolve())
    try:
        fs, root = pafs.FileSystem.from_uri(str(location))
    except (ValueError, OSError) as exc:
        raise DatasetError(f"dataset url {location!r}: {exc}") from exc
    return fs, root.rstrip("/")


def _skipped(rel: str) -> bool:
    """Staging and temporary files of writers (`.staging-*`, `.x.tmp`) are never synced."""
    return any(part.startswith(".") for part in rel.split("/")) or rel.endswith(".tmp")


def _listing(fs: pafs.FileSystem, root: str) -> dict[str, int]:
    """relative path -> size of every file under root (empty when root does not exist)."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError as exc:
        raise DatasetError(f"cannot list {root}: {exc}") from exc
    out = {}
    for info in infos:
        if info.type == pafs.FileType.File:
            rel = info.path[len(root):].lstrip("/")
            if not _skipped(rel):
                out[rel] = int(info.size or 0)
    return out


def _read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as fh:
        return fh.read()


def _sha256(fs: pafs.FileSystem, path: str) -> str:
    h = hashlib.sha256()
    with fs.open_input_stream(path) as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _index(fs: pafs.FileSystem, root: str) -> dict[str, dict[str, object]] | None:
    if fs.get_file_info(f"{root}/{INDEX}").type != pafs.FileType.File:
        return None
    try:
        return dict(json.loads(_read(fs, f"{root}/{INDEX}"))["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{root}/{INDEX}: not a dataset file index ({exc})") from exc


def _order(rel: str) -> tuple[int, str]:
    """Push order: data parts, then commit markers, then the manifest (module docstring)."""
    if rel == "manifest.json":
        return 2, rel
    if rel.startswith("_eventlog/"):
        return 1, rel
    return 0, rel


def _copy(src_fs: pafs.FileSystem, src: str, dst_fs: pafs.FileSystem, dst: str) -> bytes:
    data = _read(src_fs, src)
    parent = dst.rsplit("/", 1)[0]
    dst_fs.create_dir(parent, recursive=True)
    if isinstance(dst_fs, pafs.LocalFileSystem):  # whole or absent locally too
        tmp = f"{parent}/.{dst.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
        with dst_fs.open_output_stream(tmp) as fh:
            fh.write(data)
        os.replace(tmp, dst)
    else:
        with dst_fs.open_output_stream(dst) as fh:
            fh.write(data)
    return data


def push_dataset(local_dir: str | Path, url: str) -> SyncStats:
    """Upload the files of a local dataset that the remote copy lacks or holds differently,
    in commit order, delete remote files the local copy no longer has, write the index."""
    src_fs, src = _fs(local_dir)
    dst_fs, dst = _fs(url)
    local = _listing(src_fs, src)
    local.pop(INDEX, None)
    if "manifest.json" not in local:
        raise DatasetError(f"{local_dir} is not a newsdesk dataset (no manifest.json)")
    remote_index = _index(dst_fs, dst) or {}
    stats = SyncStats()
    files: dict[str, dict[str, object]] = {}
    for rel in sorted(local, key=_order):
        digest = _sha256(src_fs, f"{src}/{rel}")
        files[rel] = {"size": local[rel], "sha256": digest}
        if remote_index.get(rel, {}).get("sha256") == digest:
            stats.unchanged += 1
            continue
        stats.bytes += len(_copy(src_fs, f"{src}/{rel}", dst_fs, f"{dst}/{rel}"))
        stats.copied.append(rel)
    for rel in sorted(set(_listing(dst_fs, dst)) - set(files) - {INDEX}):
        dst_fs.delete_file(f"{dst}/{rel}")
        stats.deleted.append(rel)
    body = json.dumps({"files": files}, indent=1, sort_keys=True).encode()
    with dst_fs.open_output_stream(f"{dst}/{INDEX}") as fh:
        fh.write(body)
    return stats


def pull_dataset(url: str, local_dir: str | Path) -> SyncStats:
    """Make `local_dir` a verified copy of the dataset at `url` (module docstring)."""
    src_fs, src = _fs(url)
    dst_fs, dst = _fs(local_dir)
    index = _index(src_fs, src)
    if index is None:  # uploaded by other means: list it
        index = {rel: {"size": size} for rel, size in _listing(src_fs, src).items()}
    if "manifest.json" not in index:
        raise DatasetError(f"{url} is not a newsdesk dataset (no manifest.json)")
    local = _listing(dst_fs, dst)
    stats = SyncStats()
    for rel in sorted(index, key=_order):
        want = index[rel]
        sha = want.get("sha256")
        if rel in local and local[rel] == want.get("size") and (
                sha is None or _sha256(dst_fs, f"{dst}/{rel}") == sha):
            stats.unchanged += 1
            continue
        data = _copy(src_fs, f"{src}/{rel}", dst_fs, f"{dst}/{rel}")
        if sha is not None and hashlib.sha256(data).hexdigest() != sha:
            dst_fs.delete_file(f"{dst}/{rel}")
            raise DatasetError(f"{url}/{rel}: sha256 differs from {INDEX} (corrupt or "
                               "being rewritten); the local copy was not updated with it")
        stats.bytes += len(data)
        stats.copied.append(rel)
    for rel in sorted(set(local) - set(index) - {INDEX}):
        dst_fs.delete_file(f"{dst}/{rel}")
        stats.deleted.append(rel)
    return stats
