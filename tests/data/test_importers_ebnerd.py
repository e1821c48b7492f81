"""EB-NeRD importer on small Parquet files with the real column types."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from newsdesk.data.dataset import Dataset
from newsdesk.data.importers import run_import
from newsdesk.errors import ImportFailed, InvalidInput

T = datetime(2023, 2, 23, 7, 45, 40)


def _behaviors(**overrides):
    data = {
        "impression_id": [1, 2, 3],
        "article_id": [None, 500, None],
        "impression_time": [T, T.replace(hour=9), T.replace(hour=10)],
        "read_time": [12.0, 30.0, 5.0],
        "article_ids_inview": [[100, 101, 102], [101, 103], [104]],
        "article_ids_clicked": [[101], [101, 103], [104]],
        "user_id": [7, 8, 7],
        "next_read_time": [40.0, 3.0, 100_000.0],
    }
    data.update(overrides)
    return pl.DataFrame(data, schema_overrides={
        "impression_id": pl.UInt32, "article_id": pl.Int32, "user_id": pl.UInt32,
        "article_ids_inview": pl.List(pl.Int32), "article_ids_clicked": pl.List(pl.Int32),
        "read_time": pl.Float32, "next_read_time": pl.Float32})


def _history():
    return pl.DataFrame({
        "user_id": [7, 8],
        "impression_time_fixed": [[T.replace(day=2), T.replace(day=3)], [T.replace(day=5)]],
        "article_id_fixed": [[90, 91], [92]],
        "read_time_fixed": [[1.0, 2.0], [3.0]],
    }, schema_overrides={"user_id": pl.UInt32, "article_id_fixed": pl.List(pl.Int32)})


def _articles():
    return pl.DataFrame({
        "article_id": [100, 101, 500],
        "title": ["Første", "Anden ", "Tredje"],
        "subtitle": ["s1", None, "s3"],
        "body": ["b", "b", "b"],
        "category_str": ["nyheder", "sport", None],
        "published_time": [T.replace(day=1)] * 3,
        "last_modified_time": [T.replace(day=2)] * 3,
        "ner_clusters": [["København"], [], None],
        "topics": [["Kriminalitet"], ["Sport", " "], []],
        "url": ["https://ekstrabladet.dk/1", "", ""],
    }, schema_overrides={"article_id": pl.Int32})


def _write(folder, behaviors, articles=None):
    folder.mkdir(parents=True, exist_ok=True)
    behaviors.write_parquet(folder / "behaviors.parquet")
    _history().write_parquet(folder / "history.parquet")
    if articles is not None:
        articles.write_parquet(folder / "articles.parquet")
    return folder


def test_ebnerd_mapping_without_articles(tmp_path):
    report = run_import("ebnerd", _write(tmp_path / "eb", _behaviors()), tmp_path / "out",
                        progress=False)
    ds = Dataset(tmp_path / "out")
    imps = ds.read("impressions").sort("request_id")
    assert imps["request_id"].to_list() == ["1", "2", "3"]
    assert imps["surface"].to_list() == ["front_page", "article_page", "front_page"]
    assert imps["article_ids"].to_list()[0] == ["100", "101", "102"]
    assert imps["timestamp"][0] == T.replace(tzinfo=UTC)

    inter = ds.read("interactions").sort("event_id")
    clicks = inter.filter(pl.col("type") == "click")
    assert clicks["event_id"].to_list() == ["1:101", "2:101", "2:103", "3:104"]
    dwell = inter.filter(pl.col("type") == "dwell")
    # single click -> next_read_time dwell; article page -> read_time dwell (unattributed);
    # two clicks -> no dwell (which one was read?); 100,000 s -> out of range
    assert dict(zip(dwell["event_id"], dwell["dwell_seconds"], strict=True)) == {
        "1:101:dwell": 40.0, "2:page:500": 30.0}
    assert dwell.filter(pl.col("event_id") == "2:page:500")["request_id"][0] is None
    assert report.notes["dwell_out_of_range"] == 1

    hist = ds.read("histories").sort("user_id")
    assert hist["article_ids"].to_list() == [["90", "91"], ["92"]]
    assert hist["as_of"][0] == T.replace(day=3, tzinfo=UTC)

    assert ds.count("articles") == 0
    assert report.notes["articles_file"] == "absent"
    # referenced: 100-104 in view, 500 read page, 90-92 history
    assert report.missing_article_ids == report.referenced_article_ids == 9


def test_ebnerd_articles(tmp_path):
    report = run_import("ebnerd", _write(tmp_path / "eb", _behaviors(), _articles()),
                        tmp_path / "out", progress=False)
    arts = Dataset(tmp_path / "out").read("articles").sort("article_id")
    assert arts["title"].to_list() == ["Første", "Anden", "Tredje"]
    assert arts["abstract"].to_list() == ["s1", "", "s3"]
    assert arts["category"].to_list() == ["nyheder", "sport", "unknown"]
    assert arts["entities"].to_list() == [["København"], [], []]
    assert arts["tags"].to_list() == [["Kriminalitet"], ["Sport"], []]
    assert set(arts["language"]) == {"da"}
    assert report.missing_article_ids == 6  # 102, 103, 104, 90, 91, 92


def test_ebnerd_bad_row_names_row_and_column(tmp_path):
    bad = _behaviors(user_id=[7, None, 7], article_ids_inview=[[100], [101], []])
    src = _write(tmp_path / "eb", bad)
    with pytest.raises(ImportFailed) as info:
        run_import("ebnerd", src, tmp_path / "out", progress=False)
    first = info.value.errors[0]
    assert (first.file, first.line, first.field) == ("behaviors.parquet", 2, "user_id")
    assert info.value.total_bad == 2
    assert not (tmp_path / "out" / "manifest.json").exists()

    report = run_import("ebnerd", src, tmp_path / "out", skip_invalid=True, progress=False)
    assert report.bad_by_field == {"behaviors.parquet:user_id": 1,
                                   "behaviors.parquet:article_ids_inview": 1}
    assert report.rows["impressions"] == 1


def test_ebnerd_missing_columns_and_files(tmp_path):
    src = _write(tmp_path / "eb", _behaviors().drop("impression_time"))
    with pytest.raises(InvalidInput, match="impression_time"):
        run_import("ebnerd", src, tmp_path / "out", progress=False)
    (src / "history.parquet").unlink()
    with pytest.raises(InvalidInput, match="history.parquet"):
        run_import("ebnerd", src, tmp_path / "out", progress=False)


def test_ebnerd_test_split_has_no_clicks(tmp_path):
    src = _write(tmp_path / "eb", _behaviors().drop("article_ids_clicked", "next_read_time"))
    report = run_import("ebnerd", src, tmp_path / "out", progress=False)
    inter = Dataset(tmp_path / "out").read("interactions")
    assert report.rows["impressions"] == 3
    assert inter["event_id"].to_list() == ["2:page:500"]  # only the article-page read time
