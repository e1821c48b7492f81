"""Bundles in object storage against a real S3-compatible server (moto's server mode on
127.0.0.1, started by the test; real HTTP, no mocked client): publish, fetch into a verified
local copy, refuse a corrupt object, and serve a bundle straight from an s3:// URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.errors import BundleError
from newsdesk.models.bundle import RANKER_FILE, file_hashes
from newsdesk.models.bundle_remote import (
    fetch_bundle,
    publish_bundle,
    remote_versions,
    resolve_remote,
    write_remote_active,
)

from .conftest import World

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
boto3 = pytest.importorskip("boto3")
pytestmark = [pytest.mark.ml]


def test_publish_fetch_verify_and_refuse_corruption(world: World, s3: tuple[str, object],
                                                    tmp_path: Path) -> None:
    url, client = s3
    bundle = world.bundles / world.active
    assert publish_bundle(bundle, url) == world.active
    assert remote_versions(url) == [world.active]
    assert resolve_remote(url) == world.active  # no pointer yet: the newest
    write_remote_active(url, world.active, by="test")
    assert resolve_remote(url) == world.active
    with pytest.raises(BundleError, match="no such bundle"):
        write_remote_active(url, "v-missing")

    cache = tmp_path / "cache"
    local = fetch_bundle(url, None, cache)
    assert local == cache / world.active
    assert file_hashes(local) == file_hashes(bundle)  # byte for byte, every file
    # a damaged local copy is detected and fetched again
    (local / RANKER_FILE).write_text("garbage")
    again = fetch_bundle(url, world.active, cache)
    assert file_hashes(again) == file_hashes(bundle)
    # a corrupt object in the bucket is refused, naming the file; nothing is left in the cache
    client.put_object(Bucket="models", Key=f"bundles/{world.active}/{RANKER_FILE}",  # type: ignore[attr-defined]
                      Body=b"tampered")
    fresh = tmp_path / "fresh"
    with pytest.raises(BundleError, match=f"{RANKER_FILE} is corrupt"):
        fetch_bundle(url, world.active, fresh)
    assert not (fresh / world.active).exists() and not list(fresh.glob(".fetch-*"))


@pytest.mark.anyio
async def test_serving_loads_a_bundle_from_s3(world: World, s3: tuple[str, object],
                                              tmp_path: Path) -> None:
    import httpx

    from newsdesk.serving.app import create_app
    from newsdesk.serving.settings import ServeSettings

    url, _ = s3
    publish_bundle(world.bundles / world.active, url)
    write_remote_active(url, world.active)
    settings = ServeSettings(dataset_dir=world.dataset, bundles_dir=tmp_path / "local-copy",
                             bundles_url=url, state_dir=tmp_path / "state",
                             online_store_url="memory://", log_level="warning",
                             watch_active_s=0, bootstrap_store=False, ranker="lightgbm")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        svc = app.state.services
        assert svc.registry.version == world.active
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            r = await client.post("/v1/recommendations", json={"user_id": "u1", "k": 5})
            assert r.status_code == 200 and r.json()["model_version"] == world.active
    assert file_hashes(tmp_path / "local-copy" / world.active) == file_hashes(
        world.bundles / world.active)


def test_pipeline_cycle_with_bundles_in_s3(world: World, s3: tuple[str, object],
                                           tmp_path: Path) -> None:
    from newsdesk.pipelines.loop import PipelineRunner

    from .world import pipeline_config

    url, _ = s3
    w = world.copy(tmp_path / "w")
    publish_bundle(w.bundles / w.active, url)
    write_remote_active(url, w.active)
    runner = PipelineRunner(w.dataset, url, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=tmp_path / "state")
    rec = runner.run_once()
    assert rec["active_before"] == w.active  # read from the bucket's ACTIVE
    assert rec["decision"] == "promoted", rec["reasons"]
    assert resolve_remote(url) == rec["candidate"]  # promoted in the bucket
    assert set(remote_versions(url)) == {w.active, rec["candidate"]}
    local = fetch_bundle(url, None, tmp_path / "server-copy")  # what a server would load
    assert file_hashes(local) == file_hashes(runner.bundles_dir / rec["candidate"])
