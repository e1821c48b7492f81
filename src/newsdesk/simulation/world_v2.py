"""`WorldV2`: stories, named entities, bursts, languages, devices and dismissals.

World v1 gives readers topic interests only, so a category feature recovers nearly all a text
model could. World v2 keeps v1's topic term and adds what only the text (or the co-clicks) can
reveal. With theta, quality and freshness as in v1 (`world.py`)::

    logit(u, a, t) = click_bias + interest_weight * log1p(K theta[u, topic(a)])
                     + quality_weight * quality(a)
                     + story_weight  * follows(u, story(a))             0 for standalone a
                     + entity_weight * min(2, #entities of a that u follows)
                     + burst_weight  * 2 ** (-(t - start(story(a))) / burst_hours)
                                                                        breaking stories only
                     - foreign_language_penalty    if a is German and u reads English
                     - english_for_german_penalty  if a is English and u prefers German
    attraction(u, a, t) = sigmoid(logit) * freshness(a, t)
    exam(k, device)     = (1 + k) ** -eta(device)   eta: mobile 1.0, desktop 0.5
    P(click   | u, a, t, k, device) = exam(k, device) * attraction(u, a, t)
    P(dismiss | u, a, t, k, device) = exam(k, device) * dismiss_rate(u) * (1 - sigmoid(logit))

Click and dismiss are exclusive outcomes of one uniform draw per shown item. follows(u, s) is
a fixed latent fact, `hash(seed, u, s) < min(0.9, story_follow_rate * K theta[u, topic(s)]
+ story_follow_entity * [u follows one of s's entities])`, so it costs no memory and the oracle
can evaluate it for any (u, s) pair. Without a device, `examination` uses v1's `position_eta`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from newsdesk.simulation.config import SimulationConfig
from newsdesk.simulation.world import _ARRAYS, World

MAX_FOLLOWED_ENTITIES = 4
STORY_ENTITIES = 3
MAX_FOLLOW_P = 0.9
MOBILE, DESKTOP = 1, 0
DEVICE_NAMES = ("desktop", "mobile")

_V2_ARRAYS = (
    "user_lang",  # (U,) int8: 1 = prefers German
    "user_mobile",  # (U,) float64: P(a request comes from a phone)
    "user_dismiss",  # (U,) float64: dismiss rate (0 for readers who never dismiss)
    "user_entities",  # (U, 4) int32 followed entity ids, -1 padded
    "article_story",  # (A,) int32 story id, -1 for standalone articles
    "article_entities",  # (A, 2) int32 mentioned entity ids, -1 padded
    "article_lang",  # (A,) int8: 1 = German
    "story_topic",  # (S,) int16
    "story_subtopic",  # (S,) int16
    "story_start",  # (S,) float64 unix seconds (the burst starts here for breaking stories)
    "story_breaking",  # (S,) bool
    "story_entities",  # (S, 3) int32
    "story_codeword",  # (S,) int32 index into vocab_v2's codewords
    "story_noun",  # (S,) int32 index into the subcategory's nouns
    "entity_topic",  # (E,) int16
    "entity_kind",  # (E,) int8 vocab_v2.PERSON / PLACE / ORGANISATION
)


def uniform_hash(seed: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) per (a, b) pair (splitmix64 of seed, a, b); broadcasts a and b."""
    with np.errstate(over="ignore"):
        x = ((np.asarray(a).astype(np.uint64) << np.uint64(32))
             ^ np.asarray(b).astype(np.uint64)
             ^ np.uint64((seed * 0x9E3779B1 + 0x632BE5AB) & 0xFFFFFFFFFFFFFFFF))
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


class WorldV2(World):
    """A v1 world plus stories, entities, languages, devices and dismissals (module doc).

    Extra attributes: the arrays listed in `_V2_ARRAYS` (users U, articles A, stories S,
    entities E). Entity names come from `vocab_v2.topic_entities(n_topics)`.
    """

    ARRAYS = _ARRAYS + _V2_ARRAYS

    def __init__(self, config: SimulationConfig, **arrays: np.ndarray) -> None:
        super().__init__(config, **arrays)
        self.user_lang: np.ndarray = arrays["user_lang"]
        self.user_mobile: np.ndarray = arrays["user_mobile"]
        self.user_dismiss: np.ndarray = arrays["user_dismiss"]
        self.user_entities: np.ndarray = arrays["user_entities"]
        self.article_story: np.ndarray = arrays["article_story"]
        self.article_entities: np.ndarray = arrays["article_entities"]
        self.article_lang: np.ndarray = arrays["article_lang"]
        self.story_topic: np.ndarray = arrays["story_topic"]
        self.story_subtopic: np.ndarray = arrays["story_subtopic"]
        self.story_start: np.ndarray = arrays["story_start"]
        self.story_breaking: np.ndarray = arrays["story_breaking"]
        self.story_entities: np.ndarray = arrays["story_entities"]
        self.story_codeword: np.ndarray = arrays["story_codeword"]
        self.story_noun: np.ndarray = arrays["story_noun"]
        self.entity_topic: np.ndarray = arrays["entity_topic"]
        self.entity_kind: np.ndarray = arrays["entity_kind"]

    @property
    def n_stories(self) -> int:
        return int(self.story_topic.shape[0])

    # ---- latent relations ---------------------------------------------------------------
    def follow_probability(self, users: Any, stories: Any,
                           theta: np.ndarray | None = None) -> np.ndarray:
        """P(the user follows the story) before the hash draws it; `theta`: the user's
        interest in the story's topic (default: the true one). Story -1 is read as story 0.
        Broadcasts."""
        c = self.config
        u = np.asarray(self.user_index(users))
        sc = np.maximum(np.asarray(stories, dtype=np.int64), 0)
        if theta is None:
            theta = self.user_theta[u, self.story_topic[sc]].astype(np.float64)
        ue = self.user_entities[u][..., :, None]  # (..., F, 1)
        se = self.story_entities[sc][..., None, :]  # (..., 1, 3)
        via_entity = ((ue == se) & (ue >= 0)).any(axis=(-2, -1))
        return np.minimum(MAX_FOLLOW_P, c.story_follow_base
                          + c.story_follow_rate * self.n_topics * theta
                          + c.story_follow_entity * via_entity)

    def follows_story(self, users: Any, stories: Any) -> np.ndarray:
        """bool: does the user follow the story (False for story -1)? Broadcasts."""
        u = np.asarray(self.user_index(users))
        s = np.asarray(stories, dtype=np.int64)
        known = s >= 0
        sc = np.where(known, s, 0)
        return known & (uniform_hash(self.config.seed, u, sc) < self.follow_probability(u, sc))

    def entity_matches(self, users: Any, articles: Any) -> np.ndarray:
        """How many of the article's entities the user follows (0..2). Broadcasts."""
        u, a = np.asarray(self.user_index(users)), np.asarray(self.article_index(articles))
        ue = self.user_entities[u][..., :, None]
        ae = self.article_entities[a][..., None, :]
        return ((ue == ae) & (ae >= 0)).sum(axis=(-2, -1))

    def burst(self, articles: Any, t: Any) -> np.ndarray:
        """Breaking-news boost in [0, 1]: 2 ** (-(t - story start) / burst_hours), else 0."""
        a = np.asarray(self.article_index(articles))
        s = self.article_story[a]
        sc = np.where(s >= 0, s, 0)
        since = np.asarray(t, dtype=np.float64) - self.story_start[sc]
        boost = np.exp2(-np.maximum(since, 0.0) / (self.config.burst_hours * 3600.0))
        return np.where((s >= 0) & self.story_breaking[sc] & (since >= 0), boost, 0.0)

    def logit(self, users: Any, articles: Any, t: Any) -> np.ndarray:
        """The v2 click logit before freshness (module doc)."""
        c = self.config
        u, a = np.asarray(self.user_index(users)), np.asarray(self.article_index(articles))
        lang_a, lang_u = self.article_lang[a], self.user_lang[u]
        penalty = np.where((lang_a == 1) & (lang_u == 0), c.foreign_language_penalty,
                           np.where((lang_a == 0) & (lang_u == 1),
                                    c.english_for_german_penalty, 0.0))
        return (c.click_bias
                + c.interest_weight * np.log1p(self.n_topics * self.interest(u, a))
                + c.quality_weight * self.article_quality[a]
                + c.story_weight * self.follows_story(u, self.article_story[a])
                + c.entity_weight * np.minimum(self.entity_matches(u, a), 2)
                + c.burst_weight * self.burst(a, t)
                - penalty)

    # ---- the click model ----------------------------------------------------------------
    def examination(self, positions: Any, devices: Any = None) -> np.ndarray:
        """(1 + k) ** -eta(device); devices 1 = mobile, 0 = desktop, None = v1's eta."""
        k = np.asarray(positions, dtype=np.float64)
        if devices is None:
            return super().examination(k)
        c = self.config
        eta = np.where(np.asarray(devices) == MOBILE, c.mobile_position_eta,
                       c.desktop_position_eta)
        return (1.0 + k) ** -eta

    def click_probability(self, users: Any, articles: Any, t: Any, positions: Any,
                          devices: Any = None) -> np.ndarray:
        """TRUE P(click) = exam(position, device) * attraction; all arguments broadcast."""
        return self.examination(positions, devices) * self.attraction(users, articles, t)

    def dismiss_probability(self, users: Any, articles: Any, t: Any, positions: Any,
                            devices: Any = None) -> np.ndarray:
        """TRUE P(dismiss) = exam * dismiss_rate(u) * (1 - sigmoid(logit)); exclusive of a
        click (their sum is <= 1)."""
        u = np.asarray(self.user_index(users))
        not_attracted = 1.0 - 1.0 / (1.0 + np.exp(-self.logit(u, articles, t)))
        return self.examination(positions, devices) * self.user_dismiss[u] * not_attracted

    def respond(self, users: Any, slates: Any, t: Any, rng: np.random.Generator,
                devices: Any = None) -> np.ndarray:
        """Clicks of served slates (as v1), with the device's position bias if given."""
        s = self.article_index(slates)
        u = np.asarray(self.user_index(users))
        tt = np.asarray(t, dtype=np.float64)
        d = None if devices is None else np.asarray(devices)
        if s.ndim == 2:
            u = u.reshape(-1, 1) if u.ndim == 1 else u
            tt = tt.reshape(-1, 1) if tt.ndim == 1 else tt
            d = d.reshape(-1, 1) if d is not None and d.ndim == 1 else d
        p = self.click_probability(u, s, tt, np.arange(s.shape[-1]), d)
        return rng.random(p.shape) < p

    sample_clicks = respond
