"""Small synthetic news datasets written with the real DatasetWriter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsdesk.data.dataset import Dataset, DatasetWriter

T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)


def write_news_dataset(root: Path, impressions: list[tuple[str, str, float, list[str], list[str]]],
                       articles: dict[str, float], category: dict[str, str] | None = None
                       ) -> Dataset:
    """impressions: (request_id, user, minutes after T0, shown ids, clicked ids); clicks are
    logged at the impression's own timestamp, as the MIND importer does.
    articles: id -> publish time in minutes after T0."""
    with DatasetWriter(root, source="test") as w:
        for aid, minutes in articles.items():
            w.table("articles").write_row({
                "article_id": aid, "title": f"title {aid}", "abstract": "", "body": "",
                "category": (category or {}).get(aid, "news"), "subcategory": "",
                "entities": [], "language": "en", "url": "", "brand": "", "tags": [],
                "published_at": T0 + timedelta(minutes=minutes), "updated_at": None,
                "expires_at": None})
        for rid, user, minutes, shown, clicked in impressions:
            ts = T0 + timedelta(minutes=minutes)
            w.table("impressions").write_row({
                "request_id": rid, "user_id": user, "timestamp": ts, "surface": "front_page",
                "article_ids": shown, "propensities": None, "experiment": None, "variant": None})
            for aid in clicked:
                w.table("interactions").write_row({
                    "event_id": f"{rid}-{aid}", "type": "click", "user_id": user,
                    "article_id": aid, "timestamp": ts, "request_id": rid,
                    "dwell_seconds": None, "rating": None})
    return Dataset(root)


@pytest.fixture
def leak_dataset(tmp_path: Path) -> Dataset:
    """Six impressions; every click lands at the impression's own second.

    r1..r4 each click one article never clicked before; r5 and r6 show earlier-clicked articles,
    whose past clicks must be visible. a9 is published after r1.
    """
    imps = [
        ("r1", "u1", 0, ["a0", "a1", "a2", "a3"], ["a1"]),
        ("r2", "u2", 0, ["a2", "a3", "a4", "a5"], ["a4"]),  # same second as r1
        ("r3", "u3", 10, ["a5", "a6", "a7", "a2"], ["a7"]),
        ("r4", "u1", 20, ["a8", "a9", "a0", "a3"], ["a9"]),
        ("r5", "u4", 30, ["a1", "a3", "a5"], ["a3"]),  # a1 clicked once before
        ("r6", "u5", 40, ["a4", "a7", "a9", "a3", "a8"], []),
    ]
    articles = {f"a{i}": -60.0 for i in range(9)} | {"a9": 5.0}
    return write_news_dataset(tmp_path / "ds", imps, articles)
