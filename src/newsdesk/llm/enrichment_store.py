"""Enrichment as a dataset table: `DIR/enrichment/part-*.parquet`, one row per article.

Beside the canonical tables of a dataset directory (batch `newsdesk enrich DATASET`), or in
the serving state dir (enrichment on upsert). Writers append small parts atomically (temp file
+ rename), so a crash never leaves half a part and several writers never collide; readers keep
the newest row per article id. `compact()` rewrites the parts as one. Lists are Parquet lists,
so the table reads straight into Polars for ranking features.

A stored row is reused when its (content_hash, prompt_version, model) equals the key of the
article now: the same text, prompt and model give the same enrichment.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from newsdesk.llm.enrichment import EnrichmentRecord

TABLE = "enrichment"
SCHEMA = pa.schema([
    ("article_id", pa.string()), ("content_hash", pa.string()),
    ("prompt_version", pa.string()), ("model", pa.string()), ("summary", pa.string()),
    ("topics", pa.list_(pa.string())), ("keywords", pa.list_(pa.string())),
    ("entities", pa.list_(pa.string())), ("entity_types", pa.list_(pa.string())),
    ("timeliness", pa.string()), ("brand_safety", pa.string()),
    ("enriched_at", pa.float64()), ("latency_s", pa.float64()),
    ("completion_tokens", pa.int64()),
])


class EnrichmentStore:
    """The enrichment table under `root` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.directory = Path(root) / TABLE
        self._lock = threading.Lock()

    def parts(self) -> list[Path]:
        return sorted(self.directory.glob("part-*.parquet")) if self.directory.is_dir() else []

    def write(self, records: Iterable[EnrichmentRecord]) -> int:
        rows = [r.row() for r in records]
        if not rows:
            return 0
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.directory / f".{name}.tmp"
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
        os.replace(tmp, self.directory / name)
        return len(rows)

    def read(self) -> pl.DataFrame:
        """The newest row per article id (an empty frame of the schema when none)."""
        parts = self.parts()
        if not parts:
            return pl.from_arrow(SCHEMA.empty_table())  # type: ignore[return-value]
        frame = pl.concat([pl.read_parquet(p) for p in parts], how="vertical")
        return (frame.sort("enriched_at").unique("article_id", keep="last", maintain_order=True)
                .sort("article_id"))

    def keys(self) -> dict[str, tuple[str, str, str]]:
        """article id -> (content_hash, prompt_version, model) of its stored enrichment."""
        frame = self.read()
        return {a: (h, p, m) for a, h, p, m in frame.select(
            "article_id", "content_hash", "prompt_version", "model").iter_rows()}

    def compact(self) -> None:
        with self._lock:
            parts = self.parts()
            if len(parts) <= 1:
                return
            frame = self.read()
            name = f"part-{time.time_ns():020d}-compact.parquet"
            tmp = self.directory / f".{name}.tmp"
            frame.write_parquet(tmp)
            os.replace(tmp, self.directory / name)
            for part in parts:
                part.unlink(missing_ok=True)
