"""Staged rollouts: a schedule of treatment fractions advanced only while guardrails hold.

State machine per experiment::

    running(stage i) --advance--> running(stage i+1) --...--> completed (fraction 1.0)
         |  \\--guardrail breach--> rolled_back (fraction 0)
         \\----kill switch-------> killed (fraction 0)

`RolloutController.evaluate` takes the guardrail counts of control and treatment since the
current stage began and decides: ``rollback`` if any guardrail is *significantly* broken
(one-sided test at `guardrails.alpha`), ``advance`` once the stage has `min_requests_per_stage`
treatment requests and every guardrail is *shown* to hold (non-inferiority at 5 %), else
``hold``. The controller is the `FractionSource` of the `Assigner`: serving reads the live
fraction on every request, so a kill switch takes effect on the next request, also when set by
another process (the JSON store re-reads its file when its mtime changes).

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
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from scipy.stats import norm

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
    """Guardrail counts of one arm since the current stage began."""

    requests: int
    errors: int
    p99_latency_ms: float
    impressions: int  # articles shown
    clicks: int


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
    out = []
    # error rate: difference of proportions against the allowed absolute increase
    pc = control.errors / max(control.requests, 1)
    pt = treatment.errors / max(treatment.requests, 1)
    se = math.sqrt(pc * (1 - pc) / max(control.requests, 1)
                   + pt * (1 - pt) / max(treatment.requests, 1))
    se = max(se, 1e-12)
    excess = pt - pc - g.max_error_rate_increase
    out.append(GuardrailResult(
        "error_rate", holds=bool(excess + z_hold * se < 0),
        breached=bool(excess - z_breach * se > 0),
        detail=f"control {pc:.4f}, treatment {pt:.4f}, allowed +{g.max_error_rate_increase}"))
    lat_bad = treatment.requests > 0 and treatment.p99_latency_ms > g.max_p99_latency_ms
    out.append(GuardrailResult(
        "p99_latency_ms", holds=bool(treatment.requests > 0 and not lat_bad),
        breached=bool(lat_bad),
        detail=f"treatment p99 {treatment.p99_latency_ms:.1f} ms, limit {g.max_p99_latency_ms}"))
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
