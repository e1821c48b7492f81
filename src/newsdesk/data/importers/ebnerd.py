"""EB-NeRD (Ekstra Bladet, RecSys Challenge 2024): behaviors / history / articles Parquet files.

behaviors.parquet  impression_id, impression_time, user_id, article_ids_inview (list),
                   article_ids_clicked (list; absent in the test split), article_id (the
                   article page the impression was on; null on the front page), read_time
                   (seconds on that page), next_read_time (seconds on the clicked article)
history.parquet    user_id, article_id_fixed (list), impression_time_fixed (list), ...
articles.parquet   optional: article_id, title, subtitle, body, category_str, url,
                   published_time, last_modified_time, ner_clusters, topics

Mapping: one impression per behaviors row (surface "front_page" or "article_page"); one click
per clicked id (event_id "{impression_id}:{article_id}", attributed to the impression); dwell
events where the log has a meaningful duration: `next_read_time` for the single clicked article
of an impression ("{impression_id}:{article_id}:dwell") and `read_time` for the article page the
impression was shown on ("{impression_id}:page:{article_id}", unattributed). Durations outside
0..86,400 s are not events (counted in the report as `dwell_out_of_range`). Without
articles.parquet no articles are written; every referenced id is then reported missing.
Rows are read in Arrow batches; line numbers in errors are 1-based row numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from newsdesk.data.importers.base import Importer, need
from newsdesk.data.importers.sink import ImportSink, iter_parquet
from newsdesk.data.importers.validate import as_id, as_utc

BEHAVIOR_COLUMNS = {"request_id": "impression_id", "user_id": "user_id",
                    "timestamp": "impression_time", "article_ids": "article_ids_inview",
                    "event_id": "article_ids_clicked", "article_id": "article_ids_clicked",
                    "dwell_seconds": "next_read_time"}
HISTORY_COLUMNS = {"article_ids": "article_id_fixed", "as_of": "impression_time_fixed"}
ARTICLE_COLUMNS = {"abstract": "subtitle", "category": "category_str",
                   "published_at": "published_time", "updated_at": "last_modified_time",
                   "entities": "ner_clusters", "tags": "topics"}
MAX_DWELL = 86_400.0


def _ids(values: Any) -> Any:
    return [as_id(v) for v in values] if isinstance(values, list) else values


class EbnerdImporter(Importer):
    kind = "ebnerd"

    def input_files(self, src: Path) -> list[Path]:
        files = [need(src, "behaviors.parquet", "EB-NeRD"), need(src, "history.parquet", "EB-NeRD")]
        if (src / "articles.parquet").is_file():
            files.append(src / "articles.parquet")
        return files

    def read(self, src: Path, sink: ImportSink) -> None:
        files = self.input_files(src)
        if len(files) == 3:
            self._articles(files[2], sink)
        sink.report.notes["articles_file"] = "articles.parquet" if len(files) == 3 else "absent"
        out_of_range = self._behaviors(files[0], sink)
        sink.report.notes["dwell_out_of_range"] = out_of_range
        self._history(files[1], sink)

    def _behaviors(self, path: Path, sink: ImportSink) -> int:
        out_of_range = 0
        rows_iter = iter_parquet(
            path, sink, ["impression_id", "impression_time", "user_id", "article_ids_inview"],
            ["article_ids_clicked", "article_id", "read_time", "next_read_time"])
        for number, r in rows_iter:
            imp = as_id(r["impression_id"])
            user = as_id(r["user_id"])
            ts = as_utc(r["impression_time"])
            page = as_id(r.get("article_id"))
            clicked = _ids(r.get("article_ids_clicked") or [])
            rows: list[tuple[str, dict[str, Any]]] = [("impressions", {
                "request_id": imp, "user_id": user, "timestamp": ts,
                "surface": "front_page" if page is None else "article_page",
                "article_ids": _ids(r["article_ids_inview"]),
            })]
            rows.extend(("interactions", {
                "event_id": f"{imp}:{aid}", "type": "click", "user_id": user, "article_id": aid,
                "timestamp": ts, "request_id": imp,
            }) for aid in clicked)
            for event_id, aid, seconds, request in (
                (f"{imp}:{clicked[0]}:dwell" if len(clicked) == 1 else "",
                 clicked[0] if len(clicked) == 1 else None, r.get("next_read_time"), imp),
                (f"{imp}:page:{page}", page, r.get("read_time"), None),
            ):
                if aid is None or seconds is None:
                    continue
                if not 0.0 <= float(seconds) <= MAX_DWELL:
                    out_of_range += 1
                    continue
                rows.append(("interactions", {
                    "event_id": event_id, "type": "dwell", "user_id": user, "article_id": aid,
                    "timestamp": ts, "request_id": request, "dwell_seconds": float(seconds),
                }))
            sink.accept(rows, path.name, number, BEHAVIOR_COLUMNS)
        return out_of_range

    def _history(self, path: Path, sink: ImportSink) -> None:
        rows_iter = iter_parquet(path, sink, ["user_id", "article_id_fixed"],
                              ["impression_time_fixed"])
        for number, r in rows_iter:
            times = [t for t in (r.get("impression_time_fixed") or []) if t is not None]
            sink.accept([("histories", {
                "user_id": as_id(r["user_id"]),
                "article_ids": _ids(r["article_id_fixed"] or []),
                "as_of": as_utc(max(times)) if times else None,
            })], path.name, number, HISTORY_COLUMNS)

    def _articles(self, path: Path, sink: ImportSink) -> None:
        optional = ["subtitle", "body", "category_str", "url", "last_modified_time",
                    "ner_clusters", "topics"]
        rows_iter = iter_parquet(path, sink, ["article_id", "title", "published_time"], optional)
        for number, r in rows_iter:
            row = {
                "article_id": as_id(r["article_id"]), "title": _strip(r["title"]),
                "abstract": _strip(r.get("subtitle")), "body": _strip(r.get("body")),
                "category": _strip(r.get("category_str")) or "unknown",
                "url": _strip(r.get("url")), "entities": _strings(r.get("ner_clusters")),
                "tags": _strings(r.get("topics")), "language": "da", "brand": "Ekstra Bladet",
                "published_at": as_utc(r["published_time"]),
                "updated_at": as_utc(r.get("last_modified_time")),
            }
            sink.accept([("articles", row)], path.name, number, ARTICLE_COLUMNS)


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strings(values: Any) -> list[str]:
    # entity / topic lists may hold nulls or blanks; those are not entities
    if not isinstance(values, list):
        return []
    return list(dict.fromkeys(v.strip() for v in values if isinstance(v, str) and v.strip()))
