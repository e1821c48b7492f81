"""Generic importer: JSONL / CSV / Parquet with a YAML column mapping."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.data.dataset import Dataset
from newsdesk.data.importers import run_import
from newsdesk.errors import ConfigError, ImportFailed, InvalidInput

MAPPING = """
tables:
  articles:
    file: articles.jsonl
    columns: {id: article_id, headline: title, teaser: abstract, section: category,
              keywords: tags, published: published_at}
    defaults: {language: da, brand: Example}
  interactions:
    file: events.csv
    list_separator: "|"
    columns: {event: event_id, kind: type, member: user_id, item: article_id,
              ts_ms: timestamp, seconds: dwell_seconds}
    timestamps: {unit: ms}
  impressions:
    file: slates.parquet
    columns: {rid: request_id, uid: user_id, at: timestamp, items: article_ids}
"""


def _write(folder: Path, events: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mapping.yaml").write_text(MAPPING)
    articles = [
        {"id": 1, "headline": " Hello ", "teaser": "t", "section": "news",
         "keywords": ["a", "b"], "published": "2024-03-01T10:00:00Z", "ignored": 5},
        {"id": "2", "headline": "World", "published": "2024-03-01 11:00:00"},
    ]
    (folder / "articles.jsonl").write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    (folder / "events.csv").write_text(events or (
        "event,kind,member,item,ts_ms,seconds\n"
        "e1,click,u1,1,1709287200000,\n"
        'e2,dwell,u1,1,1709287260000,"12.5"\n'
        "e3,click,u2,9,1709287300000,\n"))
    pl.DataFrame({
        "rid": ["r1"], "uid": ["u1"], "at": [datetime(2024, 3, 1, 10, 1)],
        "items": [["1", "2"]],
    }).write_parquet(folder / "slates.parquet")
    return folder


def test_generic_import(tmp_path):
    src = _write(tmp_path / "g")
    report = run_import("generic", src, tmp_path / "out", progress=False)  # mapping.yaml found
    ds = Dataset(tmp_path / "out")
    arts = {r["article_id"]: r for r in ds.read("articles").to_dicts()}
    assert arts["1"]["title"] == "Hello" and arts["1"]["tags"] == ["a", "b"]
    assert arts["1"]["language"] == "da" and arts["2"]["brand"] == "Example"
    assert arts["1"]["published_at"] == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert arts["2"]["published_at"] == datetime(2024, 3, 1, 11, tzinfo=UTC)
    inter = ds.read("interactions").sort("event_id").to_dicts()
    assert inter[0]["timestamp"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    assert inter[1]["type"] == "dwell" and inter[1]["dwell_seconds"] == 12.5
    imps = ds.read("impressions").to_dicts()
    assert imps[0]["article_ids"] == ["1", "2"]
    assert imps[0]["timestamp"] == datetime(2024, 3, 1, 10, 1, tzinfo=UTC)
    assert report.missing_sample == ["9"]


def test_generic_bad_rows_name_source_columns(tmp_path):
    events = ("event,kind,member,item,ts_ms,seconds\n"
              "e1,click,u1,1,1709287200000,\n"
              "e2,like,u1,1,1709287260000,\n"
              "e3,dwell,u1,1,1709287260000,\n"
              "e4,click,u1,1,yesterday,\n"
              "e5,click,u1\n")
    src = _write(tmp_path / "g", events)
    with pytest.raises(ImportFailed) as info:
        run_import("generic", src, tmp_path / "out", progress=False)
    err = info.value.errors[0]
    assert (err.file, err.line, err.field) == ("events.csv", 3, "kind")
    report = run_import("generic", src, tmp_path / "out", skip_invalid=True, progress=False)
    assert report.bad_by_field == {"events.csv:kind": 1, "events.csv:seconds": 1,
                                   "events.csv:ts_ms": 1, "events.csv:(columns)": 1}
    assert report.rows["interactions"] == 1


def test_generic_mapping_errors(tmp_path):
    src = _write(tmp_path / "g")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tables:\n  articles:\n    file: articles.jsonl\n    columns: {id: idd}\n")
    with pytest.raises(ConfigError, match=r"columns\.id: 'idd' is not a field of articles"):
        run_import("generic", src, tmp_path / "out", progress=False, mapping=bad)
    bad.write_text("tables:\n  events:\n    file: x.csv\n")
    with pytest.raises(ConfigError, match="unknown table 'events'"):
        run_import("generic", src, tmp_path / "out", progress=False, mapping=bad)
    with pytest.raises(InvalidInput, match="--mapping"):
        run_import("generic", src / "articles.jsonl", tmp_path / "out", progress=False)


def test_generic_single_file_with_format(tmp_path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  histories:\n    format: jsonl\n"
                       "    columns: {u: user_id, h: article_ids, t: as_of}\n"
                       "    timestamps: {format: '%d/%m/%Y'}\n")
    data = tmp_path / "hist.txt"
    data.write_text('{"u": "x", "h": ["1", "2"], "t": "02/03/2024"}\nnot json\n')
    with pytest.raises(ImportFailed, match=r"hist.txt:2: field '\(json\)'"):
        run_import("generic", data, tmp_path / "out", progress=False, mapping=mapping)
    report = run_import("generic", data, tmp_path / "out", progress=False, mapping=mapping,
                        skip_invalid=True)
    assert report.rows["histories"] == 1
    hist = Dataset(tmp_path / "out").read("histories").to_dicts()
    assert hist[0]["as_of"] == datetime(2024, 3, 2, tzinfo=UTC)


_ids = st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_ids, _ids, st.integers(0, 2_000_000_000),
                          st.one_of(st.none(), st.floats(0, 5))),
                min_size=1, max_size=20, unique_by=lambda t: (t[0], t[1])))
def test_generic_jsonl_round_trip(events):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "mapping.yaml").write_text(
            "tables:\n  interactions:\n    file: e.jsonl\n    timestamps: {unit: s}\n"
            "    columns: {id: event_id, u: user_id, a: article_id, t: timestamp, r: rating}\n"
            "    defaults: {type: click}\n")
        lines = [json.dumps({"id": f"{u}:{a}", "u": u, "a": a, "t": t, "r": r})
                 for u, a, t, r in events]
        (folder / "e.jsonl").write_text("\n".join(lines) + "\n")
        run_import("generic", folder, folder / "out", progress=False)
        back = Dataset(folder / "out").read("interactions").sort("event_id")
        expected = sorted((f"{u}:{a}", u, a, datetime.fromtimestamp(t, UTC), r)
                          for u, a, t, r in events)
        assert list(zip(back["event_id"], back["user_id"], back["article_id"],
                        back["timestamp"], back["rating"], strict=True)) == expected
