"""The dataset directory: atomic, idempotent writes and schema-true reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from newsdesk.data import Article, Dataset, DatasetWriter, Impression, Interaction
from newsdesk.data.stats import dataset_stats
from newsdesk.errors import DatasetError


def _article(i: int) -> dict:
    return {
        "article_id": f"a{i}", "title": f"Title {i}", "abstract": "", "body": "",
        "category": "news", "subcategory": "", "entities": [], "language": "en", "url": "",
        "published_at": datetime(2026, 1, 1, i % 24, tzinfo=UTC), "updated_at": None,
        "expires_at": None, "brand": "b", "tags": ["x"],
    }


def _write(root, n_articles=5, source="test"):
    with DatasetWriter(root, source=source, rows_per_part=2) as w:
        for i in range(n_articles):
            w.table("articles").write_row(_article(i))
        w.table("articles").write_row(_article(0))  # duplicate key is skipped and counted
        w.table("impressions").write_row({
            "request_id": "r1", "user_id": "u1",
            "timestamp": datetime(2026, 1, 2, tzinfo=UTC), "surface": "front_page",
            "article_ids": ["a0", "a1", "zz"], "propensities": None,
            "experiment": None, "variant": None,
        })
        w.table("interactions").write_row({
            "event_id": "e1", "type": "click", "user_id": "u1", "article_id": "a1",
            "timestamp": datetime(2026, 1, 2, 0, 1, tzinfo=UTC), "request_id": "r1",
            "dwell_seconds": None, "rating": None,
        })


def test_write_read_counts_and_parts(tmp_path):
    _write(tmp_path / "ds")
    ds = Dataset(tmp_path / "ds")
    assert ds.count("articles") == 5
    assert len(ds.files("articles")) == 3  # rows_per_part=2 streams into parts
    assert ds.manifest["tables"]["articles"]["duplicates_skipped"] == 1
    assert ds.count("histories") == 0 and ds.read("histories").columns == [
        "user_id", "article_ids", "as_of"]
    assert sorted(ds.read("articles")["article_id"]) == [f"a{i}" for i in range(5)]


def test_rewrite_replaces_previous_dataset(tmp_path):
    _write(tmp_path / "ds", n_articles=5)
    _write(tmp_path / "ds", n_articles=3)
    ds = Dataset(tmp_path / "ds")
    assert ds.count("articles") == 3
    assert not [p for p in (tmp_path / "ds").iterdir() if p.name.startswith(".")]


def test_failed_write_keeps_previous_dataset(tmp_path):
    _write(tmp_path / "ds", n_articles=4)
    with pytest.raises(RuntimeError), DatasetWriter(tmp_path / "ds", source="x") as w:
        w.table("articles").write_row(_article(9))
        raise RuntimeError("boom")
    assert Dataset(tmp_path / "ds").count("articles") == 4


def test_missing_or_foreign_directory_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not a newsdesk dataset"):
        Dataset(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(DatasetError, match="format"):
        Dataset(tmp_path)


def test_stats(tmp_path):
    _write(tmp_path / "ds")
    s = dataset_stats(tmp_path / "ds")
    assert s["impressions"] == 1 and s["clicks"] == 1 and s["users"] == 1
    assert s["ctr"] == pytest.approx(1 / 3)
    assert s["missing_articles"] == 1  # "zz" is shown but not in the catalog
    assert s["catalog_coverage"] == pytest.approx(2 / 3)


def test_records_name_the_bad_field():
    with pytest.raises(ValidationError) as err:
        Article(article_id="a", title="t", published_at="not a date")
    assert err.value.errors()[0]["loc"] == ("published_at",)
    with pytest.raises(ValidationError, match="propensities"):
        Impression(request_id="r", user_id="u", timestamp=datetime.now(UTC),
                   article_ids=["a", "b"], propensities=[0.5])
    with pytest.raises(ValidationError, match="dwell_seconds"):
        Interaction(event_id="e", type="dwell", user_id="u", article_id="a",
                    timestamp=datetime.now(UTC))


def test_naive_timestamps_are_utc():
    a = Article(article_id="a", title="t", published_at=datetime(2026, 1, 1, 12))
    assert a.published_at.tzinfo is UTC and a.published_at.hour == 12
