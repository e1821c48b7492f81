"""Bundles in object storage: publish a bundle to an `s3://` (or any pyarrow filesystem) URL,
and fetch one into a verified local copy for serving.

    publish_bundle(local_bundle, "s3://bucket/bundles")           -> version
    write_remote_active("s3://bucket/bundles", version)            the remote ACTIVE pointer
    fetch_bundle("s3://bucket/bundles", version | None, cache_dir) -> local bundle path

URLs go through `pyarrow.fs.FileSystem.from_uri` (S3 credentials from the usual AWS
environment variables; an S3-compatible endpoint with `?endpoint_override=host:port&scheme=
http`), so a local path works through the same code. Serving never reads model files
remotely: `fetch_bundle` downloads every file the manifest lists into a staging directory,
checks each one's sha256 against the manifest (`verify_files`, as for local bundles), and
renames the directory into `cache_dir/<version>`; a cached copy is re-verified before it is
reused, and a corrupt or partial one is fetched again. Objects are whole or absent (an S3 PUT
is atomic), and the manifest is uploaded last, so a reader never sees a bundle whose
manifest names files that are not there yet.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from newsdesk.errors import BundleError
from newsdesk.models.active_bundle import ACTIVE_FILE
from newsdesk.models.bundle import MANIFEST, read_manifest, verify_files


def is_remote(url: str | Path) -> bool:
    """True for URLs with a scheme other than file:// (s3://, gs://, ...)."""
    text = str(url)
    return "://" in text and not text.startswith("file://")


def _fs(url: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(url)
    except (ValueError, OSError) as exc:
        raise BundleError(f"bundles url {url!r}: {exc}") from exc


def _read_text(fs: pafs.FileSystem, path: str) -> str | None:
    try:
        with fs.open_input_stream(path) as fh:
            return fh.read().decode()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if "not exist" in str(exc) or "NoSuchKey" in str(exc) or "Not Found" in str(exc):
            return None
        raise BundleError(f"cannot read {path}: {exc}") from exc


def _write_bytes(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as fh:
        fh.write(data)


def publish_bundle(bundle: str | Path, bundles_url: str) -> str:
    """Upload a local bundle under `bundles_url/<version>/`; manifest last. Its version."""
    bundle = Path(bundle)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)  # never publish a bundle that is already corrupt
    fs, root = _fs(bundles_url)
    version = str(manifest["version"])
    base = f"{root.rstrip('/')}/{version}"
    fs.create_dir(base, recursive=True)
    for rel in manifest["files"]:
        fs.create_dir(f"{base}/{rel}".rsplit("/", 1)[0], recursive=True)
        _write_bytes(fs, f"{base}/{rel}", (bundle / rel).read_bytes())
    _write_bytes(fs, f"{base}/{MANIFEST}", (bundle / MANIFEST).read_bytes())
    return version


def write_remote_active(bundles_url: str, version: str, **info: Any) -> None:
    """Point the remote bundles directory at `version` (one atomic object PUT)."""
    fs, root = _fs(bundles_url)
    if _read_text(fs, f"{root.rstrip('/')}/{version}/{MANIFEST}") is None:
        raise BundleError(f"{bundles_url}: cannot activate {version!r}: no such bundle")
    body = json.dumps({"version": version, **info}).encode()
    _write_bytes(fs, f"{root.rstrip('/')}/{ACTIVE_FILE}", body)


def remote_versions(bundles_url: str) -> list[str]:
    """Versions with a manifest under `bundles_url`, oldest first (by created_at)."""
    fs, root = _fs(bundles_url)
    found = []
    for info in fs.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        if info.type != pafs.FileType.Directory or info.base_name.startswith("."):
            continue
        text = _read_text(fs, f"{info.path}/{MANIFEST}")
        if text is not None:
            m = json.loads(text)
            found.append((str(m.get("created_at", "")), str(m["version"])))
    return [v for _, v in sorted(found)]


def resolve_remote(bundles_url: str, version: str | None = None) -> str:
    """`version`, else the remote ACTIVE pointer's, else the newest remote bundle."""
    if version is not None:
        return version
    fs, root = _fs(bundles_url)
    text = _read_text(fs, f"{root.rstrip('/')}/{ACTIVE_FILE}")
    if text is not None:
        return str(json.loads(text)["version"])
    versions = remote_versions(bundles_url)
    if not versions:
        raise BundleError(f"{bundles_url}: no model bundles")
    return versions[-1]


def fetch_bundle(bundles_url: str, version: str | None, cache_dir: str | Path) -> Path:
    """A verified local copy of a remote bundle in `cache_dir/<version>` (see module doc)."""
    version = resolve_remote(bundles_url, version)
    cache = Path(cache_dir)
    local = cache / version
    if (local / MANIFEST).is_file():
        try:
            verify_files(local, read_manifest(local))
            return local
        except BundleError:  # altered or partial: fetch it again
            shutil.rmtree(local, ignore_errors=True)
    fs, root = _fs(bundles_url)
    base = f"{root.rstrip('/')}/{version}"
    text = _read_text(fs, f"{base}/{MANIFEST}")
    if text is None:
        raise BundleError(f"{bundles_url}: no bundle with version {version!r}")
    manifest = json.loads(text)
    stage = cache / f".fetch-{version}-{uuid.uuid4().hex[:6]}"
    try:
        for rel in manifest.get("files", {}):
            target = stage / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(f"{base}/{rel}") as src, target.open("wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
        (stage / MANIFEST).write_text(text)
        verify_files(stage, read_manifest(stage))  # BundleError names the bad file
        stage.replace(local)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return local
