"""Semantic cold start: stated interests seed a new reader's profile, through the online store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from newsdesk.errors import InvalidInput
from newsdesk.features.interest_seeds import SeedProfile, read_seed, write_seed
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.redis_store import RedisOnlineStore
from newsdesk.features.training_log import LogArrays
from newsdesk.models.base import RequestContext
from newsdesk.models.cold_start import seed_profile
from newsdesk.models.pipeline import NewsRecommender
from newsdesk.serving.app import create_app
from tests.serving.conftest import PATIENT, make_settings, running, settled

SPORTS = "football striker, goalkeeper, penalty, derby, transfer window, tennis grand slam"
POLITICS = "election campaign, parliament vote, budget bill, coalition, foreign minister"


def _share(model: NewsRecommender, user: str, now: float, category: str) -> float:
    items = model.recommend(RequestContext(user_id=user, now=now, k=10))
    cat = model.ws.catalog
    idx = cat.lookup([it.article_id for it in items])
    return float(np.mean([cat.category_name(i) == category for i in idx.tolist()]))


def test_seed_codec_and_damaged_values() -> None:
    rng = np.random.default_rng(0)
    v = rng.standard_normal(384).astype(np.float32)
    v /= np.linalg.norm(v)
    store = MemoryOnlineStore()
    write_seed(store, "r1", SeedProfile(v, {"sports": 0.7, "tech": 0.3}, "text"))
    back = read_seed(store, "r1")
    assert back is not None and back.categories == {"sports": 0.7, "tech": 0.3}
    assert float(back.vector @ v) > 0.999
    assert read_seed(store, "nobody") is None
    store.write_marker("seed:r2", "not json")
    assert read_seed(store, "r2") is None  # a damaged seed is no seed, never an error
    with pytest.raises(InvalidInput, match="user_id"):
        write_seed(store, "", SeedProfile(v))


def test_stated_interests_steer_a_cold_readers_slate(warmed: NewsRecommender,
                                                     serve_time: float) -> None:
    ws = warmed.ws
    base_sports = _share(warmed, "cold-a", serve_time, "sports")
    base_politics = _share(warmed, "cold-b", serve_time, "politics")
    for user, text in (("cold-a", SPORTS), ("cold-b", POLITICS)):
        write_seed(ws.store, user, seed_profile(ws, warmed.embedder, serve_time, text=text))
    seeded_sports = _share(warmed, "cold-a", serve_time, "sports")
    seeded_politics = _share(warmed, "cold-b", serve_time, "politics")
    assert seeded_sports >= base_sports + 0.2, (base_sports, seeded_sports)
    assert seeded_politics >= base_politics + 0.2, (base_politics, seeded_politics)
    sources = {it.source for it in warmed.recommend(
        RequestContext(user_id="cold-a", now=serve_time, k=10))}
    assert sources & {"content", "category", "coclick"}  # the anchors drive the generators
    view = ws.view("cold-a", serve_time)
    assert view.seeded and view.has_history and len(view.read_clicks) == 0
    # the first click takes over: the seed is no longer read
    clicked = ws.catalog.ids[int(ws.live_set(serve_time).indices[0])]
    ws.store.record_clicks("cold-a", [clicked], serve_time)
    assert not ws.view("cold-a", serve_time).seeded


def test_referring_article_and_invalid_input(warmed: NewsRecommender, serve_time: float) -> None:
    ws = warmed.ws
    live = ws.live_set(serve_time).indices
    cats = ws.catalog.category[live]
    sports = int(live[np.flatnonzero(cats == ws.catalog.category_index["sports"])[0]])
    seed = seed_profile(ws, warmed.embedder, serve_time, article_id=ws.catalog.ids[sports])
    assert seed.source == "article" and max(seed.categories, key=seed.categories.get) == "sports"
    both = seed_profile(ws, warmed.embedder, serve_time, text=POLITICS,
                        article_id=ws.catalog.ids[sports])
    assert both.source == "text+article"
    with pytest.raises(InvalidInput, match="article_id"):
        seed_profile(ws, warmed.embedder, serve_time, article_id="no-such-article")
    with pytest.raises(InvalidInput, match="text"):
        seed_profile(ws, warmed.embedder, serve_time, text="   ")
    with pytest.raises(InvalidInput, match="text or article_id"):
        seed_profile(ws, warmed.embedder, serve_time)


def test_seed_written_by_one_replica_is_read_by_another(redis_server: str) -> None:
    a = RedisOnlineStore(redis_server, prefix="seedtest:")
    b = RedisOnlineStore(redis_server, prefix="seedtest:")
    try:
        v = np.ones(8, dtype=np.float32) / np.sqrt(8)
        write_seed(a, "session:xyz", SeedProfile(v, {"tech": 1.0}, "text"))
        got = read_seed(b, "session:xyz")
        assert got is not None and got.categories == {"tech": 1.0}
        np.testing.assert_allclose(got.vector, v, atol=1e-3)
    finally:
        a.close()
        b.close()


@pytest.mark.anyio
async def test_api_interests_route(tmp_path: Path, llm_world: tuple[Path, Path],
                                   llm_log: LogArrays) -> None:
    dataset, bundle = llm_world
    end = datetime.fromtimestamp(llm_log.time_range[1] + 60, UTC)
    app = create_app(make_settings(tmp_path, dataset, bundles_dir=bundle.parent,
                                   clock_start=end, online_store_url=None, **PATIENT))
    async with running(app) as client:
        await settled(client)
        body = {"session_id": "new-reader", "k": 10, "explain": True, "lang": "de"}
        before = (await client.post("/v1/recommendations", json=body)).json()
        ack = await client.put("/v1/users/session:new-reader/interests",
                               json={"text": SPORTS})
        assert ack.status_code == 200, ack.text
        assert max(ack.json()["categories"], key=ack.json()["categories"].get) == "sports"
        after = (await client.post("/v1/recommendations", json=body)).json()
        model = app.state.services.registry.active
        now = app.state.services.clock()
        assert model.ws.view("session:new-reader", now).seeded  # read back from the store
        assert [it["article_id"] for it in after["items"]] != [
            it["article_id"] for it in before["items"]]
        assert any("interest" in it["signals"] for it in after["items"])
        bad = await client.put("/v1/users/u1/interests", json={"article_id": "nope"})
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "article_id"
        empty = await client.put("/v1/users/u1/interests", json={})
        assert empty.status_code == 422
        gone = await client.delete("/v1/users/session:new-reader/interests")
        assert gone.status_code == 200
        assert not model.ws.view("session:new-reader", app.state.services.clock()).seeded
