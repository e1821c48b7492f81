"""Request and response bodies of the HTTP API (kept apart from the internal types).

Every model forbids unknown fields, so a typo in a field name is a 422 that names it rather
than a silently ignored value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from newsdesk.data.schema import Article

Id = Annotated[str, Field(min_length=1, max_length=256)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class RequestContextIn(_In):
    current_article_id: Id | None = None
    device: Annotated[str, Field(max_length=32)] | None = None
    locale: Annotated[str, Field(max_length=16)] | None = None


class FiltersIn(_In):
    category: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=50)
    language: list[Annotated[str, Field(min_length=2, max_length=8)]] | None = Field(
        default=None, max_length=20)
    exclude: list[Id] = Field(default_factory=list, max_length=1000)


class RecommendationRequest(_In):
    """Who asks, where the slate is shown, and how many items."""

    user_id: Id | None = None
    session_id: Id | None = Field(default=None, description="anonymous visitor (no user_id)")
    surface: Name = "front_page"
    k: int = Field(default=10, ge=1, le=100)
    context: RequestContextIn = Field(default_factory=RequestContextIn)
    filters: FiltersIn = Field(default_factory=FiltersIn)
    explain: bool = Field(default=False, description="add an `explanation` to each item")
    lang: Literal["en", "de"] | None = Field(
        default=None, description="language of the explanations (default: context.locale, "
                                  "else en)")

    @model_validator(mode="after")
    def _who(self) -> RecommendationRequest:
        if self.user_id is None and self.session_id is None:
            raise ValueError("one of user_id or session_id is required")
        return self


class RecommendedItem(BaseModel):
    article_id: str
    score: float
    rank: int
    reason: str
    source: str
    explanation: str | None = Field(default=None, description="with explain=true: why, in "
                                    "the reader's language, from the item's ranking signals")
    signals: list[str] | None = Field(default=None, description="with explain=true: the "
                                      "signals the explanation names")
    headline: str | None = Field(default=None, description="the headline variant to show "
                                 "(a headline test runs for this article)")
    headline_variant: str | None = None
    headline_propensity: float | None = Field(default=None, description="probability the "
                                              "bandit chose this variant (log it)")


class RecommendationResponse(BaseModel):
    request_id: str
    model_version: str | None
    experiment: str | None = None
    variant: str | None = None
    degraded: bool
    items: list[RecommendedItem]


class RelatedResponse(BaseModel):
    request_id: str
    article_id: str
    model_version: str | None
    degraded: bool
    items: list[RecommendedItem]


# -- events ------------------------------------------------------------------------------
class ImpressionEvent(_In):
    type: Literal["impression"]
    request_id: Id
    user_id: Id
    timestamp: datetime | None = None
    surface: Name = "front_page"
    article_ids: list[Id] = Field(min_length=1, max_length=200)


class ClickEvent(_In):
    type: Literal["click"]
    event_id: Id
    user_id: Id
    article_id: Id
    request_id: Id | None = None
    timestamp: datetime | None = None


class DwellEvent(_In):
    type: Literal["dwell"]
    event_id: Id
    user_id: Id
    article_id: Id
    request_id: Id | None = None
    timestamp: datetime | None = None
    dwell_seconds: float = Field(ge=0.0, le=86_400.0)


class DismissEvent(_In):
    """"Not interested": the article never comes back to this reader, and similar ones rank
    lower for a while (features/dismissals.py)."""

    type: Literal["dismiss"]
    event_id: Id
    user_id: Id
    article_id: Id
    request_id: Id | None = None
    timestamp: datetime | None = None
    reason: str | None = Field(default=None, max_length=200,
                               description="free text or a code, e.g. 'not_interested'")


EventIn = Annotated[ImpressionEvent | ClickEvent | DwellEvent | DismissEvent,
                    Field(discriminator="type")]


class EventBatch(_In):
    events: list[EventIn] = Field(min_length=1)


class EventsAck(BaseModel):
    request_id: str
    accepted: int = Field(description="new events, durable in the event log")
    duplicates: int = Field(description="events already logged (same event_id / request_id)")
    applied: bool = Field(description="online state updated (false: store down; events kept)")
    erased: int = Field(default=0, description="events of erased readers (DELETE "
                                               "/v1/users/{id}): discarded, not logged")


# -- articles ----------------------------------------------------------------------------
class ArticleBatch(_In):
    articles: list[Article] = Field(min_length=1)


class ArticlesAck(BaseModel):
    request_id: str
    upserted: int
    article_ids: list[str]


class DeleteAck(BaseModel):
    request_id: str
    article_id: str
    deleted: bool


# -- admin / health ----------------------------------------------------------------------
class SwapAck(BaseModel):
    request_id: str
    action: str
    previous: str | None
    active: str | None


class BundleList(BaseModel):
    active: str | None
    previous: str | None
    staged: list[str]
    bundles: list[dict]


class StoredExperimentOut(BaseModel):
    id: str
    version: int
    status: str


class ExperimentsAck(BaseModel):
    request_id: str
    experiments: list[StoredExperimentOut]


class ExperimentList(BaseModel):
    request_id: str
    experiments: list[dict] = Field(description="id, version, updated_at, config, rollout "
                                                "(status, fraction, stage, reason: why a rollback "
                                                "or kill stopped it) and killed")


class KillAck(BaseModel):
    request_id: str
    experiment_id: str
    killed: bool
    control: str = Field(description="the variant everyone gets from the next request on")


class Health(BaseModel):
    status: str
    model_version: str | None = None
    checks: dict[str, bool] = Field(default_factory=dict)
    pid: int | None = None  # the serving process that answered (several workers)
    bootstrap: dict[str, Any] | None = None  # /readyz: the online store's load from the dataset
    online_state: dict[str, Any] | None = None  # /readyz: rebuilds from the log (state_keeper)
    breaker: str | None = None  # /readyz: the online store's circuit when not closed
    model_refused: dict[str, Any] | None = None  # /readyz: the last bundle that failed to load
    slow: dict[str, float] | None = None  # /readyz: a dependency answering too slowly (ms)


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
    fields: list[dict] = Field(default_factory=list)
