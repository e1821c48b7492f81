"""Exploration in the recommend path: a seeded share of requests gets a Plackett-Luce slate.

    explorer = Explorer.from_settings(settings)
    plan = explorer.plan(request_id, surface)        # None: this request is not explored
    ctx = dataclasses.replace(ctx, k=plan.pool_size(k)) if plan else ctx
    result = await pipeline.recommend(ctx, model)
    served = explorer.serve(result.items, k, plan, personalised=result.stages.get(...))
    # served.items (k), served.propensities (per position), served.policy -> exposure log

Only production traffic explores (the route asks for a plan when the request is in no
experiment: interleaving, bandit and A/B slates keep their own designs). Which requests explore
is decided by a keyed hash of (seed, request_id): reproducible for a
given request id, the same in every worker and replica, and the share holds across them
without coordination. The same hash seeds the PL draw, so replaying a request id reproduces
its slate. A plan asks the pipeline for `k + pool` items; the PL pool is the items the
personalised stage contributed (their scores share one scale). When that pool has fewer than
k items (a degraded request, a thin catalog) the slate is served deterministically and logged
so: the policy is what actually served, never what was planned.

The policy string in the exposure log is `deterministic` (propensity 1.0 at every position) or
`plackett_luce(T=<temperature>,M=<pool size>)`; the propensities are the exact marginal
P(item at position) of `newsdesk.experiments.exploration`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from newsdesk.errors import ConfigError
from newsdesk.experiments.exploration import pl_logits, sample_slate, slate_propensities
from newsdesk.models.base import ScoredArticle

DETERMINISTIC = "deterministic"


def pl_policy_name(temperature: float, pool: int) -> str:
    return f"plackett_luce(T={temperature:g},M={pool})"


class SurfaceExploration(BaseModel):
    """Exploration of one surface: share of its requests, PL temperature, extra pool items."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(default=0.0, ge=0.0, le=1.0)
    temperature: float = Field(default=1.0, gt=0.0, le=1000.0)
    pool: int = Field(default=10, ge=1, le=500)  # items beyond k the PL draw chooses from


@dataclass(frozen=True, slots=True)
class ExplorationPlan:
    """This request explores: draw from a pool of k + pool items with these uniforms' seed."""

    temperature: float
    pool: int
    seed: int  # seeds the PL draw (from the request hash)

    def pool_size(self, k: int) -> int:
        return k + self.pool


@dataclass(frozen=True, slots=True)
class ServedSlate:
    items: list[ScoredArticle]
    propensities: list[float]
    policy: str


class Explorer:
    """Per-surface exploration decisions and the PL draw (see module docstring)."""

    def __init__(self, surfaces: Mapping[str, SurfaceExploration] | None = None,
                 default: SurfaceExploration | None = None, seed: int = 0) -> None:
        self.surfaces = dict(surfaces or {})
        self.default = default or SurfaceExploration()
        self._key = hashlib.sha256(f"newsdesk-exploration:{seed}".encode()).digest()[:32]
        self.enabled = self.default.share > 0 or any(s.share > 0 for s in self.surfaces.values())

    @classmethod
    def from_settings(cls, settings: object) -> Explorer:
        """From ServeSettings' exploration_* fields (validated there)."""
        default = SurfaceExploration(
            share=getattr(settings, "exploration_share", 0.0),
            temperature=getattr(settings, "exploration_temperature", 1.0),
            pool=getattr(settings, "exploration_pool", 10))
        raw = getattr(settings, "exploration_surfaces", None) or {}
        surfaces = {}
        for name, spec in raw.items():
            try:  # a per-surface entry overrides the defaults it names
                surfaces[name] = SurfaceExploration(**{**default.model_dump(), **dict(spec)})
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"setting 'exploration_surfaces.{name}': {exc}") from exc
        return cls(surfaces, default, getattr(settings, "exploration_seed", 0))

    def config(self, surface: str) -> SurfaceExploration:
        return self.surfaces.get(surface, self.default)

    def _hash(self, request_id: str) -> tuple[float, int]:
        digest = hashlib.blake2b(request_id.encode(), digest_size=16, key=self._key).digest()
        u = int.from_bytes(digest[:8], "big") / 2.0**64
        return u, int.from_bytes(digest[8:], "big")

    def plan(self, request_id: str, surface: str) -> ExplorationPlan | None:
        """The request's exploration plan, or None (deterministic); ~1 us when disabled."""
        if not self.enabled:
            return None
        cfg = self.config(surface)
        if cfg.share <= 0:
            return None
        u, seed = self._hash(request_id)
        if u >= cfg.share:
            return None
        return ExplorationPlan(cfg.temperature, cfg.pool, seed)

    def serve(self, items: list[ScoredArticle], k: int, plan: ExplorationPlan | None,
              personalised: int = 0) -> ServedSlate:
        """The k served items with their per-position propensities and the serving policy.

        items: the pipeline's slate in order (the first `personalised` came from the model and
        carry its scores). Without a plan, or with a pool smaller than k, the first k items are
        served deterministically (propensity 1.0).
        """
        n_pool = min(personalised, len(items))
        if plan is None or n_pool < k or k <= 0:
            head = items[:k]
            return ServedSlate(head, [1.0] * len(head), DETERMINISTIC)
        pool = items[:n_pool]
        logits = pl_logits(np.fromiter((it.score for it in pool), float, n_pool),
                           plan.temperature)
        uniforms = np.random.default_rng(plan.seed).random(n_pool)
        picked = sample_slate(logits, k, uniforms)
        props = slate_propensities(logits, picked)
        # a value that underflowed to 0 would make the record invalid: floor at the smallest
        # positive double (the true value is below 1e-13 and such an item is never drawn)
        props = np.maximum(props, np.finfo(float).tiny)
        return ServedSlate([pool[i] for i in picked], props.tolist(),
                           pl_policy_name(plan.temperature, n_pool))
