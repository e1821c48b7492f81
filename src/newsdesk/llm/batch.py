"""`newsdesk enrich DATASET`: enrich a dataset's articles in batch into its `enrichment` table.

Articles whose stored row has the same (content hash, prompt version, model) are skipped, so a
re-run (or a run after `--limit`) continues where the last one stopped and a new prompt version
or model redoes everything. Results are written every `flush_every` articles (a crash loses at
most that many), invalid answers are dropped and counted, and the parts are compacted at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from newsdesk.data.dataset import Dataset
from newsdesk.data.schema import Article
from newsdesk.errors import LLMCircuitOpen, LLMDisabled, LLMError, LLMInvalidOutput
from newsdesk.llm.enrichment import Enricher, EnrichmentRecord
from newsdesk.llm.enrichment_store import EnrichmentStore


@dataclass
class EnrichReport:
    considered: int = 0
    enriched: int = 0
    skipped: int = 0  # already enriched with the same key
    dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def articles_per_s(self) -> float:
        return self.enriched / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        return {"considered": self.considered, "enriched": self.enriched,
                "skipped": self.skipped, "dropped": dict(self.dropped),
                "seconds": round(self.seconds, 2),
                "articles_per_s": round(self.articles_per_s, 4)}


def load_articles(dataset_dir: Path) -> list[Article]:
    frame = Dataset(dataset_dir).read("articles")
    # a null column (a dataset without bodies, e.g. the simulator's) means the field's default
    return [Article.model_validate({k: v for k, v in row.items() if v is not None})
            for row in frame.iter_rows(named=True)]


def enrich_dataset(dataset_dir: Path, enricher: Enricher, *, limit: int | None = None,
                   out_dir: Path | None = None, flush_every: int = 16,
                   progress: Callable[[EnrichReport], None] | None = None,
                   newest_first: bool = False) -> EnrichReport:
    """Enrich up to `limit` not-yet-enriched articles of the dataset (see the module doc);
    `newest_first`: in descending published_at order (a cut run has done the live ones)."""
    store = EnrichmentStore(out_dir or dataset_dir)
    known = store.keys()
    report = EnrichReport()
    pending: list[EnrichmentRecord] = []
    start = time.perf_counter()
    articles = load_articles(dataset_dir)
    if newest_first:
        articles.sort(key=lambda a: a.published_at, reverse=True)
    for article in articles:
        if limit is not None and report.enriched + sum(report.dropped.values()) >= limit:
            break
        report.considered += 1
        if known.get(article.article_id) == enricher.key(article):
            report.skipped += 1
            continue
        try:
            pending.append(enricher.enrich(article))
            report.enriched += 1
        except (LLMDisabled, LLMCircuitOpen):
            # switched off, or the provider is down (the breaker opened): stop rather than
            # count every remaining article as dropped; what is done is kept, a re-run resumes
            store.write(pending)
            raise
        except LLMInvalidOutput:
            report.dropped["invalid_output"] = report.dropped.get("invalid_output", 0) + 1
        except LLMError as exc:
            kind = type(exc).__name__
            report.dropped[kind] = report.dropped.get(kind, 0) + 1
        if len(pending) >= flush_every:
            store.write(pending)
            pending = []
        report.seconds = time.perf_counter() - start
        if progress is not None:
            progress(report)
    store.write(pending)
    store.compact()
    report.seconds = time.perf_counter() - start
    return report
