"""The importers' fast validation path must agree with the pydantic records of schema.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from newsdesk.data.importers.validate import DEFAULTS, fast_ok, validate
from newsdesk.data.schema import RECORDS

# values that are sometimes valid, sometimes not, sometimes valid only after normalisation
ids = st.one_of(st.sampled_from(["a", "N1", " padded ", "", "x" * 256, "x" * 257]),
                st.text(min_size=0, max_size=5))
times = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),  # naive: pydantic takes it as UTC
    st.datetimes(timezones=st.just(timezone(timedelta(hours=2)))),
    st.sampled_from(["2020-01-01T00:00:00Z", "nope", None]),
)
floats = st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 100_000))
texts = st.one_of(st.text(max_size=6), st.none(), st.sampled_from([" t ", "title"]))

rows = {
    "articles": st.fixed_dictionaries({
        "article_id": ids, "title": texts, "published_at": times,
        "abstract": texts, "language": st.sampled_from(["en", "da", "e", "toolonglang", " en"]),
        "entities": st.lists(ids, max_size=3), "expires_at": times,
    }),
    "impressions": st.fixed_dictionaries({
        "request_id": ids, "user_id": ids, "timestamp": times,
        "article_ids": st.lists(ids, max_size=4),
        "propensities": st.one_of(st.none(), st.lists(st.floats(0, 2), max_size=4)),
    }),
    "interactions": st.fixed_dictionaries({
        "event_id": ids, "type": st.sampled_from(["click", "dwell", "share", "like"]),
        "user_id": ids, "article_id": ids, "timestamp": times, "request_id": texts,
        "dwell_seconds": floats, "rating": floats,
    }),
    "histories": st.fixed_dictionaries({
        "user_id": ids, "article_ids": st.lists(ids, max_size=4), "as_of": times,
    }),
}


def _pydantic(table, row):
    given_row = {k: v for k, v in row.items() if v is not None}
    try:
        return RECORDS[table].model_validate(given_row).model_dump()
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(sorted(rows)).flatmap(lambda t: st.tuples(st.just(t), rows[t])))
def test_validate_agrees_with_pydantic(case):
    table, row = case
    expected = _pydantic(table, row)
    got, problems = validate(table, row)
    if expected is None:
        assert got is None and problems and all(f and m for f, m in problems)
    else:
        assert problems == []
        assert got == expected
        assert all(type(got[k]) is type(v) or v is None for k, v in expected.items()
                   if k != "type")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(rows)).flatmap(lambda t: st.tuples(st.just(t), rows[t])))
def test_fast_path_only_accepts_rows_pydantic_leaves_unchanged(case):
    table, row = case
    full = {**DEFAULTS[table], **row}
    if fast_ok(table, full):
        dumped = _pydantic(table, row)
        assert dumped is not None
        assert {k: (str(v) if k == "type" else v) for k, v in dumped.items()} == full


def test_error_fields_are_named():
    now = datetime.now(UTC)
    _, problems = validate("interactions", {
        "event_id": "e", "type": "dwell", "user_id": "u", "article_id": "a", "timestamp": now})
    assert problems[0][0] == "dwell_seconds"
    _, problems = validate("articles", {
        "article_id": "a", "title": "t", "published_at": now,
        "expires_at": now - timedelta(days=1)})
    assert problems[0][0] == "expires_at"
    _, problems = validate("impressions", {
        "request_id": "r", "user_id": "u", "timestamp": now, "article_ids": ["a", ""]})
    assert problems[0][0] == "article_ids" and "item 1" in problems[0][1]
