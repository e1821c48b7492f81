"""Rate limits, API keys, the admin audit trail and the right to erasure, against the real app.

The app runs in-process with its lifespan (tests/serving/conftest.py); the shared rate limit
runs two app instances (two workers' worth) against a real redis-server.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.erasure import ErasureList
from newsdesk.data.eventlog import open_event_log
from newsdesk.data.schema import Article
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import load_log
from newsdesk.serving.app import create_app
from newsdesk.serving.privacy import read_audit
from newsdesk.serving.rate_limit import MemoryRateLimiter
from tests.serving.conftest import ADMIN_KEY, ctr_factory, make_settings, running

pytestmark = pytest.mark.anyio
PUBLIC_KEY = "public-key-0123456789abc"


def _app(tmp_path: Path, dataset_dir: Path, articles: list[Article], **overrides: object):
    return create_app(make_settings(tmp_path, dataset_dir, **overrides),
                      recommender_factory=ctr_factory(articles))


def _clicks(user: str, ids: list[str], prefix: str = "c") -> dict:
    now = datetime.now(UTC)
    return {"events": [{"type": "click", "event_id": f"{prefix}-{user}-{i}", "user_id": user,
                        "article_id": aid,
                        "timestamp": (now - timedelta(minutes=30 - i)).isoformat()}
                       for i, aid in enumerate(ids)]}


# -- rate limits ----------------------------------------------------------------------------
def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    bucket = MemoryRateLimiter(2.0, 3, clock=lambda: now[0])
    assert [bucket.take("c") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("c") == pytest.approx(0.5)  # empty: one token in 1/rate s
    assert bucket.take("other") == 0.0  # buckets are per client
    now[0] = 0.5
    assert bucket.take("c") == 0.0
    now[0] = 100.0  # refills up to the burst, not beyond
    assert [bucket.take("c") for _ in range(4)][-1] > 0


async def test_429_with_retry_after_and_the_error_body(tmp_path, dataset_dir, articles) -> None:
    app = _app(tmp_path, dataset_dir, articles, rate_limit_per_s=0.5, rate_limit_burst=3,
               api_keys=PUBLIC_KEY)
    body = {"user_id": "u1", "k": 3}
    async with running(app) as client:
        by_addr = [await client.post("/v1/recommendations", json=body,
                                     headers={"X-API-Key": "not-a-known-key-0000"})
                   for _ in range(4)]
        keyed = [await client.post("/v1/recommendations", json=body,
                                   headers={"X-API-Key": PUBLIC_KEY}) for _ in range(4)]
        health = [await client.get("/healthz") for _ in range(5)]
        metrics = (await client.get("/metrics")).text
    # an unknown key buys no bucket of its own: counted by address, refused with 403 first
    assert [r.status_code for r in by_addr] == [403, 403, 403, 429]
    limited = by_addr[-1]
    assert int(limited.headers["Retry-After"]) >= 1
    err = limited.json()
    assert err["error"] == "rate_limited" and err["request_id"]
    assert err["fields"][0]["field"] == "client" and "rate limit" in err["message"]
    # the known key has its own bucket (the address's is empty)
    assert [r.status_code for r in keyed] == [200, 200, 200, 429]
    assert keyed[-1].json()["fields"][0]["field"] == "X-API-Key"
    assert all(r.status_code == 200 for r in health)  # probes are never limited
    assert 'newsdesk_rate_limited_total{by="key"} 1.0' in metrics


@pytest.mark.redis
async def test_the_limit_holds_across_workers_sharing_redis(tmp_path, dataset_dir, articles,
                                                             redis_process) -> None:
    """Two app instances on one Redis (what `--workers 2` runs) draw from one bucket."""
    apps = [_app(tmp_path / f"w{i}", dataset_dir, articles, online_store_url=redis_process.url,
                 state_dir=tmp_path / "state", rate_limit_per_s=0.2, rate_limit_burst=6,
                 rate_limit_timeout_ms=3000.0)  # a loaded test machine: no fail-open
            for i in range(2)]
    async with running(apps[0]) as one, running(apps[1]) as two:
        statuses = []
        for i in range(10):  # alternate between the "workers"
            r = await (one if i % 2 else two).post("/v1/recommendations",
                                                    json={"session_id": "s", "k": 2})
            statuses.append(r.status_code)
    assert statuses.count(200) == 6 and statuses.count(429) == 4
    assert statuses[:6] == [200] * 6


# -- API keys -------------------------------------------------------------------------------
async def test_api_keys_close_the_public_routes(tmp_path, dataset_dir, articles) -> None:
    app = _app(tmp_path, dataset_dir, articles, api_keys=f"{PUBLIC_KEY}, second-key-0123456789")
    body = {"session_id": "s1", "k": 2}
    async with running(app) as client:
        missing = await client.post("/v1/recommendations", json=body)
        wrong = await client.post("/v1/recommendations", json=body,
                                  headers={"X-API-Key": "x" * 20})
        ok = await client.post("/v1/recommendations", json=body,
                               headers={"X-API-Key": "second-key-0123456789"})
        admin_ok = await client.get("/v1/articles/a001/related",
                                    headers={"X-API-Key": ADMIN_KEY})
        health = await client.get("/readyz")
        spec = (await client.get("/openapi.json")).json()
    assert missing.status_code == 401 and missing.json()["fields"][0]["field"] == "X-API-Key"
    assert missing.headers["WWW-Authenticate"] == "ApiKey"
    assert wrong.status_code == 403 and wrong.json()["error"] == "forbidden"
    assert ok.status_code == 200 and admin_ok.status_code == 200
    assert health.status_code == 200
    documented = spec["paths"]["/v1/recommendations"]["post"]["responses"]
    assert {"401", "403", "429"} <= set(documented)


def test_short_api_keys_are_refused(tmp_path) -> None:
    from newsdesk.errors import ConfigError
    from newsdesk.serving.settings import load_settings

    with pytest.raises(ConfigError, match="api_keys"):
        load_settings(bundles_dir=tmp_path, api_keys="long-enough-key-0123,short")


# -- audit ----------------------------------------------------------------------------------
async def test_every_admin_call_is_audited_with_a_pseudonymised_actor(
        tmp_path, dataset_dir, articles) -> None:
    app = _app(tmp_path, dataset_dir, articles)
    async with running(app) as client:
        assert (await client.get("/v1/admin/bundles")).status_code == 401
        assert (await client.get("/v1/admin/bundles",
                                 headers={"X-API-Key": "wrong-key-0123456789"})).status_code == 403
        assert (await client.get("/v1/admin/bundles",
                                 headers={"X-API-Key": ADMIN_KEY})).status_code == 200
        assert (await client.delete("/v1/users/alice@example.org",
                                    headers={"X-API-Key": ADMIN_KEY})).status_code == 200
        await client.post("/v1/recommendations", json={"session_id": "s", "k": 1})
    audit_file = tmp_path / "state" / "audit.jsonl"
    entries = read_audit(audit_file)
    assert [(e["route"], e["status"], e["outcome"]) for e in entries] == [
        ("/v1/admin/bundles", 401, "refused"), ("/v1/admin/bundles", 403, "refused"),
        ("/v1/admin/bundles", 200, "ok"), ("/v1/users/{user_id}", 200, "ok")]
    assert entries[0]["actor"].startswith("addr:p_")
    assert entries[2]["actor"].startswith("key:p_") and entries[2]["actor"] == entries[3]["actor"]
    assert entries[1]["actor"] != entries[2]["actor"]  # another key, another actor
    assert entries[3]["target"].startswith("p_")
    raw = audit_file.read_text()
    assert ADMIN_KEY not in raw and "alice" not in raw and "wrong-key" not in raw


# -- erasure --------------------------------------------------------------------------------
async def test_erasure_removes_online_state_now_and_discards_later_events(
        tmp_path, dataset_dir, articles) -> None:
    app = _app(tmp_path, dataset_dir, articles)
    admin = {"X-API-Key": ADMIN_KEY}
    async with running(app) as client:
        assert (await client.post("/v1/events", json=_clicks("alice", ["a001", "a002"]))
                ).status_code == 200
        before = (await client.get("/v1/users/alice/recent", headers=admin)).json()["clicks"]
        refused = await client.delete("/v1/users/alice")
        gone = await client.delete("/v1/users/alice", headers=admin)
        after = (await client.get("/v1/users/alice/recent", headers=admin)).json()["clicks"]
        later = await client.post("/v1/events", json=_clicks("alice", ["a003"], "later"))
        still = (await client.get("/v1/users/alice/recent", headers=admin)).json()["clicks"]
        rec = await client.post("/v1/recommendations", json={"user_id": "alice", "k": 5})
        stranger = await client.post("/v1/recommendations", json={"user_id": "nobody", "k": 5})
        again = await client.delete("/v1/users/alice", headers=admin)
        svc = app.state.services
        await svc.exposure.queue.join()
    assert [c["article_id"] for c in before] == ["a002", "a001"]
    assert refused.status_code == 401
    assert gone.json() | {"request_id": None} == {
        "request_id": None, "user_id": "alice", "erased": True, "had_online_state": True}
    assert after == [] and still == []
    assert later.json()["accepted"] == 0 and later.json()["erased"] == 1
    # served like a stranger: the same slate as a reader the service never saw
    assert ([i["article_id"] for i in rec.json()["items"]]
            == [i["article_id"] for i in stranger.json()["items"]])
    assert again.status_code == 200 and again.json()["had_online_state"] is False
    assert "alice" in ErasureList.in_dir(tmp_path / "state")
    assert "alice" in ErasureList.in_dir(dataset_dir)  # the served dataset says it too
    alice_logged = {getattr(e, "event_id", None) for _, e in svc.event_log.read()
                    if e.user_id == "alice"}
    # the log keeps what came before the erasure (exports drop it; retention purges it), but
    # neither the later click nor the slate served afterwards
    assert alice_logged == {"c-alice-0", "c-alice-1"}


def test_memory_store_erasure_reaches_the_snapshot(tmp_path) -> None:
    path = tmp_path / "online.db"
    store = MemoryOnlineStore(persist_path=path)
    store.record_clicks("alice", ["a1", "a2"], 1000.0)
    store.record_clicks("bob", ["a1"], 1000.0)
    store.snapshot()
    assert store.forget_user("alice") is True
    assert store.user_clicks("alice") == []
    reopened = MemoryOnlineStore(persist_path=path)  # e.g. after a crash, before close()
    assert reopened.user_clicks("alice") == [] and len(reopened.user_clicks("bob")) == 1
    assert store.forget_user("alice") is False
    store.close()
    reopened.close()


@pytest.mark.redis
def test_redis_store_erasure(redis_server) -> None:
    from newsdesk.features.redis_store import RedisOnlineStore

    store = RedisOnlineStore(redis_server, prefix="erasure-test:")
    try:
        store.record_clicks("alice", ["a1"], 1000.0)
        store.record_clicks("bob", ["a1"], 1000.0)
        assert store.forget_user("alice") is True
        assert store.user_clicks("alice") == [] and len(store.user_clicks("bob")) == 1
        assert store.article_stats(["a1"], 1000.0)[0].clicks == 2  # aggregates stay
        assert store.forget_user("alice") is False
    finally:
        store.close()


def test_erased_reader_is_absent_from_the_export_and_the_next_training_set(tmp_path) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    data = tmp_path / "dataset"
    arts = [Article(article_id=f"a{i}", title=f"t{i}", category="news",
                    published_at=now - timedelta(days=1)) for i in range(4)]
    with DatasetWriter(data, source="test") as w:
        w.table("articles").write_rows(a.model_dump() for a in arts)
        w.table("histories").write_rows([
            {"user_id": u, "article_ids": ["a0", "a1"], "as_of": now - timedelta(hours=5)}
            for u in ("alice", "bob")])
    log = open_event_log(f"sqlite:///{tmp_path / 'events.db'}")
    events = []
    for h, user in enumerate(["alice", "bob", "carol", "alice"]):
        ts = now + timedelta(hours=h)
        events.append({"kind": "impression", "request_id": f"r{h}", "user_id": user,
                       "timestamp": ts, "article_ids": ["a0", "a1", "a2"]})
        events.append({"kind": "interaction", "event_id": f"e{h}", "user_id": user,
                       "article_id": "a1", "type": "click", "request_id": f"r{h}",
                       "timestamp": ts + timedelta(minutes=1)})
    log.append(events)
    log.export(data)  # alice is in the dataset now
    assert "alice" in set(Dataset(data).read("impressions")["user_id"].to_list())
    erasures = ErasureList.in_dir(tmp_path / "state")
    erasures.add(["alice"])
    log.export(data, erased=erasures.users())
    log.close()
    ds = Dataset(data)
    for table in ("impressions", "interactions", "histories"):
        users = set(ds.read(table)["user_id"].to_list())
        assert "alice" not in users and users, table
    assert "alice" in ErasureList.in_dir(data)
    training = load_log(data)
    assert "alice" not in training.events.user_ids
    assert set(training.events.user_ids) == {"bob", "carol"}
    assert training.counts["impressions"] == 2


def test_training_drops_readers_listed_in_the_dataset_without_a_new_export(tmp_path) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    data = tmp_path / "dataset"
    with DatasetWriter(data, source="test") as w:
        w.table("articles").write_rows([Article(
            article_id="a0", title="t", category="news", published_at=now).model_dump()])
        w.table("impressions").write_rows([
            {"request_id": f"r{u}", "user_id": u, "timestamp": now, "article_ids": ["a0"]}
            for u in ("alice", "bob")])
    assert set(load_log(data).events.user_ids) == {"alice", "bob"}
    ErasureList.in_dir(data).add(["alice"])  # what DELETE /v1/users/alice does to it
    assert load_log(data).events.user_ids == ["bob"]


@pytest.mark.redis
async def test_shared_limiter_fails_open_when_redis_is_gone(redis_process) -> None:
    from newsdesk.serving.rate_limit import RedisRateLimiter

    errors = []
    limiter = RedisRateLimiter(redis_process.url, 0.1, 2, on_error=lambda: errors.append(1))
    try:
        assert [await limiter.acquire("c") for _ in range(3)][-1] > 0  # the bucket works
        redis_process.kill()
        assert await limiter.acquire("c") == 0.0  # allowed, and counted
        assert errors == [1]
    finally:
        await limiter.aclose()


async def test_monitoring_documents_null_diversity_of_empty_slates(tmp_path, dataset_dir,
                                                                   articles) -> None:
    """A fuzzing find: only empty slates served (filters matching nothing) made
    /v1/monitoring answer topic_diversity null where the schema promised a number."""
    app = _app(tmp_path, dataset_dir, articles)
    async with running(app) as client:
        r = await client.post("/v1/recommendations", json={
            "user_id": "u1", "k": 5, "surface": "odd", "filters": {"category": ["nothing"]}})
        assert r.status_code == 200 and r.json()["items"] == []
        body = (await client.get("/v1/monitoring")).json()
        spec = (await client.get("/openapi.json")).json()
    rows = [q for q in body["quality"] if q["surface"] == "odd"]
    assert rows and rows[0]["topic_diversity"] is None
    prop = spec["components"]["schemas"]["QualityRow"]["properties"]["topic_diversity"]
    assert {"type": "null"} in prop["anyOf"]
