"""Article enrichment: topics, keywords, entities, a one-sentence summary and newsroom labels.

    Article ──prompt enrich.vN──> provider (JSON schema of `Enrichment` as constrained decoding)
            ──validate (pydantic)──> EnrichmentRecord   or   LLMInvalidOutput (after a retry
                                                             with the reason; counted, dropped)

Only a fully validated `Enrichment` becomes a record: there is no partial result. A record
carries what made it — the article's content hash, the prompt version and the model — which
is the key under which it is stored and reused (llm/enrichment_store.py).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from newsdesk.data.schema import Article
from newsdesk.errors import LLMInvalidOutput
from newsdesk.llm.metrics import LLMMetrics
from newsdesk.llm.prompts import Prompt, load_prompt
from newsdesk.llm.provider import LLMProvider
from newsdesk.llm.structured import complete_json

Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=40)]
MAX_TEXT_CHARS = 1200  # of title + abstract + body sent to the model (a small context)


class Entity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=60)]
    type: Literal["person", "organization", "location", "event", "other"]


class Enrichment(BaseModel):
    """What the model must return (its JSON schema constrains the local model's decoding)."""

    model_config = ConfigDict(extra="forbid")
    summary: Annotated[str, StringConstraints(strip_whitespace=True, min_length=10,
                                              max_length=300)]
    topics: list[Short] = Field(min_length=1, max_length=3)
    keywords: list[Short] = Field(min_length=1, max_length=6)
    entities: list[Entity] = Field(default_factory=list, max_length=5)
    timeliness: Literal["breaking", "evergreen"]
    brand_safety: Literal["safe", "sensitive", "unsafe"]

    @field_validator("topics", "keywords", mode="after")
    @classmethod
    def _unique_words(cls, values: list[str]) -> list[str]:
        # small models repeat themselves; a repeat carries no information (case-insensitive)
        seen: set[str] = set()
        return [v for v in values if not (v.lower() in seen or seen.add(v.lower()))]

    @field_validator("entities", mode="after")
    @classmethod
    def _unique_entities(cls, values: list[Entity]) -> list[Entity]:
        seen: set[str] = set()
        return [e for e in values if not (e.name.lower() in seen or seen.add(e.name.lower()))]


class CompactEnrichment(Enrichment):
    """The answer shape of enrich.v2: fewer list items (the grammar stops the model there), so
    fewer answer tokens per article. Every CompactEnrichment is a valid Enrichment."""

    topics: list[Short] = Field(min_length=1, max_length=2)
    keywords: list[Short] = Field(min_length=1, max_length=4)
    entities: list[Entity] = Field(default_factory=list, max_length=3)


# the answer schema each prompt version asks for (a prompt not named here: Enrichment)
SCHEMAS: dict[str, type[Enrichment]] = {"enrich.v1": Enrichment, "enrich.v2": CompactEnrichment}


def article_text(article: Article) -> str:
    text = " ".join(p for p in (article.abstract, article.body) if p).strip()
    return text[:MAX_TEXT_CHARS]


def article_hash(article: Article) -> str:
    """What the enrichment depends on: title, category and the text the model sees."""
    blob = "\x1f".join((article.title, article.category, article_text(article)))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class EnrichmentRecord:
    article_id: str
    content_hash: str
    prompt_version: str
    model: str
    enrichment: Enrichment
    enriched_at: float  # Unix s
    latency_s: float
    completion_tokens: int

    def row(self) -> dict[str, Any]:
        e = self.enrichment
        return {"article_id": self.article_id, "content_hash": self.content_hash,
                "prompt_version": self.prompt_version, "model": self.model,
                "summary": e.summary, "topics": list(e.topics), "keywords": list(e.keywords),
                "entities": [x.name for x in e.entities],
                "entity_types": [x.type for x in e.entities],
                "timeliness": e.timeliness, "brand_safety": e.brand_safety,
                "enriched_at": self.enriched_at, "latency_s": self.latency_s,
                "completion_tokens": self.completion_tokens}


class Enricher:
    """Enriches articles through any provider (normally the guarded one)."""

    def __init__(self, provider: LLMProvider, prompt: Prompt | None = None, *,
                 metrics: LLMMetrics | None = None, retries: int = 1, max_tokens: int = 320,
                 timeout_s: float = 120.0) -> None:
        self.provider = provider
        self.prompt = prompt or load_prompt("enrich")
        self.schema = SCHEMAS.get(self.prompt.id, Enrichment)
        self.metrics = metrics
        self.retries = retries
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s

    def key(self, article: Article) -> tuple[str, str, str]:
        """(content hash, prompt version, model): equal keys, equal enrichment."""
        return article_hash(article), self.prompt.id, self.provider.model

    def enrich(self, article: Article) -> EnrichmentRecord:
        """Enrich one article; LLMError on failure (LLMInvalidOutput counted and re-raised)."""
        messages = self.prompt.messages(title=article.title, category=article.category,
                                        text=article_text(article) or "(no text)")
        try:
            enrichment, completion = complete_json(
                self.provider, messages, self.schema, task="enrich", max_tokens=self.max_tokens,
                timeout_s=self.timeout_s, retries=self.retries)
        except LLMInvalidOutput:
            if self.metrics is not None:
                self.metrics.invalid_dropped.labels("enrich").inc()
            raise
        return EnrichmentRecord(article.article_id, article_hash(article), self.prompt.id,
                                completion.model, enrichment, time.time(),
                                completion.latency_s, completion.completion_tokens)
