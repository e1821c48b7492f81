"""The experiment hook of the recommend path.

A `VariantAssigner` decides, per request, which experiment and variant a user is in and which
model version serves them. `ProductionOnly` puts everyone in the single production variant (no
experiment, the active model). `ExperimentAssigner` (the app's default) is backed by the
experiments package: the versioned `ExperimentRegistry` (SQLite), `Assigner` (sticky hashing,
layers, holdout) and the `RolloutController` (staged rollouts, kill switch, auto-rollback)::

    assigner = ExperimentAssigner.open(state_dir, model_registry)
    assigner.assign("u42", "front_page")
    # -> Assignment(experiment="ranker-v2", variant="treatment", model_version="v13")

A unit in experiments of several layers gets the ``;``-joined experiment and variant names
(`newsdesk.experiments.exposure` encoding); the first variant naming a bundle picks the model.

What a variant serves: `bundle` names a model bundle version (kept loaded in the model
registry, see `ModelRegistry.pin`); `pipeline` names a serving pipeline from `PIPELINES`
("trending" = the non-personalised fallback chain: trending, then latest articles).

Kill switch / auto-rollback: the rollout state (a JSON file, re-read when its mtime changes,
one stat per experiment per request) gives fraction 0 to a killed or rolled-back experiment,
and from the next request on every unit of that experiment gets its control variant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from newsdesk.errors import ConfigError, InvalidInput
from newsdesk.experiments.assignment import Assigner
from newsdesk.experiments.config import ExperimentConfig, ExperimentSuite, RolloutPlan, Status
from newsdesk.experiments.exposure import SEP
from newsdesk.experiments.registry import (
    ExperimentRegistry,
    SqliteExperimentRegistry,
    StoredExperiment,
)
from newsdesk.experiments.rollout import (
    JsonFileRolloutStore,
    RolloutController,
    RolloutState,
    RolloutStatus,
)
from newsdesk.models.base import Recommender, RequestContext, ScoredArticle

if TYPE_CHECKING:
    from newsdesk.data.schema import Article
    from newsdesk.serving.model_registry import ModelRegistry


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str | None = None  # None: no experiment running for this request
    variant: str | None = None  # None: production
    model_version: str | None = None  # None: the registry's active model
    pipeline: str | None = None  # None: the personalised chain (see PIPELINES)


PRODUCTION = Assignment()


@runtime_checkable
class VariantAssigner(Protocol):
    def assign(self, unit_id: str, surface: str) -> Assignment:
        """The assignment of one randomisation unit (user or session id) on a surface;
        must be deterministic and cheap (called on every request)."""
        ...


class ProductionOnly:
    """Everyone gets the production variant."""

    def assign(self, unit_id: str, surface: str) -> Assignment:
        return PRODUCTION


class TrendingOnly(Recommender):
    """The "trending" pipeline: no personalised items, so the fallback chain (trending from the
    online store, then the latest live articles) fills the slate. A real, cheap baseline arm."""

    version = "pipeline:trending"

    def recommend(self, ctx: RequestContext) -> list[ScoredArticle]:
        return []

    def related(self, article_id: str, k: int, now: float) -> list[ScoredArticle]:
        return []

    def score(self, ctx: RequestContext, article_ids: Sequence[str]) -> np.ndarray:
        return np.zeros(len(article_ids))

    def upsert_articles(self, articles: Sequence[Article]) -> None:
        return None

    def remove_article(self, article_id: str) -> bool:
        return False


# pipeline name -> the model override it implies (None: the variant's bundle / the active model)
PIPELINES: dict[str, Recommender | None] = {"personalised": None, "default": None,
                                           "trending": TrendingOnly()}


def resolve_model(assignment: Assignment, models: ModelRegistry) -> Recommender | None:
    """The model serving an assignment; None means the active model."""
    if assignment.pipeline is not None:
        override = PIPELINES.get(assignment.pipeline)
        if override is not None:
            return override
    if assignment.model_version is None:
        return None
    return models.get(assignment.model_version)


def control_of(config: ExperimentConfig) -> str:
    """The variant everyone gets when the experiment is killed or rolled back."""
    if config.rollout is not None:
        return config.rollout.control
    names = [v.name for v in config.variants]
    return "control" if "control" in names else names[0]


class ExperimentAssigner:
    """Experiments from the registry, rollout state from the controller (see module docstring).

    Not thread-safe for changes: `create` / `kill` run on the event loop thread (admin routes),
    `assign` reads one immutable `Assigner` reference, so a change applies to the next request.
    """

    def __init__(self, registry: ExperimentRegistry, rollouts: RolloutController,
                 models: ModelRegistry | None = None) -> None:
        self.registry = registry
        self.rollouts = rollouts
        self.models = models
        self._rebuild()

    @classmethod
    def open(cls, state_dir: Path, models: ModelRegistry | None = None) -> ExperimentAssigner:
        """Registry in ``state_dir/experiments.db``, rollout state in ``rollouts.json``."""
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(SqliteExperimentRegistry(state_dir / "experiments.db"),
                   RolloutController(JsonFileRolloutStore(state_dir / "rollouts.json")), models)

    def close(self) -> None:
        close = getattr(self.registry, "close", None)
        if close is not None:
            close()

    def refresh(self) -> None:
        """Re-read the registry (another process changed it); call on the owner thread."""
        self._rebuild()

    def _rebuild(self) -> None:
        suite = self.registry.suite()
        # (variant name, pipeline, bundle) of the control of each plain A/B test (a staged
        # rollout's kill / rollback already reaches the Assigner as fraction 0)
        controls = {}
        for e in suite.experiments:
            if e.rollout is not None:
                continue
            c = e.variant(control_of(e))
            controls[e.id] = (c.name, c.pipeline, c.bundle)
        self._controls = controls
        # computed here, on the owner thread: the SQLite registry stays on that thread
        self._bundles = {v.bundle for e in suite.experiments if e.status is Status.RUNNING
                         for v in e.variants if v.bundle}
        self._assigner = Assigner.from_config(suite, rollouts=self.rollouts)
        # read by serving/live_experiments.py (interleaving / bandit types), rebuilt together
        self.configs = {e.id: e for e in suite.experiments if e.status is Status.RUNNING}
        self.generation = getattr(self, "generation", -1) + 1

    # -- the hot path ----------------------------------------------------------------------
    def assign(self, unit_id: str, surface: str) -> Assignment:
        found = self._assigner.assign(unit_id, surface)
        if not found:
            return PRODUCTION
        exps, names = [], []
        version = pipeline = None
        for a in found:
            name, pipe, bundle = a.variant, a.pipeline, a.bundle
            control = self._controls.get(a.experiment_id)
            # killed: fraction 0 -> control (one stat of the rollout file, ~2 us)
            if control is not None and self.rollouts.fraction(a.experiment_id) == 0.0:
                name, pipe, bundle = control
            exps.append(a.experiment_id)
            names.append(name)
            version = version or bundle
            pipeline = pipeline or pipe
        return Assignment(SEP.join(exps), SEP.join(names), version, pipeline)

    # -- changes (admin API) -------------------------------------------------------------------
    def bundles(self) -> set[str]:
        """Bundle versions the running experiments serve (to keep loaded)."""
        return set(self._bundles)

    def pin_bundles(self) -> None:
        """Load every bundle a running experiment serves (blocking: call from a thread)."""
        if self.models is not None:
            for version in sorted(self.bundles()):
                self.models.pin(version)

    def check(self, suite: ExperimentSuite) -> ExperimentSuite:
        """Validate new configs against the stored ones (layer overlap, pipeline names);
        returns the merged suite. Raises InvalidInput naming the field."""
        for i, e in enumerate(suite.experiments):
            for j, v in enumerate(e.variants):
                if v.pipeline is not None and v.pipeline not in PIPELINES:
                    raise InvalidInput(
                        f"field 'experiments.{i}.variants.{j}.pipeline': unknown pipeline "
                        f"'{v.pipeline}' (known: {sorted(PIPELINES)})",
                        field=f"experiments.{i}.variants.{j}.pipeline")
        new_ids = {e.id for e in suite.experiments}
        kept = [e for e in self.registry.suite().experiments if e.id not in new_ids]
        try:
            return ExperimentSuite(experiments=[*kept, *suite.experiments])
        except ValueError as exc:
            raise InvalidInput(f"field 'experiments': {exc}", field="experiments") from exc

    def create(self, suite: ExperimentSuite, actor: str) -> list[StoredExperiment]:
        """Store validated configs (bundles must be pinned before), start staged rollouts."""
        self.check(suite)
        stored = [self.registry.put(e, actor) for e in suite.experiments]
        for e in suite.experiments:
            if e.rollout is not None and self.rollouts.fraction(e.id) is None:
                self.rollouts.start(e.id, e.rollout, actor)
        self._rebuild()
        return stored

    def kill(self, experiment_id: str, actor: str, reason: str = "") -> None:
        """Everyone in the experiment gets its control variant from the next request on."""
        config = self.registry.get(experiment_id).config  # ConfigError if unknown
        if self.rollouts.fraction(experiment_id) is None:
            # a plain A/B test: a one-stage rollout record to carry the kill and its audit
            control = control_of(config)
            other = next((v.name for v in config.variants if v.name != control), control)
            self.rollouts.start(experiment_id,
                                RolloutPlan(stages=[1.0], treatment=other, control=control),
                                actor)
        self.rollouts.kill(experiment_id, actor, reason)

    def describe(self) -> list[dict[str, object]]:
        """Every stored experiment with its version and live rollout state (JSON-able)."""
        out = []
        for s in self.registry.latest():
            row: dict[str, object] = {"id": s.config.id, "version": s.version,
                                      "updated_at": s.updated_at,
                                      "config": s.config.model_dump(mode="json")}
            try:
                state = self.rollouts.state(s.config.id)
                row["rollout"] = {"status": state.status.value, "fraction": state.fraction,
                                  "stage": state.stage, "reason": _stop_reason(state)}
            except ConfigError:
                row["rollout"] = None
            row["killed"] = self.rollouts.fraction(s.config.id) == 0.0
            out.append(row)
        return out


def _stop_reason(state: RolloutState) -> str | None:
    """Why a stopped rollout stopped: the broken guardrails of a rollback (with their figures)
    or the reason given to the kill switch; None while running or after completion."""
    if state.status not in (RolloutStatus.ROLLED_BACK, RolloutStatus.KILLED):
        return None
    for h in reversed(state.history):
        if h["event"] == "rollback":
            return "; ".join(f"{g['name']} broken: {g['detail']}"
                             for g in h.get("guardrails", [])) or "rollback"
        if h["event"] == "kill":
            return f"killed by {h.get('actor')}: {h.get('reason') or 'no reason given'}"
    return None
