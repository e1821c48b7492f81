"""Dataset directories in object storage (data/dataset_remote.py) against a real
S3-compatible server (the moto server fixture of the bundle tests: real HTTP on 127.0.0.1):
push / pull a verified copy, refuse a corrupt object, and a pipeline cycle whose dataset
lives in the bucket (the exported events land there, once)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.data.dataset_remote import pull_dataset, push_dataset
from newsdesk.errors import DatasetError

from .conftest import World

pytestmark = [pytest.mark.ml]
TABLES = ("articles", "impressions", "interactions", "histories")


def _dataset_url(s3: tuple[str, object], name: str) -> str:
    url, _ = s3
    return url.replace("s3://models/bundles", f"s3://models/datasets/{name}")


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != "_files.json"}


def test_push_pull_verified_copy_and_refuse_corruption(world: World, s3: tuple[str, object],
                                                       tmp_path: Path) -> None:
    _, client = s3
    url = _dataset_url(s3, "sim")
    src = tmp_path / "src"
    import shutil

    shutil.copytree(world.dataset, src)
    pushed = push_dataset(src, url)
    assert pushed.copied and pushed.copied[-1] == "manifest.json"  # the manifest goes last
    keys = {o["Key"] for o in client.list_objects_v2(  # type: ignore[attr-defined]
        Bucket="models", Prefix="datasets/sim/")["Contents"]}
    assert "datasets/sim/manifest.json" in keys and "datasets/sim/_files.json" in keys

    copy = tmp_path / "copy"
    pulled = pull_dataset(url, copy)
    assert _hashes(copy) == _hashes(src)  # byte for byte
    assert len(pulled.copied) == len(_hashes(src))
    for t in TABLES:
        assert Dataset(copy).count(t) == Dataset(src).count(t)
    assert Dataset(copy).count("impressions") > 0

    # nothing changed: nothing moves either way
    assert push_dataset(src, url).copied == [] and pull_dataset(url, copy).copied == []

    # a file removed at the source disappears from the bucket and from the copy
    part = sorted((src / "interactions").glob("*.parquet"))[0]
    part.unlink()
    assert push_dataset(src, url).deleted == [str(part.relative_to(src))]
    assert pull_dataset(url, copy).deleted == [str(part.relative_to(src))]
    assert _hashes(copy) == _hashes(src)

    # a damaged local file is fetched again; a corrupt object is refused, naming it
    victim = sorted((copy / "impressions").glob("*.parquet"))[0]
    victim.write_bytes(b"garbage")
    assert pull_dataset(url, copy).copied == [str(victim.relative_to(copy))]
    assert _hashes(copy) == _hashes(src)
    rel = str(victim.relative_to(copy))
    client.put_object(Bucket="models", Key=f"datasets/sim/{rel}",  # type: ignore[attr-defined]
                      Body=b"tampered")
    with pytest.raises(DatasetError, match=rel):
        pull_dataset(url, tmp_path / "fresh")
    assert not (tmp_path / "fresh" / rel).exists()


def test_pipeline_cycle_with_dataset_in_s3(world: World, s3: tuple[str, object],
                                           tmp_path: Path) -> None:
    from newsdesk.pipelines.loop import PipelineRunner

    from .world import pipeline_config

    url = _dataset_url(s3, "live")
    w = world.copy(tmp_path / "w")
    before = {t: Dataset(w.dataset).count(t) for t in TABLES}
    push_dataset(w.dataset, url)
    runner = PipelineRunner(url, w.bundles, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=tmp_path / "state")
    rec = runner.run_once()
    assert rec["dataset"] == url and rec["decision"] == "promoted", rec.get("reasons")
    added = rec["export"]["added"]
    assert added["impressions"] + added["interactions"] == w.n_events
    assert rec["push"]["copied"] >= 3  # parts, marker, manifest
    # no cache in the training config: article vectors are cached in the state dir
    assert (tmp_path / "state" / "embedding-cache" / "embeddings.sqlite").stat().st_size > 0
    # what the bucket holds now: the dataset plus every logged event, once
    check = tmp_path / "check"
    pull_dataset(url, check)
    after = {t: Dataset(check).count(t) for t in TABLES}
    assert after["impressions"] == before["impressions"] + added["impressions"]
    assert after["interactions"] == before["interactions"] + added["interactions"]
    assert list((check / "_eventlog").glob("*.json"))
    ids = Dataset(check).read("impressions")["request_id"]
    assert ids.n_unique() == len(ids)

    # a second cycle (a fresh state dir: nothing local) exports nothing new and adds no copies
    again = PipelineRunner(url, w.bundles, config=pipeline_config(),
                           event_log=w.event_log_url, state_dir=tmp_path / "state2").run_once()
    assert again["pull"]["copied"] > 0  # its local copy came from the bucket
    assert sum(again["export"]["added"].values()) == 0 and "push" not in again
    pull_dataset(url, check)
    assert {t: Dataset(check).count(t) for t in TABLES} == after
