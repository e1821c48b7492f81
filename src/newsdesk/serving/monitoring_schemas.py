"""Response body of GET /v1/monitoring: the contract with the web dashboard.

Cumulative figures are since the process started (one worker process: the Prometheus metrics
aggregate across workers, this JSON does not). Values are null until there is data.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class PsiOut(BaseModel):
    model_version: str | None = Field(description="the active model version")
    reference: bool = Field(description="the bundle has a drift reference (older bundles: "
                                        "false, and no PSI)")
    score: float | None = Field(description="PSI of the model score; null below 100 rows")
    features: dict[str, float] = Field(description="PSI per ranker feature")
    threshold: float = Field(description="alarm threshold (NEWSDESK_PSI_THRESHOLD)")
    window: int = Field(description="rows in the sliding window")
    alarm: bool = Field(description="the score or a feature PSI exceeds the threshold")
    drifted: list[str] = Field(description="series above the threshold, score first")


class QualityRow(BaseModel):
    surface: str
    variant: str
    model_version: str
    responses: int
    degraded_share: float = Field(description="degraded responses / responses")
    shown: int
    clicks: int
    ctr_at: dict[str, float | None] = Field(description="CTR@k for k in 1, 3, 5, 10")
    ctr_by_position: list[float | None] = Field(
        description="CTR of positions 1..10, then of 11 and beyond")
    # null while every response was an empty slate (e.g. filters that match nothing): found
    # by benchmarks/fuzz_api.py, the answer said null where the schema promised a number
    topic_diversity: float | None = Field(description="mean distinct topics / slate size; "
                                                      "null before the first non-empty slate")
    coverage: float | None = Field(description="distinct live articles shown in the last "
                                               "hour / live articles")


class CatalogHealth(BaseModel):
    newest_article_age_s: float | None
    live_articles: int
    live_without_embedding: float | None = Field(
        description="share of live articles the active model has no embedding for")


class DataQualityOut(BaseModel):
    event_lag_s: dict[str, float] = Field(description="clock minus newest event, by type")
    events_last_minute: dict[str, int] = Field(description="events received, by type")
    rejected_events: dict[str, int] = Field(description="refused events (batches) by reason")
    unknown_article_clicks: int
    catalog: CatalogHealth | None


class MonitoringOut(BaseModel):
    psi: PsiOut
    quality: list[QualityRow]
    data_quality: DataQualityOut
