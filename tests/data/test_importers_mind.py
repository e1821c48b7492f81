"""MIND importer: mapping, publish-time rule, bad lines, --skip-invalid, idempotence, round trip."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.data.dataset import Dataset
from newsdesk.data.importers import run_import
from newsdesk.data.importers.mind import behaviors_line, news_line, parse_time
from newsdesk.errors import ImportFailed

T0 = datetime(2019, 11, 15, 8, 55, 22, tzinfo=UTC)

BEHAVIORS = [
    "1\tU1\t11/15/2019 8:55:22 AM\tN1 N2\tN3-1 N4-0 N5-1",
    "2\tU2\t11/15/2019 1:05:00 PM\t\tN4-0 N3-0",
    "3\tU1\t11/14/2019 12:00:01 AM\tN1 N2\tN4-1 N9-0",  # earlier time, same user
    "4\tU3\t11/16/2019 12:30:00 PM\tN2\tN6 N3",  # test split: no labels
]
NEWS = [
    news_line("N3", "news", "newsus", "Title three", "Abstract", "https://x/3",
              [("Q1", "Alpha"), ("Q2", "Beta")]),
    news_line("N4", "sports", "nfl", "Title four", "", "https://x/4", []),
    news_line("N7", "lifestyle", "food", "Never shown", "", "", [("", "OnlyLabel")]),
]


def write_mind(folder: Path, behaviors: list[str], news: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "behaviors.tsv").write_text("".join(f"{b}\n" for b in behaviors))
    (folder / "news.tsv").write_text("".join(f"{n}\n" for n in news))
    return folder


def test_parse_time_handles_noon_and_midnight():
    assert parse_time("11/15/2019 12:00:01 AM") == datetime(2019, 11, 15, 0, 0, 1, tzinfo=UTC)
    assert parse_time("11/15/2019 12:30:00 PM") == datetime(2019, 11, 15, 12, 30, tzinfo=UTC)
    assert parse_time("1/2/2019 1:05:09 PM") == datetime(2019, 1, 2, 13, 5, 9, tzinfo=UTC)
    for bad in ("2019-11-15 08:55:22", "11/15/2019 13:00:00 PM", "11/15/2019 8:55 AM"):
        with pytest.raises(ValueError):
            parse_time(bad)


def test_mind_mapping(tmp_path):
    src = write_mind(tmp_path / "mind", BEHAVIORS, NEWS)
    report = run_import("mind", src, tmp_path / "out", progress=False)
    ds = Dataset(tmp_path / "out")

    imps = ds.read("impressions").sort("request_id")
    assert imps["request_id"].to_list() == ["1", "2", "3", "4"]
    assert imps["article_ids"].to_list()[0] == ["N3", "N4", "N5"]
    assert imps["article_ids"].to_list()[3] == ["N6", "N3"]
    assert set(imps["surface"].to_list()) == {"front_page"}
    assert imps["timestamp"][0] == T0

    clicks = ds.read("interactions").sort("event_id")
    assert clicks["event_id"].to_list() == ["1:N3", "1:N5", "3:N4"]
    assert clicks["request_id"].to_list() == ["1", "1", "3"]
    assert set(clicks["type"].to_list()) == {"click"}

    hist = ds.read("histories").sort("user_id")
    assert hist["user_id"].to_list() == ["U1", "U3"]  # U1 once, U2 has no history
    assert hist["article_ids"].to_list()[0] == ["N1", "N2"]

    arts = ds.read("articles").sort("article_id")
    assert arts["article_id"].to_list() == ["N3", "N4", "N7"]
    assert arts["entities"].to_list() == [["Q1", "Q2"], [], ["OnlyLabel"]]
    assert set(arts["language"].to_list()) == {"en"} and set(arts["brand"].to_list()) == {"MIND"}
    published = dict(zip(arts["article_id"], arts["published_at"], strict=True))
    # N3 first shown at impression 1 (8:55 on the 15th); N4 first at impression 3 (the 14th)
    assert published["N3"] == T0
    assert published["N4"] == datetime(2019, 11, 14, 0, 0, 1, tzinfo=UTC)
    # N7 never referenced: earliest impression time, counted as a fallback
    assert published["N7"] == datetime(2019, 11, 14, 0, 0, 1, tzinfo=UTC)
    assert report.notes["published_at_fallback"] == 1

    assert report.rows == {"articles": 3, "impressions": 4, "interactions": 3, "histories": 2}
    # referenced: N1 N2 N3 N4 N5 N6 N9; catalog has N3 N4
    assert report.referenced_article_ids == 7
    assert report.missing_article_ids == 5
    assert report.missing_sample == ["N1", "N2", "N5", "N6", "N9"]
    assert "missing articles 5" in report.summary()
    assert ds.manifest["report"]["missing_article_ids"] == 5


def test_bad_line_fails_and_keeps_previous_dataset(tmp_path):
    out = tmp_path / "out"
    run_import("mind", write_mind(tmp_path / "good", BEHAVIORS, NEWS), out, progress=False)
    before = Dataset(out).read("impressions")

    bad = list(BEHAVIORS)
    bad[1] = "2\tU2\t2019-11-15 13:05:00\t\tN4-0 N3-0"
    with pytest.raises(ImportFailed) as info:
        run_import("mind", write_mind(tmp_path / "bad", bad, NEWS), out, progress=False)
    err = info.value.errors[0]
    assert (err.file, err.line, err.field) == ("behaviors.tsv", 2, "time")
    assert info.value.total_bad == 1
    assert "behaviors.tsv:2: field 'time'" in str(info.value)
    assert Dataset(out).read("impressions").equals(before)
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_validation_errors_name_the_source_column(tmp_path):
    long_id = "N" + "9" * 300  # longer than the 256-char id limit of the schema
    bad = [*BEHAVIORS, f"5\tU5\t11/15/2019 8:55:22 AM\t\t{long_id}-0"]
    with pytest.raises(ImportFailed) as info:
        run_import("mind", write_mind(tmp_path / "m", bad, NEWS), tmp_path / "o", progress=False)
    err = info.value.errors[0]
    assert (err.line, err.field) == (5, "impressions")
    assert "256" in err.message


def test_skip_invalid_counts_per_field(tmp_path):
    behaviors = [
        *BEHAVIORS,
        "5\tU5\tnot a time\t\tN3-0",
        "6\tU6\t11/15/2019 8:55:22 AM\t\tN3-7",
        "7\tU7\t11/15/2019 8:55:22 AM",
        "8\tU8\t11/15/2019 8:55:22 AM\t\t",  # nothing shown: article_ids must not be empty
        "9\tU9\t11/15/2019 9:00:00 AM\t\tN3-0 N10-1",  # fine
    ]
    news = [*NEWS, "N8\tnews\tx\tT\tA\tu\t{not json\t[]", "N9\tnews\tx\t\tA\tu\t[]\t[]"]
    src = write_mind(tmp_path / "m", behaviors, news)
    report = run_import("mind", src, tmp_path / "out", skip_invalid=True, progress=False)
    assert report.bad_rows == 6
    assert report.bad_by_field == {
        "behaviors.tsv:time": 1, "behaviors.tsv:impressions": 2,
        "behaviors.tsv:(columns)": 1, "news.tsv:title_entities": 1, "news.tsv:title": 1,
    }
    assert [(e.file, e.line) for e in report.errors] == [
        ("behaviors.tsv", 5), ("behaviors.tsv", 6), ("behaviors.tsv", 7), ("behaviors.tsv", 8),
        ("news.tsv", 4), ("news.tsv", 5)]
    assert report.rows["impressions"] == 5
    assert report.rows["articles"] == 3
    ds = Dataset(tmp_path / "out")
    assert "9:N10" in ds.read("interactions")["event_id"].to_list()
    assert "bad rows skipped 6" in report.summary()


def test_reimport_is_idempotent(tmp_path):
    src = write_mind(tmp_path / "m", BEHAVIORS, NEWS)
    out = tmp_path / "out"
    run_import("mind", src, out, progress=False)
    first = {t: Dataset(out).read(t) for t in ("articles", "impressions", "interactions",
                                               "histories")}
    run_import("mind", src, out, progress=False)
    for table, frame in first.items():
        assert Dataset(out).read(table).equals(frame), table


def test_duplicate_impression_ids_are_counted(tmp_path):
    src = write_mind(tmp_path / "m", [*BEHAVIORS, BEHAVIORS[0]], NEWS)
    report = run_import("mind", src, tmp_path / "out", progress=False)
    assert report.rows["impressions"] == 4
    assert report.duplicates == {"impressions": 1, "interactions": 2}


# -- round trip ---------------------------------------------------------------------------------
NEWS_IDS = [f"N{i}" for i in range(1, 40)]
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")),
                min_size=1, max_size=12)


@st.composite
def mind_world(draw):
    n_imps = draw(st.integers(1, 12))
    users = [f"U{i}" for i in range(draw(st.integers(1, 5)))]
    impressions = []
    for i in range(n_imps):
        shown = draw(st.lists(st.sampled_from(NEWS_IDS), min_size=1, max_size=6, unique=True))
        clicked = set(draw(st.lists(st.sampled_from(shown), max_size=3)))
        impressions.append({
            "id": str(1000 + i), "user": draw(st.sampled_from(users)),
            "ts": T0 + timedelta(seconds=draw(st.integers(0, 10 * 86_400))),
            "history": draw(st.lists(st.sampled_from(NEWS_IDS), max_size=5)),
            "shown": shown, "clicked": None if draw(st.booleans()) and not clicked else clicked,
        })
    news = draw(st.lists(st.sampled_from(NEWS_IDS), max_size=10, unique=True))
    titles = {nid: draw(_text) for nid in news}
    return impressions, titles


@settings(max_examples=30, deadline=None)
@given(mind_world())
def test_round_trip(world):
    impressions, titles = world
    with tempfile.TemporaryDirectory() as tmp:
        src = write_mind(
            Path(tmp) / "m",
            [behaviors_line(i["id"], i["user"], i["ts"], i["history"], i["shown"], i["clicked"])
             for i in impressions],
            [news_line(n, "cat", "sub", t, "", "", [("Q1", "L")]) for n, t in titles.items()],
        )
        run_import("mind", src, Path(tmp) / "out", progress=False)
        ds = Dataset(Path(tmp) / "out")

        imps = ds.read("impressions")
        assert sorted(zip(imps["request_id"], imps["user_id"], imps["timestamp"],
                          imps["article_ids"].to_list(), strict=True)) == sorted(
            (i["id"], i["user"], i["ts"], i["shown"]) for i in impressions)
        clicks = ds.read("interactions")
        assert sorted(clicks["event_id"]) == sorted(
            f"{i['id']}:{n}" for i in impressions for n in (i["clicked"] or ()))
        first_history = {}
        for i in impressions:
            if i["history"]:
                first_history.setdefault(i["user"], i["history"])
        hist = ds.read("histories")
        assert dict(zip(hist["user_id"], hist["article_ids"].to_list(), strict=True)) == \
            first_history
        arts = ds.read("articles")
        assert dict(zip(arts["article_id"], arts["title"], strict=True)) == {
            n: t.strip() for n, t in titles.items()}
        # published_at is the first time an article was shown or in a history
        for nid, published in zip(arts["article_id"], arts["published_at"], strict=True):
            seen = [i["ts"] for i in impressions if nid in i["shown"] or nid in i["history"]]
            assert published == (min(seen) if seen else min(i["ts"] for i in impressions))
        stats_frame = ds.scan("impressions").select(pl.len()).collect()
        assert stats_frame.item() == len(impressions)


def test_crlf_and_undecodable_lines(tmp_path):
    src = tmp_path / "m"
    write_mind(src, [], NEWS)
    lines = [b.encode() for b in BEHAVIORS[:2]] + [b"3\tU\xff\t11/15/2019 8:55:22 AM\t\tN3-0"]
    (src / "behaviors.tsv").write_bytes(b"\r\n".join(lines) + b"\r\n")
    report = run_import("mind", src, tmp_path / "out", skip_invalid=True, progress=False)
    assert report.rows["impressions"] == 2
    assert [(e.line, e.field) for e in report.errors] == [(3, "(encoding)")]
    imps = Dataset(tmp_path / "out").read("impressions").sort("request_id")
    assert imps["article_ids"].to_list()[1] == ["N4", "N3"]  # no stray "\r"
