from datetime import UTC, datetime

import numpy as np
import pytest

from newsdesk.data.schema import Interaction, InteractionType
from newsdesk.features import dismissals
from newsdesk.features.dismissals import MAX_KEPT, apply_dismissals, demotion, read_dismissals
from newsdesk.features.memory_store import MemoryOnlineStore


def dismiss(user: str, article: str, ts: float, reason: str | None = None) -> Interaction:
    return Interaction(event_id=f"d-{user}-{article}-{ts}", type=InteractionType.DISMISS,
                       user_id=user, article_id=article, reason=reason,
                       timestamp=datetime.fromtimestamp(ts, UTC))


def test_record_events_keeps_dismissals_merged_newest_first_and_bounded() -> None:
    store = MemoryOnlineStore()
    store.record_events([dismiss("u", "a1", 100.0, "not_interested"), dismiss("u", "a2", 200.0)])
    store.record_events([dismiss("u", "a1", 300.0, "seen_it")])  # again: the newest counts
    store.record_events([dismiss("u", "a1", 50.0)])  # a replayed older one changes nothing
    got = read_dismissals(store, "u")
    assert [(d.article_id, d.ts, d.reason) for d in got] == [
        ("a1", 300.0, "seen_it"), ("a2", 200.0, None)]
    assert read_dismissals(store, "other") == [] and store.user_clicks("u") == []
    apply_dismissals(store, [dismiss("u", f"b{i}", 1000.0 + i) for i in range(MAX_KEPT + 5)])
    kept = read_dismissals(store, "u")
    assert len(kept) == MAX_KEPT and kept[0].article_id == f"b{MAX_KEPT + 4}"


def test_a_damaged_marker_reads_as_none() -> None:
    store = MemoryOnlineStore()
    store.write_marker(dismissals.PREFIX + "u", "{not json")
    assert read_dismissals(store, "u") == []


def test_reason_is_bounded() -> None:
    with pytest.raises(ValueError, match="reason"):
        dismiss("u", "a", 1.0, "x" * 201)


def test_demotion_follows_category_and_embedding_and_fades() -> None:
    emb = np.eye(4, dtype=np.float32)  # candidate 0 is the dismissed item's twin
    scores = np.array([1.0, 2.0, 3.0, 4.0])
    category = np.array([0, 1, 1, 2])
    d_cat, d_emb = np.array([1]), emb[:1]  # dismissed: category 1, embedding of candidate 0
    fresh = demotion(scores, category, emb, d_cat, d_emb, np.array([0.0]))
    sd = float(np.std(scores))
    assert fresh[0] == pytest.approx(2 * sd)  # the same content: the full penalty
    assert fresh[1] == pytest.approx(sd) and fresh[2] == pytest.approx(sd)
    assert fresh[3] == 0.0  # another category, orthogonal content
    old = demotion(scores, category, emb, d_cat, d_emb,
                   np.array([dismissals.DEMOTION_HALF_LIFE_H]))
    assert old == pytest.approx(fresh / 2)
    assert not demotion(scores, category, emb, d_cat[:0], d_emb[:0], np.zeros(0)).any()


def test_redis_store_shares_dismissals_between_replicas(redis_server: str) -> None:
    from newsdesk.features.dismissals import forget_dismissals
    from newsdesk.features.redis_store import RedisOnlineStore

    a = RedisOnlineStore(redis_server, prefix="dismisstest:")
    b = RedisOnlineStore(redis_server, prefix="dismisstest:")
    a.record_events([dismiss("u", "a1", 100.0, "seen_it")])
    assert [(d.article_id, d.reason) for d in read_dismissals(b, "u")] == [("a1", "seen_it")]
    b.record_events([dismiss("u", "a2", 200.0)])
    assert [d.article_id for d in read_dismissals(a, "u")] == ["a2", "a1"]
    forget_dismissals(a, "u")
    assert read_dismissals(b, "u") == []
