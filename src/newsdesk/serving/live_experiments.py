"""Experiments whose slate or variant is decided per request: interleaving and bandits.

    POST /v1/recommendations
      assignment (sticky hashing, ExperimentAssigner)
        ├─ type ab            -> the variant's model, as before
        ├─ type interleaving  -> both variants' slates, team-draft interleaved per request;
        │                        exposure row: variant "interleaved", teams[i] = 0 / 1
        └─ type bandit        -> a variant drawn with the Thompson-sampling probabilities of
                                 the moment; exposure row: assignment_propensity = P(variant)

Interleaving (Radlinski et al. 2008, `newsdesk.experiments.interleaving.team_draft`): the coin
of each request is seeded by its request id, so a slate can be reproduced from the log. Each
click is credited to the team of its position by the report
(`newsdesk.experiments.live_analysis`).

Bandit allocation: `BanditAllocator` re-reads the event log every `interval_s` (a thread per
process) and turns each arm's slates and clicked slates into a Beta(1 + clicked, 1 + not
clicked) posterior; the allocation is P(arm is best) under those posteriors (exact for two
arms, Monte Carlo otherwise; `ThompsonSampler.probabilities`), floored at `min_propensity` so
every arm keeps being explored and inverse-propensity weights stay bounded. Every process reads
the same shared event log (SQLite WAL file or Redis Stream), so the workers and replicas
converge on the same allocation within one interval without talking to each other. The
probability actually used for a request is logged with its slate: the report's IPS estimates
of each arm's click rate stay unbiased although the split moved during the experiment.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from newsdesk.experiments.bandits import ThompsonSampler
from newsdesk.experiments.config import ExperimentConfig, Variant
from newsdesk.experiments.exposure import SEP
from newsdesk.experiments.interleaving import team_draft
from newsdesk.experiments.live_tally import ExposureTally
from newsdesk.models.base import RequestContext, ScoredArticle
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.periodic import Periodic
from newsdesk.serving.recommend_pipeline import PipelineResult
from newsdesk.serving.variants import Assignment, ExperimentAssigner, resolve_model

if TYPE_CHECKING:
    from newsdesk.data.eventlog import EventLog
    from newsdesk.serving.app import Services

log = get_logger("newsdesk.serving.live_experiments")
INTERLEAVED = "interleaved"


def request_rng(request_id: str) -> np.random.Generator:
    """The seeded generator of one request (the same request id draws the same coins)."""
    return np.random.default_rng(int.from_bytes(
        hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "little"))


@dataclass(frozen=True)
class Allocation:
    arms: tuple[str, ...]
    probabilities: np.ndarray  # P(arm), sums to 1
    posterior: dict[str, dict[str, float]]


class BanditAllocator:
    """Thompson-sampling allocation of every bandit experiment, from the event log."""

    def __init__(self, event_log: EventLog, *, interval_s: float = 1.0,
                 min_propensity: float = 0.01, seed: int = 0) -> None:
        self.event_log = event_log
        self.interval_s = interval_s
        self.min_propensity = min_propensity
        self.seed = seed
        self.tally = ExposureTally()
        self._arms: dict[str, tuple[str, ...]] = {}  # experiment -> its arms (variant names)
        self._alloc: dict[str, Allocation] = {}
        self._lock = threading.Lock()
        self._job = Periodic("bandit-allocator", self.interval_s, self.update)

    def configure(self, configs: dict[str, ExperimentConfig]) -> None:
        """The bandit experiments to allocate (called when the registry changes)."""
        arms = {e.id: tuple(v.name for v in e.variants) for e in configs.values()
                if e.type == "bandit"}
        with self._lock:
            self._arms = arms
            self.tally.watch = set(arms)
        self.update(read=False)

    def allocation(self, experiment_id: str) -> Allocation | None:
        return self._alloc.get(experiment_id)

    def choose(self, experiment_id: str, rng: np.random.Generator) -> tuple[str, float] | None:
        """(arm, its probability) for one request; None if not a known bandit."""
        alloc = self._alloc.get(experiment_id)
        if alloc is None:
            return None
        k = int(rng.choice(len(alloc.arms), p=alloc.probabilities))
        return alloc.arms[k], float(alloc.probabilities[k])

    def update(self, read: bool = True) -> None:
        """Read new events and recompute every allocation."""
        with self._lock:
            if read and not self._arms:
                # no bandit running: skip the log without parsing it (a bandit created later
                # has no past slates to learn from)
                last = getattr(self.event_log, "last_seq", None)
                if last is not None:
                    self.tally.seq = int(last())
            elif read:
                self.tally.consume(self.event_log.read(self.tally.seq, 500_000))
            out = {}
            for exp_id, arms in self._arms.items():
                sampler = ThompsonSampler(arms, seed=self.seed,
                                          min_propensity=self.min_propensity)
                counts = self.tally.counts.get(exp_id, {})
                for i, arm in enumerate(arms):
                    c = counts.get(arm)
                    if c is not None:
                        sampler.alpha[i] += c.clicked_slates
                        sampler.beta[i] += c.requests - c.clicked_slates
                probs = sampler.probabilities()
                out[exp_id] = Allocation(arms, probs, sampler.state())
            self._alloc = out

    def start(self) -> BanditAllocator:
        self._job.start()  # a failing update keeps the last posterior; the next one retries
        return self

    def stop(self) -> None:
        self._job.stop()


class LiveExperiments:
    """Serves the slate of a request under interleaving / bandit experiments (see module)."""

    def __init__(self, assigner: ExperimentAssigner, bandits: BanditAllocator) -> None:
        self.assigner = assigner
        self.bandits = bandits
        self._version = -1

    def _configs(self) -> dict[str, ExperimentConfig]:
        configs = self.assigner.configs
        if self.assigner.generation != self._version:  # the registry changed
            self._version = self.assigner.generation
            self.bandits.configure(configs)
        return configs

    async def serve(self, svc: Services, ctx: RequestContext, assignment: Assignment,
                    request_id: str, model: Any) -> tuple[PipelineResult, Assignment,
                                                         dict[str, Any]]:
        """The slate, the assignment as served and the extra exposure fields."""
        if assignment.experiment is None:
            return await svc.pipeline.recommend(ctx, model), assignment, {}
        configs = self._configs()
        exps = assignment.experiment.split(SEP)
        for i, exp_id in enumerate(exps):
            config = configs.get(exp_id)
            if config is None or config.type == "ab":
                continue
            if self.assigner.rollouts.fraction(exp_id) == 0.0:
                continue  # killed: the assigner already gave the control variant
            if config.type == "interleaving":
                result, teams = await self._interleave(svc, ctx, config, request_id)
                return result, _with_variant(assignment, i, INTERLEAVED), {"teams": teams}
            chosen = self.bandits.choose(exp_id, request_rng(request_id))
            if chosen is None:
                break
            arm, p = chosen
            variant = config.variant(arm)
            result = await svc.pipeline.recommend(ctx, _model(svc, variant))
            return (result, _with_variant(assignment, i, arm, variant.bundle),
                    {"assignment_propensity": p})
        return await svc.pipeline.recommend(ctx, model), assignment, {}

    async def _interleave(self, svc: Services, ctx: RequestContext, config: ExperimentConfig,
                          request_id: str) -> tuple[PipelineResult, list[int]]:
        a, b = config.variants[0], config.variants[1]
        # both rankings in one pool job (one wait for the pool, one deadline)
        ra, rb = await svc.pipeline.recommend_each(ctx, (_model(svc, a), _model(svc, b)))
        items: dict[str, ScoredArticle] = {}
        for it in (*ra.items, *rb.items):
            items.setdefault(it.article_id, it)
        slate = team_draft([it.article_id for it in ra.items], [it.article_id for it in rb.items],
                           ctx.k, request_rng(request_id))
        result = PipelineResult(items=[items[x] for x in slate.article_ids],
                                model_version=f"{ra.model_version}|{rb.model_version}",
                                degraded=ra.degraded or rb.degraded)
        return result, slate.teams


def _model(svc: Services, variant: Variant) -> Any:
    return resolve_model(Assignment(model_version=variant.bundle, pipeline=variant.pipeline),
                         svc.registry)


def _with_variant(assignment: Assignment, i: int, name: str,
                  bundle: str | None = None) -> Assignment:
    names = (assignment.variant or "").split(SEP)
    names[i] = name
    return Assignment(assignment.experiment, SEP.join(names),
                      bundle if bundle is not None else assignment.model_version,
                      assignment.pipeline)


def start_live_experiments(svc: Services) -> LiveExperiments | None:
    """The live-experiment server of an app using the experiments package (else None)."""
    if not isinstance(svc.assigner, ExperimentAssigner):
        return None
    bandits = BanditAllocator(svc.event_log, interval_s=svc.settings.bandit_update_s)
    live = LiveExperiments(svc.assigner, bandits)
    live._configs()
    bandits.update()  # the posterior from what is already logged, before serving
    bandits.start()
    return live


async def serve_slate(svc: Services, ctx: RequestContext, assignment: Assignment,
                      request_id: str, model: Any) -> tuple[PipelineResult, Assignment,
                                                           dict[str, Any]]:
    """The route's entry point: plain serving unless a live experiment decides the slate."""
    live: LiveExperiments | None = svc.live
    if live is None or assignment.experiment is None:
        return await svc.pipeline.recommend(ctx, model), assignment, {}
    return await live.serve(svc, ctx, assignment, request_id, model)
