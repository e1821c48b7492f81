"""Staged rollouts: a schedule of treatment fractions advanced only while guardrails hold.

State machine per experiment::

    running(stage i) --advance--> running(stage i+1) --...--> completed (fraction 1.0)
         |  \\--guardrail breach--> rolled_back (fraction 0)
         \\----kill switch-------> killed (fraction 0)

`RolloutController.evaluate` takes the guardrail counts of control and treatment since the
current stage began and decides: ``rollback`` if any guardrail is *significantly* broken
(one-sided test at `guardrails.alpha`), ``advance`` once the stage has `min_requests_per_stage`
treatment requests and every guardrail is *shown* to hold (non-inferiority at 5 %), else
``hold``.

The guardrails: error rate (5xx and degraded answers) at most `max_error_rate_increase` above
control's; p99 latency at most `max_p99_latency_increase_ms` above control's (and under
`max_p99_latency_ms` unless control is as slow); CTR at most `ctr_margin` below control's.
The breach tests are exact where a stage starts small: a treatment arm at 2 % of traffic has a
few dozen requests when it must already be stopped, and a normal approximation with the
observed variance would "prove" a breach from one unlucky request.

The controller is the `FractionSource` of the `Assigner`: serving reads the live fraction on
every request, so a kill switch takes effect on the next request, also when set by another
process (the JSON store re-reads its file when its mtime changes).

State lives in a `RolloutStore`: `JsonFileRolloutStore` (atomic replace of one JSON file,
survives restarts) or `InMemoryRolloutStore` (tests). Every transition is appended to the
experiment's `history` (the rollout's audit log).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from scipy.stats import binom, norm

from newsdesk.errors import ConfigError
from newsdesk.experiments.config import Guardrails, RolloutPlan


class RolloutStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    ROLLED_BACK = "rolled_back"
    KILLED = "killed"


class RolloutState(BaseModel):
    experiment_id: str
    plan: RolloutPlan
    stage: int = 0
    status: RolloutStatus = RolloutStatus.RUNNING
    history: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def fraction(self) -> float:
        if self.status in (RolloutStatus.ROLLED_BACK, RolloutStatus.KILLED):
            return 0.0
        if self.status is RolloutStatus.COMPLETED:
            return 1.0
        return self.plan.stages[self.stage]


class RolloutStore(ABC):
    """Persists rollout states; `load` returns every experiment's state."""

    @abstractmethod
    def load(self) -> dict[str, RolloutState]: ...

    @abstractmethod
    def save(self, states: dict[str, RolloutState]) -> None: ...

    def changed(self) -> bool:
        """True if another writer changed the stored state since our last load/save."""
        return False


class InMemoryRolloutStore(RolloutStore):
    def __init__(self) -> None:
        self._blob = "{}"

    def load(self) -> dict[str, RolloutState]:
        return {k: RolloutState.model_validate(v) for k, v in json.loads(self._blob).items()}

    def save(self, states: dict[str, RolloutState]) -> None:
        self._blob = json.dumps({k: s.model_dump(mode="json") for k, s in states.items()})


class JsonFileRolloutStore(RolloutStore):
    """One JSON file, replaced atomically (write temp file, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._mtime: tuple[int, int] | None = None

    def _stat(self) -> tuple[int, int] | None:
        # mtime AND inode: file times tick coarsely (~ms), so two writes within one tick share
        # an mtime, but every save is a rename of a new file, hence a new inode
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_ino

    def load(self) -> dict[str, RolloutState]:
        self._mtime = self._stat()
        if self._mtime is None:
            return {}
        try:
            raw = json.loads(self.path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{self.path}: rollout state is not valid JSON: {exc}") from exc
        return {k: RolloutState.model_validate(v) for k, v in raw.items()}

    def save(self, states: dict[str, RolloutState]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps({k: s.model_dump(mode="json") for k, s in states.items()}, indent=1)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".rollout-")
        with os.fdopen(fd, "w") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        self._mtime = self._stat()

    def changed(self) -> bool:
        return self._stat() != self._mtime


@dataclass(frozen=True)
class ArmStats:
    """Guardrail counts of one arm since the current stage began.

    `errors` counts failed requests (5xx) and degraded answers among `requests`.
    `latencies_ms`: a sample of the arm's request latencies; when given (both arms), the
    latency guardrail tests it against control's sample, else it compares `p99_latency_ms`
    with the absolute limit only.
    """

    requests: int
    errors: int
    p99_latency_ms: float
    impressions: int  # articles shown
    clicks: int
    latencies_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class GuardrailResult:
    name: str
    holds: bool  # shown to hold (allows advancing)
    breached: bool  # shown to be broken (forces a rollback)
    detail: str


def check_guardrails(
    g: Guardrails, control: ArmStats, treatment: ArmStats
) -> list[GuardrailResult]:
    """Test every guardrail; normal approximations to binomial proportions."""
    z_breach = norm.isf(g.alpha)
    z_hold = norm.isf(0.05)
    out = [_error_rate(g, control, treatment, z_hold), _latency(g, control, treatment)]
    # CTR: treatment - (1 - margin) * control, non-inferiority style
    cc = control.clicks / max(control.impressions, 1)
    ct = treatment.clicks / max(treatment.impressions, 1)
    m = 1.0 - g.ctr_margin
    se = math.sqrt(ct * (1 - ct) / max(treatment.impressions, 1)
                   + m * m * cc * (1 - cc) / max(control.impressions, 1))
    se = max(se, 1e-12)
    gap = ct - m * cc
    # the breach test uses the treatment variance AT the boundary (ct = m * cc), not the
    # observed one: with a few treatment impressions and no clicks yet the observed variance
    # is 0, and the plug-in test would "prove" a breach from control data alone
    p0 = min(max(m * cc, 1e-12), 1.0)
    se0 = math.sqrt(p0 * (1 - p0) / max(treatment.impressions, 1)
                    + m * m * cc * (1 - cc) / max(control.impressions, 1))
    out.append(GuardrailResult(
        "ctr", holds=bool(gap - z_hold * se > 0),
        breached=bool(treatment.impressions > 0 and gap + z_breach * max(se0, 1e-12) < 0),
        detail=f"control {cc:.4f}, treatment {ct:.4f}, margin {g.ctr_margin:.0%}"))
    return out


def _error_rate(g: Guardrails, control: ArmStats, treatment: ArmStats, z_hold: float
                ) -> GuardrailResult:
    """Difference of error proportions against the allowed absolute increase."""
    nc, nt = max(control.requests, 1), max(treatment.requests, 1)
    pc, pt = control.errors / nc, treatment.errors / nt
    se = max(math.sqrt(pc * (1 - pc) / nc + pt * (1 - pt) / nt), 1e-12)
    excess = pt - pc - g.max_error_rate_increase
    # breach: treatment's errors are improbable if its rate were at the boundary
    # p0 = control's + the allowed increase. Exact binomial tail (one failed request of a few
    # is not a breach), AND the normal test with the variance at the boundary (control's own
    # rate is an estimate too)
    p0 = min(max(pc + g.max_error_rate_increase, 1e-12), 1.0)
    exact = treatment.errors > 0 and float(binom.sf(treatment.errors - 1, nt, p0)) < g.alpha
    se0 = max(math.sqrt(p0 * (1 - p0) / nt + pc * (1 - pc) / nc), 1e-12)
    normal = excess - norm.isf(g.alpha) * se0 > 0
    return GuardrailResult(
        "error_rate", holds=bool(excess + z_hold * se < 0),
        breached=bool(treatment.requests > 0 and exact and normal),
        detail=f"control {pc:.4f} ({control.errors}/{control.requests}), treatment {pt:.4f} "
               f"({treatment.errors}/{treatment.requests}), allowed "
               f"+{g.max_error_rate_increase}")


def _p99(sample: tuple[float, ...]) -> float:
    return float(sorted(sample)[min(len(sample) - 1, math.ceil(0.99 * len(sample)) - 1)])


def _latency(g: Guardrails, control: ArmStats, treatment: ArmStats) -> GuardrailResult:
    """p99 latency of treatment against control's (samples) and the absolute limit.

    Breach: more treatment requests are slower than the limit than a p99 at the limit allows,
    by an exact one-sided binomial test at `alpha` (a p99 <= L means P(latency > L) <= 1 %).
    The relative limit is control's p99 + `max_p99_latency_increase_ms`, control's p99 taken at
    its upper confidence bound (an order statistic) so its own noise cannot cause a breach.
    """
    t, c = treatment.latencies_ms, control.latencies_ms
    if not t or not c:  # summary figures only: the absolute limit on the reported p99
        bad = treatment.requests > 0 and treatment.p99_latency_ms > g.max_p99_latency_ms
        return GuardrailResult(
            "p99_latency_ms", holds=bool(treatment.requests > 0 and not bad), breached=bool(bad),
            detail=f"treatment p99 {treatment.p99_latency_ms:.1f} ms, limit "
                   f"{g.max_p99_latency_ms}")
    cs = sorted(c)
    n = len(cs)
    upper = min(n - 1, math.ceil(0.99 * n + norm.isf(g.alpha) * math.sqrt(n * 0.99 * 0.01)))
    p99_c, p99_t = _p99(c), _p99(t)
    relative = cs[upper] + g.max_p99_latency_increase_ms
    # the absolute limit binds only a treatment slower than control: when every arm is over it
    # (a loaded machine), that is not the variant's doing
    limit = min(relative, g.max_p99_latency_ms) if p99_t > p99_c else relative

    def tail(limit_ms: float) -> float:  # P(>= this many over the limit | p99 at the limit)
        over = sum(1 for x in t if x > limit_ms)
        return float(binom.sf(over - 1, len(t), 0.01)) if over else 1.0

    enough_control = n >= 100  # a p99 of fewer requests is a maximum, not a percentile
    breached = enough_control and tail(limit) < g.alpha
    holds = (enough_control and p99_t <= p99_c + g.max_p99_latency_increase_ms
             and (p99_t <= g.max_p99_latency_ms or p99_t <= p99_c))
    return GuardrailResult(
        "p99_latency_ms", holds=bool(holds), breached=bool(breached),
        detail=f"control p99 {p99_c:.1f} ms ({n}), treatment p99 {p99_t:.1f} ms ({len(t)}), "
               f"allowed +{g.max_p99_latency_increase_ms} ms, limit {g.max_p99_latency_ms} ms")


def _now() -> str:
    return datetime.now(UTC).isoformat()


class RolloutController:
    """Owns rollout states; the live `fraction` source for the `Assigner`."""

    def __init__(self, store: RolloutStore, refresh_interval_s: float = 0.0) -> None:
        """`refresh_interval_s`: how often to check the store for changes by other processes
        (0 = on every call, ~1 us stat; a kill switch set in this process is always immediate)."""
        self.store = store
        self.refresh_interval_s = refresh_interval_s
        self._states = store.load()
        self._checked = time.monotonic()
        # changes come from the event loop (admin API) and the autopilot thread
        self._lock = threading.RLock()

    def _refresh(self) -> None:
        if self.refresh_interval_s > 0.0:
            now = time.monotonic()
            if now - self._checked < self.refresh_interval_s:
                return
            self._checked = now
        if self.store.changed():
            with self._lock:
                self._states = self.store.load()

    def _commit(self, state: RolloutState, event: str, actor: str, **detail: Any) -> None:
        with self._lock:
            state.history.append({"at": _now(), "event": event, "actor": actor,
                                  "stage": state.stage, "fraction": state.fraction, **detail})
            self._states[state.experiment_id] = state
            self.store.save(self._states)

    def states(self) -> dict[str, RolloutState]:
        """Every rollout's state (re-read if another process changed the store)."""
        self._refresh()
        return dict(self._states)

    def note(self, experiment_id: str, event: str, actor: str, **detail: Any) -> None:
        """Append a non-transition entry (e.g. a hold and its reason) to the audit history."""
        with self._lock:
            self._commit(self.state(experiment_id), event, actor, **detail)

    def state(self, experiment_id: str) -> RolloutState:
        self._refresh()
        if experiment_id not in self._states:
            raise ConfigError(f"no rollout for experiment '{experiment_id}'")
        return self._states[experiment_id]

    def fraction(self, experiment_id: str) -> float | None:
        """Live treatment fraction (None without a rollout); re-reads a changed store."""
        self._refresh()
        state = self._states.get(experiment_id)
        return None if state is None else state.fraction

    def start(self, experiment_id: str, plan: RolloutPlan, actor: str = "system") -> RolloutState:
        """Begin (or restart after a rollback) at the first stage."""
        self._refresh()
        state = RolloutState(experiment_id=experiment_id, plan=plan,
                             history=self._states.get(experiment_id, RolloutState(
                                 experiment_id=experiment_id, plan=plan)).history)
        self._commit(state, "start", actor)
        return state

    def advance(self, experiment_id: str, actor: str) -> RolloutState:
        """Manual override: move to the next stage (or complete) regardless of guardrails."""
        state = self.state(experiment_id)
        if state.status is not RolloutStatus.RUNNING:
            raise ConfigError(f"rollout '{experiment_id}' is {state.status.value}, not running")
        self._step(state, actor, manual=True)
        return state

    def kill(self, experiment_id: str, actor: str, reason: str = "") -> RolloutState:
        """Kill switch: treatment fraction 0 from the next request on."""
        with self._lock:
            state = self.state(experiment_id)
            state.status = RolloutStatus.KILLED
            self._commit(state, "kill", actor, reason=reason)
            return state

    def evaluate(self, experiment_id: str, control: ArmStats, treatment: ArmStats,
                 actor: str = "guardrails") -> str:
        """Decide and apply: returns 'advance', 'complete', 'rollback', 'hold' or the status."""
        with self._lock:
            return self._evaluate(experiment_id, control, treatment, actor)

    def _evaluate(self, experiment_id: str, control: ArmStats, treatment: ArmStats,
                  actor: str) -> str:
        state = self.state(experiment_id)
        if state.status is not RolloutStatus.RUNNING:
            return state.status.value
        results = check_guardrails(state.plan.guardrails, control, treatment)
        broken = [r for r in results if r.breached]
        if broken:
            state.status = RolloutStatus.ROLLED_BACK
            self._commit(state, "rollback", actor, guardrails=[r.__dict__ for r in broken])
            return "rollback"
        enough = treatment.requests >= state.plan.min_requests_per_stage
        if enough and all(r.holds for r in results):
            return self._step(state, actor)
        return "hold"

    def _step(self, state: RolloutState, actor: str, **detail: Any) -> str:
        # Reaching a 100 % stage completes the rollout: there is no control left to compare.
        if state.stage + 1 >= len(state.plan.stages) or state.plan.stages[state.stage + 1] >= 1.0:
            state.stage = len(state.plan.stages) - 1
            state.status = RolloutStatus.COMPLETED
            self._commit(state, "complete", actor, **detail)
            return "complete"
        state.stage += 1
        self._commit(state, "advance", actor, **detail)
        return "advance"
