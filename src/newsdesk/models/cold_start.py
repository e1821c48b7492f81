"""Semantic cold start: a seed from stated interests or a referring article.

    "Bundesliga, Klima, tech startups" ──split into interests──> embed each (bundle embedder)
    referring article id ──────────────> the catalog's embedding of it
         each interest vector ──nearest live articles──> anchors (stand-in clicks)
         mean of the vectors ──> the seed vector (explanations: "matches your interests")
    ──> SeedProfile (features.interest_seeds), written to the online store

Why anchors and not just the vector: the ranker was trained on readers with clicks. A reader
with a profile but no clicks is a combination it never saw, and it ranks such a reader as cold
(measured: benchmarks/cold_start.py). With the nearest articles of each stated interest as
stand-in clicks, every feature (profile similarity, category counts, co-clicks) takes values
the ranker knows. Each interest gets its own anchors, so "Bundesliga, Klima" seeds both topics
instead of one averaged vector between them.
"""

from __future__ import annotations

import re

import numpy as np

from newsdesk.content.embedder import Embedder
from newsdesk.errors import InvalidInput
from newsdesk.features.interest_seeds import SeedProfile
from newsdesk.models.candidates.base import Workspace

MAX_TEXT_CHARS = 1000
MAX_INTERESTS = 8
_SPLIT = re.compile(r"[,;\n|/]+|\s+(?:and|und|&)\s+")


def interests_of(text: str) -> list[str]:
    """The stated interests of a free text: its comma / semicolon / "and"-separated parts."""
    parts = [p.strip(" .!?-") for p in _SPLIT.split(text)]
    return [p for p in parts if p][:MAX_INTERESTS]


def seed_profile(ws: Workspace, embedder: Embedder | None, now: float, *,
                 text: str | None = None, article_id: str | None = None,
                 anchors_per_interest: int = 3, max_anchors: int = 10) -> SeedProfile:
    """The seed of a reader who stated `text` and/or arrived from `article_id` (one needed).

    Raises InvalidInput naming the field: empty or too long text, an unknown article, or
    text without an embedder to embed it."""
    vectors: list[np.ndarray] = []
    source = []
    if text is not None:
        text = text.strip()
        if not text or len(text) > MAX_TEXT_CHARS:
            raise InvalidInput(f"text: must be 1..{MAX_TEXT_CHARS} characters, "
                               f"got {len(text)}", field="text")
        if embedder is None:
            raise InvalidInput("text: this model has no content embedder", field="text")
        parts = interests_of(text) or [text]
        vectors += list(np.asarray(embedder.embed(parts), dtype=np.float32))
        source.append("text")
    if article_id is not None:
        i = ws.catalog.index.get(article_id)
        if i is None:
            raise InvalidInput(f"article_id: unknown article {article_id!r}", field="article_id")
        vectors.append(ws.catalog.embeddings[i].astype(np.float32))
        source.append("article")
    if not vectors:
        raise InvalidInput("field 'text': give text or article_id (one of them is required)",
                           field="text")
    mean = np.mean(vectors, axis=0)
    norm = float(np.linalg.norm(mean))
    mean = mean / norm if norm > 0 else mean
    anchors = _anchors(ws, np.stack(vectors), now, anchors_per_interest, max_anchors,
                       exclude=article_id)
    cat = ws.catalog
    codes = cat.category[cat.lookup(list(anchors))] if anchors else np.zeros(0, np.int64)
    shares = np.bincount(codes, minlength=len(cat.categories)) / max(len(codes), 1)
    return SeedProfile(mean.astype(np.float32),
                       {cat.categories[c]: float(s) for c, s in enumerate(shares) if s > 0},
                       "+".join(source), anchors, float(now))


def _anchors(ws: Workspace, vectors: np.ndarray, now: float, per: int, cap: int,
             exclude: str | None) -> tuple[str, ...]:
    """Round robin over the interests: each one's nearest live articles, best first."""
    live = ws.live_set(now).indices
    if len(live) == 0:
        return ()
    sims = vectors @ ws.live_embeddings(live).T  # (interests, live)
    ranked = np.argsort(-sims, axis=1, kind="stable")[:, : per + 1]
    out: list[str] = []
    for r in range(ranked.shape[1]):
        for row in ranked[:, r].tolist():
            aid = ws.catalog.ids[int(live[row])]
            if aid != exclude and aid not in out and len(out) < cap:
                out.append(aid)
    return tuple(out)
