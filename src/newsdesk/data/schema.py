"""The canonical data model of newsdesk, in one place.

Every importer, the simulator, the event log and the serving API produce these records, and
every model reads them. Two views of the same model live here:

* pydantic models (`Article`, `Impression`, `Interaction`) validate single records at the edges
  (API requests, importer rows) and produce errors that name the field;
* Arrow schemas (`ARTICLES`, `IMPRESSIONS`, `INTERACTIONS`, `HISTORIES`) fix the column types of
  the Parquet tables in a dataset directory, so every producer writes identical files.

Tables of a dataset directory (see `newsdesk.data.dataset`):

    articles      one row per article, keyed by article_id
    impressions   one row per served slate, keyed by request_id; shown ids in order
    interactions  one row per click / dwell / share, keyed by event_id; request_id attributes it
                  to the impression that showed the article (null when unknown)
    histories     one row per user: clicks known before the logged period (MIND/EB-NeRD history)

All timestamps are UTC, microsecond precision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Id = Annotated[str, Field(min_length=1, max_length=256)]


class InteractionType(StrEnum):
    CLICK = "click"
    DWELL = "dwell"
    SHARE = "share"
    DISMISS = "dismiss"  # "not interested" (features/dismissals.py)


class Surface(StrEnum):
    """Where a slate is shown; free-form surfaces are allowed, these are the common ones."""

    FRONT_PAGE = "front_page"
    ARTICLE_PAGE = "article_page"
    NEWSLETTER = "newsletter"


def _utc(value: datetime) -> datetime:
    # Naive datetimes from files are taken as UTC rather than the machine's local time.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Article(_Record):
    article_id: Id
    title: str = Field(min_length=1)
    abstract: str = ""
    body: str = ""
    category: str = "unknown"
    subcategory: str = ""
    entities: list[str] = Field(default_factory=list)
    language: str = Field(default="en", min_length=2, max_length=8)
    url: str = ""
    published_at: datetime
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    brand: str = ""
    tags: list[str] = Field(default_factory=list)

    _utc_fields = field_validator("published_at", "updated_at", "expires_at")(
        lambda v: None if v is None else _utc(v)
    )

    @model_validator(mode="after")
    def _expiry_after_publication(self) -> Article:
        if self.expires_at is not None and self.expires_at < self.published_at:
            raise ValueError("expires_at must not be before published_at")
        return self


class Impression(_Record):
    request_id: Id
    user_id: Id
    timestamp: datetime
    surface: str = Surface.FRONT_PAGE.value
    article_ids: list[Id] = Field(min_length=1)
    # Positions are the list order (0-based); propensities align with article_ids when known.
    propensities: list[float] | None = None
    experiment: str | None = None
    variant: str | None = None
    # Interleaving: per position, the team (0 = the experiment's first variant, 1 = its second)
    # whose ranking contributed the article. None outside an interleaving experiment.
    teams: list[int] | None = None
    # Bandit allocation: the probability the serving policy had of choosing this slate's
    # variant (None: a fixed split, the variant's configured weight applies).
    assignment_propensity: float | None = None
    # The serving policy of the slate: "deterministic", "plackett_luce(T=..,M=..)"; None when
    # unknown (logs written before the field existed, imported data).
    policy: str | None = None
    # Serving outcome of the slate, for the rollout guardrails (serving/rollout_autopilot.py):
    # the request's time in the service up to the slate (ms) and whether the personalised model
    # failed and fallbacks answered. Event-log only: not columns of the dataset (IMPRESSIONS).
    latency_ms: float | None = Field(default=None, ge=0.0)
    degraded: bool | None = None

    _utc_ts = field_validator("timestamp")(lambda v: _utc(v))

    @model_validator(mode="after")
    def _aligned(self) -> Impression:
        if self.propensities is not None:
            if len(self.propensities) != len(self.article_ids):
                raise ValueError("propensities must have one value per article_ids entry")
            if any(not (0.0 < p <= 1.0) for p in self.propensities):
                raise ValueError("propensities must lie in (0, 1]")
        if self.teams is not None:
            if len(self.teams) != len(self.article_ids):
                raise ValueError("teams must have one value per article_ids entry")
            if any(t not in (0, 1) for t in self.teams):
                raise ValueError("teams must be 0 or 1")
        if self.assignment_propensity is not None and not (
                0.0 < self.assignment_propensity <= 1.0):
            raise ValueError("assignment_propensity must lie in (0, 1]")
        return self


class Interaction(_Record):
    event_id: Id
    type: InteractionType
    user_id: Id
    article_id: Id
    timestamp: datetime
    request_id: str | None = None
    dwell_seconds: float | None = Field(default=None, ge=0.0, le=86_400.0)
    # explicit strength where the source has one (MovieLens stars); None for news events
    rating: float | None = None
    # why a reader dismissed an article ("not interested", "seen it", ...); dismiss only. Kept
    # in the event log; the dataset's interactions table has no column for it
    reason: str | None = Field(default=None, max_length=200)

    _utc_ts = field_validator("timestamp")(lambda v: _utc(v))

    @model_validator(mode="after")
    def _dwell_has_seconds(self) -> Interaction:
        if self.type is InteractionType.DWELL and self.dwell_seconds is None:
            raise ValueError("a dwell event needs dwell_seconds")
        return self


class History(_Record):
    user_id: Id
    article_ids: list[Id]
    as_of: datetime | None = None


TS = pa.timestamp("us", tz="UTC")

ARTICLES = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("abstract", pa.string()),
        pa.field("body", pa.string()),
        pa.field("category", pa.string()),
        pa.field("subcategory", pa.string()),
        pa.field("entities", pa.list_(pa.string())),
        pa.field("language", pa.string()),
        pa.field("url", pa.string()),
        pa.field("published_at", TS, nullable=False),
        pa.field("updated_at", TS),
        pa.field("expires_at", TS),
        pa.field("brand", pa.string()),
        pa.field("tags", pa.list_(pa.string())),
    ]
)

IMPRESSIONS = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("surface", pa.string()),
        pa.field("article_ids", pa.list_(pa.string()), nullable=False),
        pa.field("propensities", pa.list_(pa.float64())),
        pa.field("experiment", pa.string()),
        pa.field("variant", pa.string()),
        # added later: older datasets lack them (read as null; see Impression)
        pa.field("teams", pa.list_(pa.int8())),
        pa.field("assignment_propensity", pa.float64()),
        pa.field("policy", pa.string()),
    ]
)

INTERACTIONS = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("timestamp", TS, nullable=False),
        pa.field("request_id", pa.string()),
        pa.field("dwell_seconds", pa.float64()),
        pa.field("rating", pa.float64()),
    ]
)

HISTORIES = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("article_ids", pa.list_(pa.string()), nullable=False),
        pa.field("as_of", TS),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "articles": ARTICLES,
    "impressions": IMPRESSIONS,
    "interactions": INTERACTIONS,
    "histories": HISTORIES,
}
RECORDS: dict[str, type[_Record]] = {
    "articles": Article,
    "impressions": Impression,
    "interactions": Interaction,
    "histories": History,
}
KEYS: dict[str, str] = {
    "articles": "article_id",
    "impressions": "request_id",
    "interactions": "event_id",
    "histories": "user_id",
}
