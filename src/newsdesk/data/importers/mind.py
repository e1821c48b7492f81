"""MIND (Microsoft News Dataset) folders: behaviors.tsv + news.tsv, train/dev or test.

behaviors.tsv  impression_id \\t user_id \\t time \\t history \\t impressions
               time "11/15/2019 8:55:22 AM"; history "N1 N2"; impressions "N3-1 N4-0"
               (test split: "N3 N4", no labels)
news.tsv       news_id \\t category \\t subcategory \\t title \\t abstract \\t url
               \\t title_entities \\t abstract_entities   (entities: JSON lists)

Mapping: one impression per behaviors line (request_id = impression id, surface front_page,
shown ids in order); one click per "-1" item (event_id "{impression_id}:{news_id}"); one
history per user (its first non-empty history). Entities are the WikidataIds (the Label when
an entity has none), deduplicated in order of appearance, title entities first.

MIND has no publication time: an article's `published_at` is the first impression time at which
it was shown or sat in a history; articles never referenced get the earliest impression time
(counted as `published_at_fallback` in the report). Hence behaviors.tsv is read first, keeping
only `news_id -> first time` in memory, then news.tsv is streamed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from newsdesk.data.importers.base import Importer, need
from newsdesk.data.importers.sink import ImportSink, iter_lines

BEHAVIOR_COLUMNS = {"request_id": "impression_id", "user_id": "user_id", "timestamp": "time",
                    "article_ids": "impressions", "article_id": "impressions",
                    "event_id": "impressions"}
NEWS_COLUMNS = {"article_id": "news_id"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time(text: str) -> datetime:
    """Parse MIND's "M/D/YYYY h:mm:ss AM" (taken as UTC); ValueError when malformed."""
    try:
        date, clock, half = text.split(" ")
        month, day, year = date.split("/")
        hh, mm, ss = clock.split(":")
        hour = int(hh)
    except ValueError:
        raise ValueError(f"'{text}' is not a MIND time like '11/15/2019 8:55:22 AM'") from None
    if half not in ("AM", "PM") or not 1 <= hour <= 12:
        raise ValueError(f"'{text}' is not a MIND time like '11/15/2019 8:55:22 AM'")
    hour = hour % 12 + (12 if half == "PM" else 0)
    return datetime(int(year), int(month), int(day), hour, int(mm), int(ss), tzinfo=UTC)


def format_time(ts: datetime) -> str:
    """The inverse of `parse_time` (used by tests and the benchmark to write MIND files)."""
    half = "PM" if ts.hour >= 12 else "AM"
    hour = ts.hour % 12 or 12
    return f"{ts.month}/{ts.day}/{ts.year} {hour}:{ts.minute:02d}:{ts.second:02d} {half}"


def parse_entities(text: str) -> list[str]:
    """WikidataIds (or Labels) of a MIND entity JSON list; ValueError when it is not one."""
    if not text.strip():
        return []
    try:
        items = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not a JSON list of entities: {exc}") from None
    if not isinstance(items, list):
        raise ValueError("not a JSON list of entities")
    out: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            raise ValueError("entity entries must be JSON objects")
        name = item.get("WikidataId") or item.get("Label")
        if isinstance(name, str) and name.strip():
            out.append(name.strip())
    return out


class MindImporter(Importer):
    kind = "mind"
    # a buffered slate row holds ~37 id strings and a history ~30: small parts bound memory
    rows_per_part = 20_000

    def input_files(self, src: Path) -> list[Path]:
        return [need(src, "behaviors.tsv", "MIND"), need(src, "news.tsv", "MIND")]

    def read(self, src: Path, sink: ImportSink) -> None:
        behaviors, news = self.input_files(src)
        first_seen = self._behaviors(behaviors, sink)
        earliest = min(first_seen.values(), default=EPOCH)
        fallback = self._news(news, sink, first_seen, earliest)
        # articles whose published_at is the earliest impression time (never referenced)
        sink.report.notes["published_at_fallback"] = fallback

    def _behaviors(self, path: Path, sink: ImportSink) -> dict[str, datetime]:
        first_seen: dict[str, datetime] = {}
        users_with_history: set[str] = set()
        name = path.name
        for number, text in iter_lines(path, sink):
            parts = text.split("\t")
            if len(parts) != 5:
                sink.reject(name, number, "(columns)",
                            f"expected 5 tab-separated columns, found {len(parts)}")
                continue
            imp_id, user, time_text, history_text, shown_text = (p.strip() for p in parts)
            try:
                ts = parse_time(time_text)
            except ValueError as exc:
                sink.reject(name, number, "time", str(exc))
                continue
            shown: list[str] = []
            clicked: list[str] = []
            bad = None
            for token in shown_text.split():
                news_id, sep, label = token.rpartition("-")
                if not sep:  # test split: no labels
                    shown.append(token)
                elif label == "1":
                    shown.append(news_id)
                    clicked.append(news_id)
                elif label == "0":
                    shown.append(news_id)
                else:
                    bad = f"'{token}': label must be 0 or 1 (as in 'N123-1')"
                    break
            if bad is not None:
                sink.reject(name, number, "impressions", bad)
                continue
            history = history_text.split()
            rows: list[tuple[str, dict[str, Any]]] = [("impressions", {
                "request_id": imp_id, "user_id": user, "timestamp": ts,
                "surface": "front_page", "article_ids": shown,
            })]
            rows.extend(("interactions", {
                "event_id": f"{imp_id}:{nid}", "type": "click", "user_id": user,
                "article_id": nid, "timestamp": ts, "request_id": imp_id,
            }) for nid in clicked)
            new_history = bool(history) and user not in users_with_history
            if new_history:
                rows.append(("histories", {"user_id": user, "article_ids": history, "as_of": ts}))
            if not sink.accept(rows, name, number, BEHAVIOR_COLUMNS):
                continue
            if new_history:
                users_with_history.add(user)
            for nid in (*shown, *history):
                seen = first_seen.get(nid)
                if seen is None or ts < seen:
                    first_seen[nid] = ts
        return first_seen

    def _news(self, path: Path, sink: ImportSink, first_seen: dict[str, datetime],
              earliest: datetime) -> int:
        fallback = 0
        name = path.name
        for number, text in iter_lines(path, sink):
            parts = text.split("\t")
            if not 4 <= len(parts) <= 8:
                sink.reject(name, number, "(columns)",
                            f"expected 8 tab-separated columns, found {len(parts)}")
                continue
            parts += [""] * (8 - len(parts))
            news_id, category, subcategory, title, abstract, url = (p.strip() for p in parts[:6])
            entities: list[str] = []
            bad = False
            for column, raw in (("title_entities", parts[6]), ("abstract_entities", parts[7])):
                try:
                    entities.extend(parse_entities(raw))
                except ValueError as exc:
                    sink.reject(name, number, column, str(exc))
                    bad = True
                    break
            if bad:
                continue
            published = first_seen.get(news_id)
            row = {
                "article_id": news_id, "title": title, "abstract": abstract,
                "category": category or "unknown", "subcategory": subcategory, "url": url,
                "entities": list(dict.fromkeys(entities)), "language": "en", "brand": "MIND",
                "published_at": published if published is not None else earliest,
            }
            if sink.accept([("articles", row)], name, number, NEWS_COLUMNS) and published is None:
                fallback += 1
        return fallback


def behaviors_line(impression_id: str, user_id: str, ts: datetime, history: list[str],
                   shown: list[str], clicked: set[str] | None) -> str:
    """One behaviors.tsv line (no newline); `clicked=None` writes the unlabeled test form."""
    if clicked is None:
        items = " ".join(shown)
    else:
        items = " ".join(f"{n}-{1 if n in clicked else 0}" for n in shown)
    return "\t".join([impression_id, user_id, format_time(ts), " ".join(history), items])


def news_line(news_id: str, category: str, subcategory: str, title: str, abstract: str,
              url: str, entities: list[tuple[str, str]]) -> str:
    """One news.tsv line (no newline); `entities` are (WikidataId, Label) title entities."""
    ents = [{"Label": label, "Type": "P", "WikidataId": qid, "Confidence": 1.0,
             "OccurrenceOffsets": [0], "SurfaceForms": [label]} for qid, label in entities]
    return "\t".join([news_id, category, subcategory, title, abstract, url,
                      orjson.dumps(ents).decode(), "[]"])
