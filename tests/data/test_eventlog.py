"""EventLog contract tests, run against every backend (SQLite, memory, Redis Streams).

The Redis Streams cases run on the session's real redis-server (tests/conftest.py), each log
under its own key prefix, and carry the `redis` marker.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.eventlog import EventLog, open_event_log
from newsdesk.data.eventlog.sqlite import SQLiteEventLog
from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.errors import ConfigError, InvalidInput, StoreUnavailable

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BACKENDS = ["sqlite", "memory", pytest.param("redis", marks=pytest.mark.redis)]


def click(event_id: str, *, user: str = "u1", article: str = "a1", minute: int = 0) -> Interaction:
    return Interaction(event_id=event_id, type=InteractionType.CLICK, user_id=user,
                       article_id=article, timestamp=T0 + timedelta(minutes=minute))


def impression(request_id: str, *, user: str = "u1", articles: tuple[str, ...] = ("a1", "a2")
               ) -> Impression:
    return Impression(request_id=request_id, user_id=user, timestamp=T0,
                      article_ids=list(articles), propensities=[0.5] * len(articles))


def make_log(kind: str, directory: Path, redis_url: str | None = None) -> EventLog:
    if kind == "sqlite":
        return open_event_log(f"sqlite:///{directory / 'events.db'}")
    if kind == "redis":  # a fresh prefix: a new, empty log on the shared server
        return open_event_log(f"{redis_url}?prefix=t-{uuid.uuid4().hex[:12]}:")
    return open_event_log("memory://")


def redis_url_for(kind: str, request: pytest.FixtureRequest) -> str | None:
    """The session redis-server's url, started only when a redis case runs."""
    return request.getfixturevalue("redis_server") if kind == "redis" else None


@pytest.fixture(params=BACKENDS)
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    event_log = make_log(request.param, tmp_path, redis_url_for(request.param, request))
    yield event_log
    event_log.close()


def test_append_then_read_in_order(log: EventLog) -> None:
    result = log.append([click("e1"), impression("r1"), click("e2", minute=1)])
    assert (result.accepted, result.duplicates) == (3, 0)
    rows = list(log.read())
    assert [seq for seq, _ in rows] == sorted(seq for seq, _ in rows)
    assert [r for _, r in rows] == [click("e1"), impression("r1"), click("e2", minute=1)]
    # resuming after a seq yields only what came later
    first_seq = rows[0][0]
    assert [r for _, r in log.read(since_seq=first_seq)] == [r for _, r in rows[1:]]
    assert [r for _, r in log.read(limit=2)] == [r for _, r in rows[:2]]
    assert log.count() == 3
    assert log.health()["ok"] is True


def test_duplicates_ignored_and_counted(log: EventLog) -> None:
    assert log.append([click("e1"), click("e1"), impression("r1")]).duplicates == 1
    again = log.append([click("e1", article="other"), impression("r1"), click("e2")])
    assert (again.accepted, again.duplicates) == (1, 2)
    stored = {r.event_id: r for _, r in log.read() if isinstance(r, Interaction)}
    assert stored["e1"].article_id == "a1"  # the first version of a key wins
    assert log.count() == 3


def test_impression_and_interaction_keys_are_separate_namespaces(log: EventLog) -> None:
    result = log.append([click("same-id"), impression("same-id")])
    assert result.accepted == 2


def test_event_keys_are_every_logged_event_without_decoding(log: EventLog) -> None:
    """event_keys() (a store rebuild's key scan) lists what read() holds, in the same order,
    across pages, duplicates once; on every backend, whether it overrides the default or not."""
    log.append([click(f"e{i}", minute=i % 50) for i in range(10_050)])
    log.append([impression("r1"), click("e7"), impression("r2")])  # e7: a duplicate
    want = [("impression" if isinstance(e, Impression) else "interaction",
             e.request_id if isinstance(e, Impression) else e.event_id) for _, e in log.read()]
    assert list(log.event_keys()) == want
    assert len(want) == 10_052 and want[-2:] == [("impression", "r1"), ("impression", "r2")]


def test_dict_records_are_validated_like_models(log: EventLog) -> None:
    result = log.append([
        {"event_id": "e1", "type": "dwell", "user_id": "u", "article_id": "a",
         "timestamp": "2024-05-01T12:00:00Z", "dwell_seconds": 12.5},
        {"kind": "impression", "request_id": "r1", "user_id": "u",
         "timestamp": "2024-05-01T12:00:00", "article_ids": ["a"]},
    ])
    assert result.accepted == 2
    records = [r for _, r in log.read()]
    assert isinstance(records[0], Interaction) and records[0].dwell_seconds == 12.5
    assert isinstance(records[1], Impression) and records[1].timestamp.tzinfo is not None


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"event_id": "x", "type": "bogus", "user_id": "u", "article_id": "a",
          "timestamp": "2024-05-01T12:00:00Z"}, "type"),
        ({"event_id": "x", "type": "click", "article_id": "a",
          "timestamp": "2024-05-01T12:00:00Z"}, "user_id"),
        ({"kind": "impression", "request_id": "r", "user_id": "u",
          "timestamp": "2024-05-01", "article_ids": []}, "article_ids"),
        ({"kind": "pageview", "id": "p"}, "kind"),
    ],
)
def test_invalid_record_names_field_and_stores_nothing(log: EventLog, bad: dict, field: str
                                                       ) -> None:
    with pytest.raises(InvalidInput) as info:
        log.append([click("good-1"), bad, click("good-2")])
    assert info.value.field == field
    assert field in str(info.value) and "record 1" in str(info.value)
    assert log.count() == 0  # all-or-nothing: the good records of the batch are not stored


def test_closed_log_refuses_appends(log: EventLog) -> None:
    log.close()
    with pytest.raises(StoreUnavailable):
        log.append([click("late")])


def test_concurrent_appends_all_acknowledged_exactly_once(log: EventLog) -> None:
    """Threads append overlapping id ranges; every id is stored once and counted once."""
    results = []
    lock = threading.Lock()

    def worker(worker_id: int) -> None:
        for batch in range(10):
            # ids overlap between neighbouring workers, so some are duplicates across threads
            ids = [f"e{(worker_id * 50 + batch * 10 + i) % 300}" for i in range(10)]
            res = log.append([click(i) for i in ids])
            with lock:
                results.append(res)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r.event_id for _, r in log.read()]
    assert len(stored) == len(set(stored)) == 300
    assert sum(r.accepted for r in results) == 300
    assert sum(r.accepted + r.duplicates for r in results) == 8 * 10 * 10


batches = st.lists(st.lists(st.integers(0, 40), max_size=15), max_size=8)


@pytest.mark.parametrize("kind", BACKENDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=batches)
def test_stored_set_is_the_unique_ids(kind: str, batches: list[list[int]],
                                      request: pytest.FixtureRequest) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        event_log = make_log(kind, Path(tmp), redis_url_for(kind, request))
        try:
            seen: set[int] = set()
            for batch in batches:
                result = event_log.append([click(f"e{i}") for i in batch])
                new = set(batch) - seen
                assert result.accepted == len(new)
                assert result.duplicates == len(batch) - len(new)
                seen |= new
            stored = [r.event_id for _, r in event_log.read()]
            assert sorted(stored) == sorted(f"e{i}" for i in seen)
            assert event_log.count() == len(seen)
        finally:
            event_log.close()


def test_export_round_trip_keeps_other_tables_and_is_idempotent(log: EventLog,
                                                                 tmp_path: Path) -> None:
    dataset_dir = tmp_path / "dataset"
    with DatasetWriter(dataset_dir, source="fixture") as writer:
        writer.table("articles").write_row({"article_id": "a1", "title": "Hello",
                                            "published_at": T0})
        writer.table("interactions").write_row(
            {"event_id": "old", "type": "click", "user_id": "u0", "article_id": "a1",
             "timestamp": T0})
    log.append([click("old"), click("e1"), impression("r1"),
                Interaction(event_id="d1", type=InteractionType.DWELL, user_id="u2",
                            article_id="a1", timestamp=T0, dwell_seconds=30.0,
                            request_id="r1")])
    first = log.export(dataset_dir)
    assert first.added == {"impressions": 1, "interactions": 2}  # "old" was already there
    second = log.export(dataset_dir)
    assert second.added == {"impressions": 0, "interactions": 0}

    ds = Dataset(dataset_dir)
    assert ds.source == "fixture"
    assert ds.read("articles")["article_id"].to_list() == ["a1"]
    interactions = ds.read("interactions").sort("event_id")
    assert interactions["event_id"].to_list() == ["d1", "e1", "old"]
    dwell = interactions.row(0, named=True)
    assert dwell["type"] == "dwell" and dwell["dwell_seconds"] == 30.0
    assert dwell["request_id"] == "r1" and dwell["timestamp"] == T0
    imp = ds.read("impressions").row(0, named=True)
    assert imp["article_ids"] == ["a1", "a2"] and imp["propensities"] == [0.5, 0.5]
    # every row validates back into the canonical record
    assert Impression.model_validate(imp) == impression("r1")


def test_export_creates_a_new_dataset(log: EventLog, tmp_path: Path) -> None:
    log.append([click("e1")])
    result = log.export(tmp_path / "fresh")
    assert result.total == {"impressions": 0, "interactions": 1}
    ds = Dataset(tmp_path / "fresh")
    assert ds.source == "eventlog" and ds.count("interactions") == 1 and ds.count("articles") == 0


def test_sqlite_log_survives_reopen(tmp_path: Path) -> None:
    with SQLiteEventLog(tmp_path / "ev.db") as first:
        first.append([click("e1"), click("e2")])
    with SQLiteEventLog(tmp_path / "ev.db") as second:
        assert second.append([click("e2"), click("e3")]).accepted == 1
        assert [r.event_id for _, r in second.read()] == ["e1", "e2", "e3"]


def test_open_event_log_urls(tmp_path: Path) -> None:
    relative = open_event_log(f"sqlite:///{tmp_path}/a.db")  # absolute: tmp_path starts with /
    assert isinstance(relative, SQLiteEventLog) and relative.path == tmp_path / "a.db"
    relative.close()
    bare = open_event_log(tmp_path / "b.db")
    assert isinstance(bare, SQLiteEventLog)
    bare.close()
    with pytest.raises(ConfigError, match="unknown scheme 'kafka'"):
        open_event_log("kafka://broker:9092")


@pytest.mark.redis
def test_open_event_log_redis_url_and_prefix(redis_server: str) -> None:
    from newsdesk.data.eventlog.redis_streams import RedisStreamEventLog
    from newsdesk.features.redis_store import RedisOnlineStore

    tag = f"t{uuid.uuid4().hex[:8]}"
    prefix = f"{tag}log:"  # named like the defaults: store "nd:", log "ndlog:"
    log = open_event_log(f"{redis_server}?prefix={prefix}")
    assert isinstance(log, RedisStreamEventLog)
    assert log.stream_key == f"{prefix}stream" and log.url == redis_server
    try:
        log.append([click("e1")])
        # clearing the online store (prefix "nd:") keeps the log ("ndlog:")
        RedisOnlineStore(redis_server, prefix=f"{tag}:").clear()
        assert open_event_log(redis_server).prefix == "ndlog:"
        with open_event_log(f"{redis_server}?prefix={prefix}") as again:  # a second replica
            assert [r.event_id for _, r in again.read()] == ["e1"]
            assert again.append([click("e1"), click("e2")]).accepted == 1
        assert log.count() == 2 and log.health()["events"] == 2
    finally:
        log.close()
    with pytest.raises(ConfigError, match="'prefix'"):
        open_event_log(f"{redis_server}?prefix=")


@pytest.mark.redis
def test_redis_log_unreachable_is_store_unavailable() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailable, match="redis event log"):
        open_event_log(f"redis://127.0.0.1:{port}/0")
