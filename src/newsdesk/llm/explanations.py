"""Why an item was recommended, in the reader's language, from the item's real ranking signals.

    served slate ──> collect_signals (per item: the evidence the ranker had) ──> render(lang)

An explanation may only say what the signals support. So it is built in two steps that can be
checked apart: `collect_signals` reads, for each served item, the evidence that was present at
serving time (which generator proposed it, the reader's recent clicks and their categories, the
co-click counts, the store's trending list, the publication time) and returns a `Signal` only
where that evidence holds; `render` turns signals into a sentence from fixed templates per
language (German and English). Nothing else reaches the text, so a test can recompute the
evidence of every named signal independently (tests/llm/test_explanations.py).

Cost: one read of the reader's clicks, one trending read, and one dot product per item against
at most `sim_clicks` click vectors; no LLM. An LLM may rewrite the rendered sentences offline
(cached per template and language), never on the request path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from newsdesk.features.online_store import OnlineStore
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle

Lang = Literal["en", "de"]
LANGS: tuple[Lang, ...] = ("en", "de")

# thresholds: the evidence an explanation needs before it names a signal
SIMILAR_MIN_COSINE = 0.45  # "because you read X": X is this close to the item (MiniLM cosine)
TOPIC_MIN_CLICKS = 2  # "you often read <category>": at least this many recent clicks there
FRESH_MAX_HOURS = 6.0  # "published N hours ago" only for items this young
TRENDING_TOP = 50  # "trending now": among the store's top-N by decayed clicks

# which signal speaks first for an item proposed by a generator (source -> preferred codes)
_PRIMARY: dict[str, tuple[str, ...]] = {
    "coclick": ("coclick", "read_similar"),
    "content": ("read_similar", "interest", "topic"),
    "category": ("topic", "interest"),
    "collaborative": ("collaborative",),
    "trending": ("trending",),
    "recency": ("latest", "fresh"),
    "editorial": ("latest", "fresh"),
}
_ORDER = ("coclick", "read_similar", "interest", "topic", "collaborative", "trending", "fresh",
          "latest")

TEMPLATES: dict[Lang, dict[str, str]] = {
    "en": {
        "read_similar": "Because you read “{title}”",
        "coclick": "Readers of “{title}” also read this",
        "topic": "You often read {category}",
        "interest": "Matches the interests you told us",
        "collaborative": "Popular with readers who share your interests",
        "trending": "Trending now",
        "fresh": "New: published {age}",
        "latest": "Latest in {category}",
        "none": "From today’s news",
        "age_lt1": "less than an hour ago",
        "age_1": "an hour ago",
        "age_n": "{n} hours ago",
    },
    "de": {
        "read_similar": "Weil Sie „{title}“ gelesen haben",
        "coclick": "Leser von „{title}“ lasen auch diesen Artikel",
        "topic": "Sie lesen oft {category}",
        "interest": "Passt zu den Interessen, die Sie angegeben haben",
        "collaborative": "Beliebt bei Lesern mit ähnlichen Interessen",
        "trending": "Gerade viel gelesen",
        "fresh": "Neu: erschienen {age}",
        "latest": "Neu in {category}",
        "none": "Aus den aktuellen Nachrichten",
        "age_lt1": "vor weniger als einer Stunde",
        "age_1": "vor einer Stunde",
        "age_n": "vor {n} Stunden",
    },
}
SIGNAL_CODES = frozenset(_ORDER)


@dataclass(frozen=True)
class Signal:
    """One piece of evidence for an item: `code` (SIGNAL_CODES), `strength` (orders signals
    of the same rank) and the values its template names (`title` of a read article,
    `category`, `age_hours`), plus `article_id` of the read article it refers to."""

    code: str
    strength: float = 0.0
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Explanation:
    text: str
    signals: tuple[Signal, ...]  # the signals the text names, in order


def resolve_lang(lang: str | None, locale: str | None = None) -> Lang:
    """The request's language: `lang`, else the locale's language ("de-AT" -> de), else en."""
    for value in (lang, locale):
        if value:
            short = value.split("-")[0].split("_")[0].lower()
            if short in LANGS:
                return short  # type: ignore[return-value]
    return "en"


def _age_text(hours: float, t: dict[str, str]) -> str:
    if hours < 1.0:
        return t["age_lt1"]
    n = int(hours)
    return t["age_1"] if n == 1 else t["age_n"].format(n=n)


def render(signals: Sequence[Signal], lang: Lang = "en", *, max_signals: int = 2) -> str:
    """The sentence naming the first `max_signals` signals (joined by " · "); a neutral
    phrase that claims nothing when there are none."""
    t = TEMPLATES[lang]
    parts = []
    for s in list(signals)[:max_signals]:
        args = dict(s.args)
        if s.code == "fresh":
            args["age"] = _age_text(float(args["age_hours"]), t)
        parts.append(t[s.code].format(**args))
    return " · ".join(parts) if parts else t["none"]


def order_signals(signals: Sequence[Signal], source: str) -> list[Signal]:
    """The generator's own evidence first (what proposed the item), then the rest in a fixed
    order, stronger first within a code."""
    primary = _PRIMARY.get(source, ())

    def key(s: Signal) -> tuple[int, int, float]:
        p = primary.index(s.code) if s.code in primary else len(primary)
        return (p, _ORDER.index(s.code), -s.strength)

    return sorted(signals, key=key)


class Explainer:
    """Collects the signals of served items and renders them (see the module docstring).

    `store` is the online store the model reads (clicks, trending); `categories` maps an
    article id to its category for models without a catalog of their own (the serving
    catalog), `published` its publication time (Unix s)."""

    def __init__(self, store: OnlineStore | None, *,
                 category_of: Any = None, published_of: Any = None) -> None:
        self.store = store
        self.category_of = category_of
        self.published_of = published_of

    def explain(self, ctx: RequestContext, items: Sequence[ScoredArticle],
                model: Recommender | None, lang: Lang = "en") -> list[Explanation]:
        signals = self.collect_signals(ctx, items, model)
        return [Explanation(render(s, lang), tuple(s[:2])) for s in signals]

    def collect_signals(self, ctx: RequestContext, items: Sequence[ScoredArticle],
                        model: Recommender | None) -> list[list[Signal]]:
        """Per item, its present signals, ordered (the first two are what `render` names)."""
        if not items:
            return []
        ids = [it.article_id for it in items]
        trending = self._trending(ctx.now)
        ws = getattr(model, "ws", None)
        if ws is not None:
            per_item = self._from_workspace(model, ctx, ids)
        else:
            per_item = self._from_serving(ctx, ids)
        out = []
        for it, found in zip(items, per_item, strict=True):
            if it.article_id in trending or it.source == "trending":
                found.append(Signal("trending", trending.get(it.article_id, 0.0)))
            if it.source == "collaborative":
                found.append(Signal("collaborative", float(it.score)))
            if it.source not in ("recency", "editorial"):  # "latest" speaks for those only
                found = [s for s in found if s.code != "latest"]
            out.append(order_signals(found, it.source))
        return out

    # -- evidence ----------------------------------------------------------------------------
    def _trending(self, now: float) -> dict[str, float]:
        if self.store is None:
            return {}
        try:
            return dict(self.store.trending(TRENDING_TOP, now))
        except Exception:  # an unavailable store: no trending claim, never a failed request
            return {}

    def _from_workspace(self, model: Any, ctx: RequestContext, ids: Sequence[str]
                        ) -> list[list[Signal]]:
        """The NewsRecommender path: its catalog (titles, embeddings, categories, publish
        times), the reader's clicks as the ranker saw them, and the co-click matrix."""
        ws = model.ws
        cat = ws.catalog
        # the reader's history only (the ranker's profiles are not needed here)
        history, _, seeded, _ = ws.history(ctx.user_id)
        known = history[history >= 0]
        anchor_emb = cat.embeddings[known] if seeded else None
        idx = cat.lookup(list(ids))
        clicks = known[:0] if seeded else known  # a seeded reader's anchors were never read
        recent = clicks[: ws.builder.sim_clicks]
        click_emb = cat.embeddings[recent] if len(recent) else None
        click_cats = np.bincount(cat.category[clicks], minlength=len(cat.categories)) \
            if len(clicks) else np.zeros(len(cat.categories), dtype=np.int64)
        coclick = getattr(model, "coclick", None)
        matrix = getattr(coclick, "matrix_", None)
        # co-click counts of every item with the reader's clicks in one sparse slice (one
        # slice per item cost ~0.3 ms each: most of explain=true's price)
        co_rows = co_counts = None
        if matrix is not None and len(clicks):
            co_rows = clicks[clicks < matrix.shape[0]]
            cols = np.where((idx >= 0) & (idx < matrix.shape[1]), idx, 0)
            if len(co_rows):
                co_counts = np.asarray(matrix[co_rows][:, cols].todense())
        # every item's best match at once: one matrix product per evidence kind
        cols = np.arange(len(ids))
        emb = cat.embeddings[np.where(idx >= 0, idx, 0)]  # (n, dim); unknown items skipped
        anchor_sim = (anchor_emb @ emb.T).max(axis=0) if anchor_emb is not None else None
        if click_emb is not None:
            sims = click_emb @ emb.T  # (recent, n)
            read_best = sims.argmax(axis=0)
            read_sim = sims[read_best, cols]
        if co_counts is not None:
            co_best = co_counts.argmax(axis=0)
            co_best_count = co_counts[co_best, cols]
        out: list[list[Signal]] = []
        for k, (aid, i) in enumerate(zip(ids, idx.tolist(), strict=True)):
            found: list[Signal] = []
            if i < 0:
                out.append(found)
                continue
            category = cat.category_name(i)
            if anchor_sim is not None and float(anchor_sim[k]) >= SIMILAR_MIN_COSINE:
                # a cold reader's stated interests: the item is an anchor (nearest to an
                # interest) or as close to one as "because you read"
                found.append(Signal("interest", float(anchor_sim[k])))
            if click_emb is not None and float(read_sim[k]) >= SIMILAR_MIN_COSINE:
                j = int(recent[read_best[k]])
                found.append(Signal("read_similar", float(read_sim[k]),
                                    {"title": cat.titles[j], "article_id": cat.ids[j]}))
            if co_counts is not None and co_rows is not None and i < matrix.shape[1] \
                    and co_best_count[k] > 0:
                j = int(co_rows[co_best[k]])
                found.append(Signal("coclick", float(co_best_count[k]),
                                    {"title": cat.titles[j], "article_id": cat.ids[j]}))
            c = int(cat.category[i])
            if c < len(click_cats) and click_cats[c] >= TOPIC_MIN_CLICKS:
                found.append(Signal("topic", float(click_cats[c]), {"category": category}))
            self._time_signals(found, float(cat.published[i]), ctx.now, category, aid)
            out.append(found)
        return out

    def _from_serving(self, ctx: RequestContext, ids: Sequence[str]) -> list[list[Signal]]:
        """Any other model: the serving catalog's categories and publish times and the
        reader's clicks from the store (no titles or embeddings: no "because you read")."""
        counts: dict[str, int] = {}
        if self.store is not None and self.category_of is not None:
            try:
                clicks = self.store.user_clicks(ctx.user_id)
            except Exception:
                clicks = []
            for c in clicks:
                name = self.category_of(c.article_id)
                if name is not None:
                    counts[name] = counts.get(name, 0) + 1
        out: list[list[Signal]] = []
        for aid in ids:
            found: list[Signal] = []
            category = self.category_of(aid) if self.category_of is not None else None
            if category is not None and counts.get(category, 0) >= TOPIC_MIN_CLICKS:
                found.append(Signal("topic", float(counts[category]), {"category": category}))
            published = self.published_of(aid) if self.published_of is not None else None
            if published is not None:
                self._time_signals(found, float(published), ctx.now, category, aid)
            out.append(found)
        return out

    @staticmethod
    def _time_signals(found: list[Signal], published: float, now: float,
                      category: str | None, aid: str) -> None:
        age_h = (now - published) / 3600.0
        if np.isfinite(age_h) and 0.0 <= age_h <= FRESH_MAX_HOURS:
            found.append(Signal("fresh", -age_h, {"age_hours": age_h}))
            if category:
                # "latest in X" needs a fresh article: only then is it among the latest
                found.append(Signal("latest", -age_h, {"category": category}))
