"""The rollout controller running inside the service: one leader evaluates every staged rollout.

    every worker / replica                        the leader only (LeaseKeeper.is_leader)
    ─────────────────────                         ───────────────────────────────────────
    LeaseKeeper (acquire / renew the lease)  ──>  every interval_s:
                                                    read new events from the event log
                                                    (ExposureTally: slates, shown, clicks per arm)
                                                    for each running staged rollout:
                                                      check_guardrails(control, treatment)
                                                      -> advance | hold | rollback | complete
                                                    audit (rollout history) + metric

Why a lease: with `--workers N` or several replicas every process runs this module, but two
controllers deciding on the same rollout would double-advance it or fight over the state file.
The lease (Redis when the processes share one, else local) elects one; if it dies, another takes
over within the lease ttl. A new leader starts its evidence window at the log's end (it does not
know where the previous leader's window began), so a takeover delays a decision but never bases
one on mixed stages. The window also restarts whenever the rollout's stage changes (whoever
changed it: this leader, or an admin's manual advance in another process).

Evidence, per arm, from the exposure log (every worker's slates, so the figures are the
service's, not one process's): slates served and their clicks (the CTR guardrail), degraded
slates (the personalised model failed and fallbacks answered) and each slate's latency in the
service (`Impression.latency_ms`; a seeded sample per arm, see `ExposureTally`). Requests that
failed with a 5xx leave no slate: the route counts them per variant (`VariantErrors`,
process-local, see there) and they are added to the arm's requests and errors. So the error
rate is (5xx + degraded) / requests, and the p99 latency is compared with control's measured
over the same window on the same machines.

Decisions: transitions are written by `RolloutController` into the rollout's history (its audit
log) with actor ``autopilot@<owner>``; a rollback names the broken guardrails with their
figures (also in ``GET /v1/admin/experiments``, `rollout.reason`); a hold is written there
once per change of its reason (not every tick); every decision increments
``newsdesk_rollout_decisions_total{experiment, decision}`` and every broken guardrail
``newsdesk_rollout_guardrail_breaches_total{experiment, guardrail}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter, Gauge

from newsdesk.coordination import LeaseKeeper, open_lease
from newsdesk.errors import ConfigError
from newsdesk.experiments.live_tally import ArmCounts, ExposureTally
from newsdesk.experiments.rollout import (
    ArmStats,
    RolloutController,
    RolloutStatus,
    check_guardrails,
)
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.periodic import Periodic
from newsdesk.serving.variant_errors import VariantErrors

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from newsdesk.data.eventlog import EventLog
    from newsdesk.serving.app import Services

log = get_logger("newsdesk.serving.rollout_autopilot")
LEASE_NAME = "rollout-autopilot"


def _stats(c: ArmCounts | None, server_errors: int = 0) -> ArmStats:
    """An arm's guardrail figures: its slates plus its failed requests (5xx)."""
    c = c or ArmCounts()
    lat = tuple(c.latencies_ms)
    p99 = float(np.quantile(lat, 0.99)) if lat else 0.0
    return ArmStats(requests=c.requests + server_errors, errors=c.degraded + server_errors,
                    p99_latency_ms=p99, impressions=c.impressions, clicks=c.clicks,
                    latencies_ms=lat)


def _summary(a: ArmStats) -> dict[str, Any]:
    return {"requests": a.requests, "errors": a.errors, "p99_latency_ms": a.p99_latency_ms,
            "impressions": a.impressions, "clicks": a.clicks}


class RolloutAutopilot:
    """Evaluates every running staged rollout on a schedule while leader (module docstring)."""

    def __init__(self, rollouts: RolloutController, event_log: EventLog, keeper: LeaseKeeper,
                 registry: CollectorRegistry | None = None, *, interval_s: float = 5.0,
                 max_events_per_step: int = 200_000,
                 server_errors: VariantErrors | None = None) -> None:
        """`server_errors`: the 5xx counts of this process's route (None: none counted)."""
        if not (0.05 <= interval_s <= 3600):
            raise ConfigError(f"field 'autopilot_interval_s': must be in [0.05, 3600] s, "
                              f"got {interval_s}")
        self.rollouts = rollouts
        self.event_log = event_log
        self.keeper = keeper
        self.interval_s = interval_s
        self.max_events_per_step = max_events_per_step
        self.server_errors = server_errors
        self._error_base: dict[tuple[str, str], int] = {}  # 5xx count when the window began
        self.actor = f"autopilot@{keeper.lease.owner}"
        self.tally: ExposureTally | None = None  # None: not leading (window not started)
        self._epochs: dict[str, tuple[int, int]] = {}  # experiment -> (stage, starts) counted
        self._last_hold: dict[str, str] = {}
        self._job = Periodic("rollout-autopilot", self.interval_s, self.step)
        self.decisions = Counter(
            "newsdesk_rollout_decisions_total",
            "Decisions of the in-service rollout controller (advance, hold, rollback, "
            "complete) by experiment.", ["experiment", "decision"], registry=registry)
        self.fraction = Gauge("newsdesk_rollout_fraction",
                              "Live treatment fraction of each staged rollout.", ["experiment"],
                              registry=registry)
        self.breaches = Counter(
            "newsdesk_rollout_guardrail_breaches_total",
            "Guardrails found broken by the in-service rollout controller (each causes a "
            "rollback), by experiment and guardrail.", ["experiment", "guardrail"],
            registry=registry)
        self.leader = Gauge("newsdesk_rollout_leader",
                            "1 while this process is the rollout controller's leader.",
                            registry=registry)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> RolloutAutopilot:
        self.keeper.start()
        self._job.start()  # a failing tick is logged; the next one retries
        return self

    def stop(self) -> None:
        self._job.stop()
        self.keeper.stop()

    # -- one tick ---------------------------------------------------------------------------
    def step(self) -> dict[str, str]:
        """Read new events and decide every running rollout; {experiment: decision}."""
        leading = self.keeper.is_leader()
        self.leader.set(1.0 if leading else 0.0)
        if not leading:
            self.tally = None  # a later term starts a fresh window
            return {}
        states = {k: s for k, s in self._states().items() if s.status is RolloutStatus.RUNNING}
        if self.tally is None:
            self.tally = ExposureTally(states)
            self.tally.seq = self._log_end()
            self._epochs.clear()
        self.tally.watch = set(states)
        for exp_id, state in states.items():
            epoch = (state.stage, sum(1 for h in state.history if h["event"] == "start"))
            if self._epochs.get(exp_id) != epoch:  # a new stage: a new evidence window
                self._epochs[exp_id] = epoch
                self.tally.reset(exp_id)
                self._last_hold.pop(exp_id, None)
                for arm in (state.plan.control, state.plan.treatment):
                    self._error_base[(exp_id, arm)] = self._server_errors(exp_id, arm)
        self.tally.consume(self.event_log.read(self.tally.seq, self.max_events_per_step))
        out = {}
        for exp_id, state in states.items():
            if not self.keeper.is_leader():  # lost mid-step: decide nothing more
                break
            arms = self.tally.counts.get(exp_id, {})
            control, treatment = (
                _stats(arms.get(arm), self._server_errors(exp_id, arm)
                       - self._error_base.get((exp_id, arm), 0))
                for arm in (state.plan.control, state.plan.treatment))
            decision = self.rollouts.evaluate(exp_id, control, treatment, actor=self.actor)
            out[exp_id] = decision
            self.decisions.labels(exp_id, decision).inc()
            self.fraction.labels(exp_id).set(self.rollouts.fraction(exp_id) or 0.0)
            broken: list[str] = []
            if decision == "rollback":
                broken = [h["name"] for h in self.rollouts.state(exp_id).history[-1].get(
                    "guardrails", [])]
                for name in broken:
                    self.breaches.labels(exp_id, name).inc()
            if decision == "hold":
                self._note_hold(exp_id, state.plan.guardrails, control, treatment)
            else:
                log.warning("rollout_decision", experiment=exp_id, decision=decision,
                            broken=broken, control=_summary(control),
                            treatment=_summary(treatment))
        return out

    def _server_errors(self, experiment: str, variant: str) -> int:
        return 0 if self.server_errors is None else self.server_errors.total(experiment,
                                                                             variant)

    def _states(self) -> dict[str, Any]:
        return self.rollouts.states()

    def _log_end(self) -> int:
        last = getattr(self.event_log, "last_seq", None)
        if last is not None:
            return int(last())
        end = 0
        for end, _ in self.event_log.read(0):  # noqa: B007 - we want the last one
            pass
        return end

    def _note_hold(self, exp_id: str, guardrails: Any, control: ArmStats, treatment: ArmStats
                   ) -> None:
        pending = [r.name for r in check_guardrails(guardrails, control, treatment)
                   if not r.holds]
        if treatment.requests < self.rollouts.state(exp_id).plan.min_requests_per_stage:
            pending.append("min_requests_per_stage")
        reason = ",".join(pending) or "none"
        if self._last_hold.get(exp_id) != reason:
            self._last_hold[exp_id] = reason
            self.rollouts.note(exp_id, "hold", self.actor, waiting_for=pending,
                               treatment_requests=treatment.requests,
                               control_requests=control.requests)


def start_autopilot(svc: Services, server_errors: VariantErrors | None = None
                    ) -> RolloutAutopilot | None:
    """The autopilot of an app whose assigner is the experiments package's (else None);
    `server_errors`: where the app's recommendations route counts its 5xx per variant."""
    from newsdesk.serving.variants import ExperimentAssigner

    settings = svc.settings
    if settings.autopilot_interval_s <= 0 or not isinstance(svc.assigner, ExperimentAssigner):
        return None
    url = settings.lease_url
    if url is None and settings.online_store_url and settings.online_store_url.startswith(
            ("redis://", "rediss://", "unix://")):
        url = settings.online_store_url  # the workers' / replicas' shared Redis
    lease = open_lease(url, LEASE_NAME, settings.leader_lease_ttl_s)
    keeper = LeaseKeeper(lease)
    return RolloutAutopilot(svc.assigner.rollouts, svc.event_log, keeper,
                            svc.metrics.registry,
                            interval_s=settings.autopilot_interval_s,
                            server_errors=server_errors).start()
