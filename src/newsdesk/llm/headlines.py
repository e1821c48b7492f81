"""Headline testing: LLM-proposed variants, validated, served by a Thompson-sampling bandit.

    article ──propose_headlines (prompt headlines.v1, JSON schema)──> candidate headlines
            ──validate_headline: length, no name / number absent from title + abstract──>
    HeadlineTest(original + valid variants) ──serve: probability matching over the Beta
            posteriors (the logged propensity)──> reader ──click / no click──> record
            ──report: CTR with 95% intervals, P(best)──> promote the winner

Validation is the guard against a small model's inventions: a variant may only name what the
article names. A token is treated as a name when it starts with a capital letter (the first
word of a headline only when the article does not use it in lower case either) or contains a
digit; every such token must occur in the article's title or abstract (case-insensitive).
Invalid variants are dropped and counted by reason (`newsdesk_llm_headline_rejected_total`).

Serving chooses a variant with the Thompson probabilities of the current posteriors (refreshed
every `refresh_every` outcomes, so a request costs one draw, not a posterior simulation) and
that probability is the propensity to log: for Thompson sampling it is exactly the chance that
a posterior draw ranks the variant first. After promotion the winner is served with
propensity 1. `experiments/bandits.ThompsonSampler` keeps the posteriors.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from pydantic import BaseModel, Field, WithJsonSchema, create_model

from newsdesk.experiments.bandits import ThompsonSampler
from newsdesk.llm.prompts import load_prompt
from newsdesk.llm.provider import LLMProvider
from newsdesk.llm.structured import complete_json

MIN_CHARS, MAX_CHARS, MIN_WORDS = 15, 100, 3
_TOKEN = re.compile(r"[^\W_][\w'’.-]*[\w]|[^\W_]", re.UNICODE)
# question words and articles that open a headline without being names
_OPENERS = frozenset(["a", "an", "the", "how", "why", "what", "who", "when", "where", "this",
                      "these", "here", "new", "breaking", "inside", "watch"])


MAX_VARIANTS = 4


# The length bounds go into the JSON schema, which the local model's grammar enforces (a 135M
# model otherwise loops inside one string, or adds items, until max_tokens cuts the JSON), but
# not into validation: a server that ignores the schema may return one bad headline among good
# ones, and `validate_headline` drops that one (counted) instead of the whole answer.
Headline = Annotated[str, WithJsonSchema({"type": "string", "minLength": MIN_CHARS,
                                          "maxLength": MAX_CHARS})]


class Headlines(BaseModel):
    headlines: list[Headline] = Field(min_length=1)


def headlines_schema(n: int) -> type[Headlines]:
    """`Headlines` whose schema allows at most n items (the grammar stops the model after n)."""
    return create_model(f"Headlines{n}", __base__=Headlines,
                        headlines=(list[Headline], Field(min_length=1,
                                                         json_schema_extra={"maxItems": n})))


def _words(text: str) -> set[str]:
    return {t.lower() for t in _TOKEN.findall(text)}


def validate_headline(text: str, title: str, abstract: str = "") -> str | None:
    """None when `text` is a valid variant of the article, else the reason: "length",
    "same_as_original" or "new_entity" (a capitalised word or a number the article lacks)."""
    text = " ".join(text.split())
    if not MIN_CHARS <= len(text) <= MAX_CHARS or len(text.split()) < MIN_WORDS:
        return "length"
    if text.lower().strip(" .!?") == " ".join(title.split()).lower().strip(" .!?"):
        return "same_as_original"
    known = _words(f"{title} {abstract}")
    for n, token in enumerate(_TOKEN.findall(text)):
        word = token.lower().strip(".'’-")
        named = token[0].isupper() or any(c.isdigit() for c in token)
        if not named or word in known:
            continue
        if n == 0 and not any(c.isdigit() for c in token) and word in _OPENERS:
            continue
        return "new_entity"
    return None


@dataclass(frozen=True)
class Proposal:
    valid: list[str]
    rejected: list[tuple[str, str]]  # (headline, reason)
    prompt_id: str


def propose_headlines(provider: LLMProvider, title: str, abstract: str = "", *, n: int = 4,
                      timeout_s: float = 60.0, on_reject=None) -> Proposal:  # noqa: ANN001
    """Ask the model for `n` variants; return the valid ones (deduplicated) and the rejected
    ones with their reasons (`on_reject(reason)` is called for each: a metric). Provider
    errors (LLMError) propagate: the caller keeps the original headline."""
    n = max(1, min(n, MAX_VARIANTS))
    prompt = load_prompt("headlines")
    answer, _ = complete_json(provider, prompt.messages(n=n, title=title, text=abstract),
                              headlines_schema(n), task="headlines",
                              max_tokens=35 * n + 20,
                              temperature=0.7, timeout_s=timeout_s)
    valid: list[str] = []
    rejected: list[tuple[str, str]] = []
    for raw in answer.headlines:
        text = " ".join(raw.split())
        reason = validate_headline(text, title, abstract)
        if reason is None and text.lower() in {v.lower() for v in valid}:
            reason = "duplicate"
        if reason is None:
            valid.append(text)
        else:
            rejected.append((text, reason))
            if on_reject is not None:
                on_reject(reason)
    return Proposal(valid, rejected, prompt.id)


@dataclass(frozen=True)
class Served:
    variant: str  # "v0" is the original headline
    text: str
    propensity: float


def wilson(clicks: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a click-through rate (0, 1) when nothing was shown."""
    if n <= 0:
        return 0.0, 1.0
    p = clicks / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


class HeadlineTest:
    """One article's headline test (thread-safe). variants[0] is the original headline.

    `promote_at`: promote when one variant's P(best) reaches it, after `min_impressions`
    in total; `refresh_every`: outcomes between recomputations of the serving probabilities.
    """

    def __init__(self, article_id: str, variants: Sequence[str], *, seed: int = 0,
                 promote_at: float = 0.95, min_impressions: int = 500,
                 refresh_every: int = 20, min_propensity: float = 0.01) -> None:
        if len(variants) < 2:
            raise ValueError("variants: a test needs the original and at least one variant")
        self.article_id = article_id
        self.texts = list(variants)
        self.arms = [f"v{i}" for i in range(len(variants))]
        self.sampler = ThompsonSampler(self.arms, seed=seed, n_mc=4000,
                                       min_propensity=min_propensity)
        self.promote_at = promote_at
        self.min_impressions = min_impressions
        self.refresh_every = refresh_every
        self.impressions = np.zeros(len(variants))
        self.clicks = np.zeros(len(variants))
        self.winner: str | None = None
        self._rng = np.random.default_rng(seed + 1)
        self._probs = self.sampler.probabilities()
        self._since_refresh = 0
        self._lock = threading.Lock()

    def serve(self) -> Served:
        """The variant for one impression, with its propensity (counts the impression)."""
        with self._lock:
            if self.winner is not None:
                k = self.arms.index(self.winner)
                self.impressions[k] += 1
                return Served(self.winner, self.texts[k], 1.0)
            k = int(self._rng.choice(len(self.arms), p=self._probs))
            self.impressions[k] += 1
            return Served(self.arms[k], self.texts[k], float(self._probs[k]))

    def record(self, variant: str, clicked: bool) -> None:
        """The outcome of one served impression: updates the posterior (a click or not)."""
        with self._lock:
            k = self.arms.index(variant)
            self.clicks[k] += bool(clicked)
            self.sampler.update(variant, 1.0 if clicked else 0.0)
            self._since_refresh += 1
            if self._since_refresh >= self.refresh_every:
                self._since_refresh = 0
                self._probs = self.sampler.probabilities()

    def p_best(self) -> np.ndarray:
        with self._lock:
            return self.sampler.probabilities()

    def maybe_promote(self) -> str | None:
        """Promote (and return) the winner once the evidence is in; None before that."""
        if self.winner is not None:
            return self.winner
        if self.impressions.sum() < self.min_impressions:
            return None
        with self._lock:  # the serving probabilities (refreshed every refresh_every
            probs = self._probs  # outcomes): a posterior simulation per click costs ~1 ms
        k = int(np.argmax(probs))
        if probs[k] >= self.promote_at:
            with self._lock:
                self.winner = self.arms[k]
        return self.winner

    def report(self) -> dict:
        probs = self.p_best()
        rows = []
        for k, arm in enumerate(self.arms):
            n, c = float(self.impressions[k]), float(self.clicks[k])
            lo, hi = wilson(c, n)
            rows.append({"variant": arm, "headline": self.texts[k], "impressions": int(n),
                         "clicks": int(c), "ctr": c / n if n else None, "ci95": [lo, hi],
                         "p_best": float(probs[k])})
        return {"article_id": self.article_id, "winner": self.winner, "variants": rows}


class HeadlineTests:
    """The running tests of a serving process, and which variant each served item showed (a
    bounded map from (request_id, article_id), for click attribution)."""

    def __init__(self, *, max_served: int = 200_000) -> None:
        self.tests: dict[str, HeadlineTest] = {}
        self._served: OrderedDict[tuple[str, str], tuple[HeadlineTest, str]] = OrderedDict()
        self.max_served = max_served
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.tests)

    def start(self, test: HeadlineTest) -> None:
        self.tests[test.article_id] = test

    def stop(self, article_id: str) -> bool:
        return self.tests.pop(article_id, None) is not None

    def serve(self, request_id: str, article_id: str) -> Served | None:
        test = self.tests.get(article_id)
        if test is None:
            return None
        served = test.serve()
        with self._lock:
            self._served[(request_id, article_id)] = (test, served.variant)
            while len(self._served) > self.max_served:
                # the oldest impression leaves unclicked: its outcome is a non-click
                (_, _), (old_test, variant) = self._served.popitem(last=False)
                old_test.record(variant, False)
        return served

    def on_click(self, request_id: str, article_id: str) -> bool:
        """A click on an item served with a variant: a success for that variant."""
        with self._lock:
            hit = self._served.pop((request_id, article_id), None)
        if hit is None:
            return False
        test, variant = hit
        test.record(variant, True)
        test.maybe_promote()
        return True

    def close_impressions(self, older_than: int | None = None) -> int:
        """Count served items without a click as non-clicks (all, or all but the newest
        `older_than`); returns how many. Serving calls it as impressions age out."""
        n = 0
        with self._lock:
            keep = 0 if older_than is None else older_than
            while len(self._served) > keep:
                (_, _), (test, variant) = self._served.popitem(last=False)
                test.record(variant, False)
                n += 1
        for test in self.tests.values():
            test.maybe_promote()
        return n
