"""`SimulationConfig`: every knob of the simulated news world, with validated defaults.

The defaults give a click-through rate of a few percent (the order of MIND / EB-NeRD), a strong
but not overwhelming topic-interest signal, and a position bias that decays like 1/(1+k)^0.7.
The exact click model these parameters feed is documented in `newsdesk.simulation.world` and
docs/simulator.md.

`world` picks the generator: "v1" (the default; topics only) or "v2" (stories, named entities,
breaking-news bursts, reader language preference, devices, dismissals: `simulation/world_v2.py`).
The v2-only knobs below are left out of `to_dict` for a v1 world, so that a v1 world's
config.json and dataset stay byte-identical to those written before v2 existed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import Any

from newsdesk.errors import ConfigError
from newsdesk.simulation.vocab import CATEGORY_NAMES

WORLDS = ("v1", "v2")
V2_GERMAN_SHARE = 0.2


@dataclass(frozen=True)
class SimulationConfig:
    """Parameters of one simulated world; same config (seed included), same dataset bytes."""

    seed: int = 0
    n_users: int = 10_000
    days: float = 3.0
    articles_per_day: int = 500
    impressions_per_day: int = 50_000
    slate_size: int = 10

    # world shape
    n_topics: int = len(CATEGORY_NAMES)  # the first n_topics categories of vocab.CATEGORIES
    start: str = "2026-01-05T00:00:00Z"  # fixed so that the output is deterministic
    backlog_days: float = 2.0  # articles published before `start` (histories, first slates)
    window_minutes: float = 15.0  # traffic is generated (and the logger refreshes) per window
    diurnal_amplitude: float = 0.5  # rate(h) = 1 + A cos(2 pi (h - peak) / 24)
    traffic_peak_hour: float = 19.0
    publishing_peak_hour: float = 10.0
    german_share: float = 0.0  # share of articles in German (brand "nordkurier"), 0 = all en

    # users
    interest_concentration: float = 0.3  # Dirichlet alpha per topic: small = sparse interests
    activity_sigma: float = 1.2  # lognormal sigma of per-user request rates (heavy tail)
    history_mean: float = 4.0  # mean pre-log clicks per user (Poisson, scaled by activity)
    cold_share: float = 0.25  # share of users with no history at all

    # articles
    half_life_median_hours: float = 6.0
    half_life_sigma: float = 0.5  # lognormal sigma; clipped to [1 h, 72 h]
    live_half_lives: float = 4.0  # an article expires published_at + this many half-lives

    # click model: P = exam(pos) * sigmoid(b0 + b_i log1p(K theta) + b_q quality) * 2^(-age/h)
    click_bias: float = -3.2
    interest_weight: float = 1.5
    quality_weight: float = 0.5
    position_eta: float = 0.7
    dwell_median_seconds: float = 40.0
    dwell_interest_weight: float = 0.4
    dwell_quality_weight: float = 0.3
    dwell_sigma: float = 0.6

    # logging policy: inclusion pi_i = eps * S/N + (1 - eps) * capped-proportional(weights)
    policy_epsilon: float = 0.2
    policy_half_life_hours: float = 12.0  # freshness the logger assumes (it does not know h)
    popularity_half_life_hours: float = 6.0  # decay of the click counts the logger uses
    popularity_power: float = 1.0

    # ---- world v2 only (see world_v2.py; ignored and not serialised for world="v1") --------
    world: str = "v1"
    story_share: float = 0.65  # share of articles that belong to a story (rest: standalone)
    story_mean_articles: float = 5.0  # mean articles per story
    story_duration_median_hours: float = 30.0  # lognormal(sigma 0.7), clipped to [3 h, 120 h]
    breaking_share: float = 0.06  # share of stories that break (a burst)
    breaking_volume: float = 6.0  # a breaking story's article-count weight multiplier
    burst_hours: float = 4.0  # a breaking story publishes most of its articles within this
    burst_weight: float = 1.2  # logit boost for everyone, decaying with burst_hours half-life
    story_weight: float = 2.5  # logit boost when the reader follows the article's story
    story_follow_base: float = 0.15  # P(follow story) = min(0.9, base + rate * K theta[topic]
    story_follow_rate: float = 0.10  # ... + story_follow_entity * [follows a story entity])
    story_follow_entity: float = 0.35  # ... + this if the reader follows a story entity
    entity_weight: float = 1.3  # logit boost per followed entity the article mentions (max 2)
    entities_followed_mean: float = 3.0  # 1 + Poisson(mean - 1) entities per reader, max 4
    foreign_language_penalty: float = 2.5  # logit penalty: German article, English reader
    english_for_german_penalty: float = 0.5  # logit penalty: English article, German reader
    mobile_share_mean: float = 0.6  # readers' P(mobile) ~ Beta with this mean
    mobile_position_eta: float = 1.0  # exam(k) = (1 + k) ** -eta on phones (steeper)
    desktop_position_eta: float = 0.5
    dismisser_share: float = 0.3  # share of readers who ever dismiss
    dismiss_rate: float = 0.12  # P(dismiss | examined, not attracted) for those readers

    def __post_init__(self) -> None:
        _check(self.n_users >= 1, "n_users", "an integer >= 1", self.n_users)
        _check(self.days > 0, "days", "> 0", self.days)
        _check(self.articles_per_day >= 1, "articles_per_day", "an integer >= 1",
               self.articles_per_day)
        _check(self.impressions_per_day >= 0, "impressions_per_day", ">= 0",
               self.impressions_per_day)
        _check(1 <= self.slate_size <= 100, "slate_size", "in [1, 100]", self.slate_size)
        _check(1 <= self.n_topics <= len(CATEGORY_NAMES), "n_topics",
               f"in [1, {len(CATEGORY_NAMES)}]", self.n_topics)
        _check(self.backlog_days >= 0, "backlog_days", ">= 0", self.backlog_days)
        _check(self.window_minutes > 0, "window_minutes", "> 0", self.window_minutes)
        _check(0 <= self.diurnal_amplitude < 1, "diurnal_amplitude", "in [0, 1)",
               self.diurnal_amplitude)
        _check(0 <= self.german_share <= 1, "german_share", "in [0, 1]", self.german_share)
        _check(self.interest_concentration > 0, "interest_concentration", "> 0",
               self.interest_concentration)
        _check(self.activity_sigma >= 0, "activity_sigma", ">= 0", self.activity_sigma)
        _check(self.history_mean >= 0, "history_mean", ">= 0", self.history_mean)
        _check(0 <= self.cold_share <= 1, "cold_share", "in [0, 1]", self.cold_share)
        _check(self.half_life_median_hours > 0, "half_life_median_hours", "> 0",
               self.half_life_median_hours)
        _check(self.live_half_lives > 0, "live_half_lives", "> 0", self.live_half_lives)
        _check(self.position_eta >= 0, "position_eta", ">= 0", self.position_eta)
        _check(0 < self.policy_epsilon <= 1, "policy_epsilon",
               "in (0, 1] (propensities must stay > 0)", self.policy_epsilon)
        _check(self.policy_half_life_hours > 0, "policy_half_life_hours", "> 0",
               self.policy_half_life_hours)
        _check(self.popularity_half_life_hours > 0, "popularity_half_life_hours", "> 0",
               self.popularity_half_life_hours)
        _check(self.world in WORLDS, "world", f"one of {WORLDS}", self.world)
        for name in ("story_share", "breaking_share", "dismisser_share", "dismiss_rate",
                     "story_follow_base", "story_follow_rate", "story_follow_entity"):
            _check(0 <= getattr(self, name) <= 1, name, "in [0, 1]", getattr(self, name))
        _check(0 < self.mobile_share_mean < 1, "mobile_share_mean", "in (0, 1)",
               self.mobile_share_mean)
        for name in ("story_mean_articles", "story_duration_median_hours", "breaking_volume",
                     "burst_hours"):
            _check(getattr(self, name) > 0, name, "> 0", getattr(self, name))
        _check(self.entities_followed_mean >= 1, "entities_followed_mean", ">= 1",
               self.entities_followed_mean)
        for name in ("burst_weight", "story_weight", "entity_weight",
                     "foreign_language_penalty", "english_for_german_penalty",
                     "mobile_position_eta", "desktop_position_eta"):
            _check(getattr(self, name) >= 0, name, ">= 0", getattr(self, name))
        self.start_unix  # noqa: B018 - validates `start` early

    @classmethod
    def v2(cls, **overrides: Any) -> SimulationConfig:
        """A world-v2 config with v2's defaults (20 % German articles) under `overrides`."""
        return cls(**{"world": "v2", "german_share": V2_GERMAN_SHARE, **overrides})

    @property
    def start_unix(self) -> float:
        """`start` as unix seconds (UTC)."""
        try:
            dt = datetime.fromisoformat(self.start.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ConfigError(f"start: expected an ISO-8601 time, got {self.start!r}") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()

    @property
    def end_unix(self) -> float:
        return self.start_unix + self.days * 86_400.0

    @property
    def n_impressions(self) -> int:
        return int(round(self.impressions_per_day * self.days))

    @property
    def n_articles(self) -> int:
        return max(1, int(round(self.articles_per_day * (self.days + self.backlog_days))))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.world == "v1":  # v1 configs serialise exactly as before v2 existed
            for name in V2_FIELDS:
                data.pop(name)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimulationConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"SimulationConfig: unknown fields {unknown}")
        return cls(**data)


def _check(ok: bool, name: str, allowed: str, given: Any) -> None:
    if not ok:
        raise ConfigError(f"SimulationConfig.{name}: expected {allowed}, got {given!r}")


_NAMES = [f.name for f in fields(SimulationConfig)]
# the knobs from `world` on exist only in world v2 (kept last in the class on purpose)
V2_FIELDS: tuple[str, ...] = tuple(_NAMES[_NAMES.index("world"):])
