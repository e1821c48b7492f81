"""Time-based splits and per-user top-K evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.evaluation.topk import (
    beyond_accuracy,
    evaluate_topk,
    global_time_split,
    per_user_temporal_split,
)

rows = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 30), st.integers(0, 50)),
                min_size=1, max_size=120)


def _frame(data: list[tuple[int, int, int]]) -> pl.DataFrame:
    return pl.DataFrame({"user_id": [f"u{u}" for u, _, _ in data],
                         "article_id": [f"i{i}" for _, i, _ in data],
                         "timestamp": [t for _, _, t in data]})


@settings(max_examples=150, deadline=None)
@given(rows)
def test_per_user_split_is_time_based_and_complete(data: list[tuple[int, int, int]]) -> None:
    df = _frame(data)
    train, test = per_user_temporal_split(df, 0.2)
    assert train.height + test.height == df.height
    for user in df["user_id"].unique():
        tr = train.filter(pl.col("user_id") == user)
        te = test.filter(pl.col("user_id") == user)
        n = tr.height + te.height
        if n >= 2:
            assert te.height == max(1, round(n * 0.2))
        else:
            assert te.height == 0
        if te.height and tr.height:  # no test interaction before the user's train cutoff
            assert te["timestamp"].min() >= tr["timestamp"].max()


def test_global_split_on_datetimes() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    df = pl.DataFrame({"user_id": ["a", "a", "b"], "article_id": ["x", "y", "z"],
                       "timestamp": [t0, t0 + timedelta(days=2), t0 + timedelta(days=1)]})
    train, test = global_time_split(df, t0 + timedelta(days=1))
    assert train["article_id"].to_list() == ["x"]
    assert sorted(test["article_id"].to_list()) == ["y", "z"]


def test_evaluate_topk_aligns_users_and_skips_those_without_positives() -> None:
    recs = {"u1": ["a", "b", "c"], "u2": ["x"], "u3": ["q"]}
    relevant = {"u1": {"b"}, "u2": {"y"}, "u3": set()}
    ev = evaluate_topk("sys", recs, relevant, k=2)
    assert ev.users == ["u1", "u2"]
    s = ev.summary()
    assert s["recall@2"] == 0.5 and s["hit@2"] == 0.5 and s["users"] == 2.0
    ba = beyond_accuracy(recs, catalog_size=10, popularity={"a": 0.5, "b": 0.5, "x": 0.1}, k=2)
    assert ba["coverage"] == 0.4  # a, b, x, q
