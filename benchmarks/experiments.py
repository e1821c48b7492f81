"""Validation of newsdesk.experiments by simulation with a known ground truth.

    python benchmarks/experiments.py [--quick] [--json FILE] [--seed N]

Sections (each prints its figures; all go to the JSON):
  assignment   cost of Assigner.assign per call (us), plain and with a live rollout file
  aa           A/A tests through the full analysis (delta-method CTR, clicks/user): false
               positive rate at alpha 0.05; daily peeking: naive z-test vs mSPRT
  power        A/B tests with known relative CTR lifts: power curve (fixed, CUPED, mSPRT) and
               CUPED's variance reduction
  srm          detection rate of an injected 0.5 % sample-ratio mismatch by total sample size
  interleaving team-draft interleaving vs A/B on the newsdesk simulator (World): traffic needed
               for 80 % power at alpha 0.05, checked empirically
  ope          IPS/SNIPS/DR of a target policy from the simulator's stochastic logging policy:
               coverage of the true (exact on-policy) CTR by the 95 % CIs
  rollout      staged rollouts of broken variants (+5 percentage points errors; -30 % CTR) and
               a healthy one, through RolloutController
  live         through a running `newsdesk serve` with simulated readers (benchmarks/
               live_ladder.py): live.interleaving {sign_agrees, traffic_ratio_vs_ab},
               live.rollout {broken_rolled_back, max_treatment_fraction}, live.bandit
               {best_arm_share_last_quarter}; --no-live skips it (it trains two bundles once)

The A/A, power and SRM sections use a numpy population with heterogeneous CTRs
(Beta(2, 40) per user, lognormal activity, users arriving over 7 days); interleaving and OPE use
`newsdesk.simulation.World` click probabilities. Quick mode uses fewer replications (printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from newsdesk.experiments import stats
from newsdesk.experiments.analysis import AnalysisOptions, UserTable, analyze_users
from newsdesk.experiments.assignment import Assigner
from newsdesk.experiments.config import RolloutPlan, parse_suite
from newsdesk.experiments.interleaving import TEAM_A, credit, sign_test_pvalues, team_draft
from newsdesk.experiments.ope import LoggedData, evaluate_all
from newsdesk.experiments.report import json_safe
from newsdesk.experiments.rollout import (
    ArmStats,
    InMemoryRolloutStore,
    JsonFileRolloutStore,
    RolloutController,
)

DAYS = 7
SLATE = 10


# ---------------------------------------------------------------------------------- assignment
def bench_assignment(n_calls: int) -> dict[str, Any]:
    import tempfile

    suite = parse_suite({
        "holdout": {"fraction": 0.02},
        "experiments": [
            {"id": "rank-a", "layer": "ranking", "traffic": 0.5,
             "variants": [{"name": "control"}, {"name": "treatment"}]},
            {"id": "rank-b", "layer": "ranking", "traffic_start": 0.5, "traffic": 0.5,
             "variants": [{"name": "control"}, {"name": "t1"}, {"name": "t2"}]},
            {"id": "layout", "layer": "ui", "variants": [{"name": "control"}, {"name": "big"}]},
            {"id": "ro", "layer": "rollout", "rollout": {"stages": [0.01, 0.05, 1.0]},
             "variants": [{"name": "control"}, {"name": "treatment"}]},
        ]})
    import hashlib
    import os

    users = [f"user-{i}" for i in range(n_calls)]
    key = hashlib.sha256(b"salt").digest()
    # the machine is shared: best of 5 timed chunks is the least-disturbed figure
    chunk = max(n_calls // 5, 1)

    def best_of_5(fn) -> float:  # us per call
        times = []
        for i in range(5):
            part = users[i * chunk:(i + 1) * chunk]
            t0 = time.perf_counter()
            for u in part:
                fn(u)
            times.append((time.perf_counter() - t0) / len(part) * 1e6)
        return min(times)

    one_hash = best_of_5(lambda u: hashlib.blake2b(u.encode(), digest_size=8, key=key).digest())
    # the machine is shared: record its load so the per-call figures can be read fairly
    out: dict[str, Any] = {"experiments": 4, "layers": 3, "calls": n_calls, "timing": "best of 5",
                           "blake2b_us_per_hash": one_hash, "load_average_1m": os.getloadavg()[0],
                           "hashes_per_call": "1 holdout + 1 per layer + 1 variant per hit"}
    with tempfile.TemporaryDirectory() as tmp:
        ctl = RolloutController(JsonFileRolloutStore(Path(tmp) / "rollout.json"))
        ctl.start("ro", suite.get("ro").rollout or RolloutPlan())
        for name, assigner in (("plain", Assigner.from_config(suite)),
                               ("with_rollout_file", Assigner.from_config(suite, rollouts=ctl))):
            assign = assigner.assign
            for u in users[:1000]:
                assign(u, "front_page")
            out[f"{name}_us_per_call"] = best_of_5(lambda u, f=assign: f(u, "front_page"))
    print(f"[assignment] {out['plain_us_per_call']:.2f} us/call (4 experiments, 3 layers, "
          f"holdout); {out['with_rollout_file_us_per_call']:.2f} us/call with a live rollout "
          f"state file (stat per call); one BLAKE2b hash {one_hash:.2f} us; load average "
          f"{out['load_average_1m']:.1f} on {os.cpu_count()} cores")
    return out


# ------------------------------------------------------------------------------ A/A and power
def population(rng: np.random.Generator, n: int, lift: float, treat_share: float = 0.5,
               days: int = DAYS) -> UserTable:
    """One simulated experiment: per-user heterogeneous CTR, activity and arrival day."""
    treat = rng.random(n) < treat_share
    p = rng.beta(2, 40, n)
    activity = rng.lognormal(-0.5, 1.0, n)
    arrival = rng.integers(0, days, n)
    slates = rng.poisson(activity[:, None] * 1.5, (n, days)) * (np.arange(days) >= arrival[:, None])
    slates[np.arange(n), arrival] += 1  # a user is counted on the day of the first exposure
    shown = slates * SLATE
    p_eff = np.minimum(p * np.where(treat, 1 + lift, 1.0), 1.0)
    clicks = rng.binomial(shown, p_eff[:, None])
    total = clicks.sum(1)
    dwell = np.where(total > 0, rng.gamma(np.maximum(total, 1), 40.0), 0.0)
    pre_clicks = rng.binomial(rng.poisson(activity * 1.5 * 7) * SLATE, p).astype(float)
    return UserTable(variant=np.where(treat, "treatment", "control"),
                     shown=shown.sum(1).astype(float), clicks=total.astype(float), dwell=dwell,
                     pre_clicks=pre_clicks, daily_shown=np.cumsum(shown, 1).astype(float),
                     daily_clicks=np.cumsum(clicks, 1).astype(float), days=days)


def _naive_daily_reject(t: UserTable, alpha: float) -> bool:
    """Fixed-horizon z-test on CTR repeated every day (the peeking people do)."""
    cm, tm = t.variant == "control", t.variant == "treatment"
    for d in range(t.days):
        seen = t.daily_shown[:, d] > 0
        c = stats.ratio_estimate(t.daily_clicks[cm & seen, d], t.daily_shown[cm & seen, d])
        e = stats.ratio_estimate(t.daily_clicks[tm & seen, d], t.daily_shown[tm & seen, d])
        if stats.difference(c, e).p_value < alpha:
            return True
    return False


def bench_aa(reps: int, n_users: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    opts = AnalysisOptions()
    fixed = {m: 0 for m in ("ctr", "clicks_per_user")}
    seq = {m: 0 for m in ("ctr", "clicks_per_user")}
    naive_peek = 0
    srm_alarms = 0
    t0 = time.perf_counter()
    for _ in range(reps):
        t = population(rng, n_users, 0.0)
        res = analyze_users(t, ["control", "treatment"], opts)
        comp = res["comparisons"]["treatment"]
        for m in fixed:
            fixed[m] += comp[m]["fixed"]["p_value"] < 0.05
            seq[m] += comp[m]["sequential"]["p_value"] < 0.05
        srm_alarms += res["srm"]["mismatch"]
        naive_peek += _naive_daily_reject(t, 0.05)
    out = {"reps": reps, "users_per_test": n_users, "days": DAYS, "alpha": 0.05,
           "fpr_fixed": {m: v / reps for m, v in fixed.items()},
           "fpr_daily_peeking_msprt": {m: v / reps for m, v in seq.items()},
           "fpr_daily_peeking_naive_ctr": naive_peek / reps,
           "srm_false_alarm_rate": srm_alarms / reps,
           "seconds": time.perf_counter() - t0}
    se = (0.05 * 0.95 / reps) ** 0.5
    print(f"[aa] {reps} A/A tests x {n_users} users, {DAYS} days: FPR fixed-horizon CTR "
          f"{out['fpr_fixed']['ctr']:.3f}, clicks/user {out['fpr_fixed']['clicks_per_user']:.3f} "
          f"(+-{1.96 * se:.3f}); daily peeking naive {out['fpr_daily_peeking_naive_ctr']:.3f} vs "
          f"mSPRT {out['fpr_daily_peeking_msprt']['ctr']:.3f} (CTR), "
          f"{out['fpr_daily_peeking_msprt']['clicks_per_user']:.3f} (clicks/user); "
          f"SRM false alarms {out['srm_false_alarm_rate']:.3f}")
    return out


def bench_power(reps: int, n_users: int, lifts: list[float], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    opts = AnalysisOptions()
    curve = []
    for lift in lifts:
        hits = {"fixed_ctr": 0, "cuped_ctr": 0, "msprt_ctr": 0, "fixed_clicks_per_user": 0,
                "cuped_clicks_per_user": 0}
        vr = {"ctr": [], "clicks_per_user": []}
        for _ in range(reps):
            res = analyze_users(population(rng, n_users, lift), ["control", "treatment"], opts)
            comp = res["comparisons"]["treatment"]
            for m in ("ctr", "clicks_per_user"):
                hits[f"fixed_{m}"] += comp[m]["fixed"]["p_value"] < 0.05
                hits[f"cuped_{m}"] += comp[m]["cuped"]["p_value"] < 0.05
                vr[m].append(comp[m]["cuped"]["variance_reduction"])
            hits["msprt_ctr"] += comp["ctr"]["sequential"]["p_value"] < 0.05
        row = {"lift": lift, **{f"power_{k}": v / reps for k, v in hits.items()},
               "cuped_variance_reduction": {m: float(np.mean(v)) for m, v in vr.items()}}
        curve.append(row)
        print(f"[power] lift {lift:+.1%}: power CTR fixed {row['power_fixed_ctr']:.2f}, "
              f"CUPED {row['power_cuped_ctr']:.2f}, mSPRT {row['power_msprt_ctr']:.2f}; "
              f"clicks/user fixed {row['power_fixed_clicks_per_user']:.2f}, CUPED "
              f"{row['power_cuped_clicks_per_user']:.2f}; CUPED variance reduction CTR "
              f"{row['cuped_variance_reduction']['ctr']:.1%}, clicks/user "
              f"{row['cuped_variance_reduction']['clicks_per_user']:.1%}")
    return {"reps_per_lift": reps, "users_per_test": n_users, "days": DAYS, "curve": curve}


# ------------------------------------------------------------------------------------ SRM
def bench_srm(reps: int, sizes: list[int], seed: int) -> dict[str, Any]:
    """Treatment users lost with probability 0.5 % (e.g. a logging bug), 50/50 design."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        treat = rng.binomial(n, 0.5, reps)
        kept = rng.binomial(treat, 0.995)
        det = np.mean([stats.srm_test([n - t, k], [1, 1]).mismatch
                       for t, k in zip(treat, kept, strict=True)])
        aa = np.mean([stats.srm_test([n - t, t], [1, 1]).mismatch for t in treat])
        rows.append({"users": n, "detection_rate": float(det), "false_alarm_rate": float(aa)})
        print(f"[srm] 0.5% treatment loss, {n:>9,} users: detected {det:.1%} "
              f"(threshold p<0.001; A/A false alarms {aa:.1%})")
    return {"reps": reps, "loss": 0.005, "threshold": 0.001, "by_size": rows}


# ------------------------------------------------------------------------- simulator helpers
def _world(seed: int):  # -> (World, t)
    from newsdesk.simulation import SimulationConfig, build_world

    config = SimulationConfig(seed=seed, n_users=20_000, days=1.0)
    world = build_world(config)
    return world, config.start_unix + 12 * 3600.0


def _ranked_requests(world, t: float, n: int, noise: float, rng: np.random.Generator):
    """n requests: users, ranking A (true attraction), ranking B (attraction x noise), 40
    candidates each, and the exact expected clicks per slate of A and B."""
    live = world.live_articles(t)
    users = world.sample_users(n, rng)
    cands = live[np.argsort(rng.random((n, live.size)), 1)[:, :40]]
    attr = world.attraction(users[:, None], cands, t)
    noisy = attr * rng.lognormal(0.0, noise, attr.shape)
    rank_a = np.take_along_axis(cands, np.argsort(-attr, 1), 1)
    rank_b = np.take_along_axis(cands, np.argsort(-noisy, 1), 1)
    exam = world.examination(np.arange(SLATE))
    true_a = (np.take_along_axis(attr, np.argsort(-attr, 1), 1)[:, :SLATE] * exam).sum(1)
    true_b = (np.take_along_axis(attr, np.argsort(-noisy, 1), 1)[:, :SLATE] * exam).sum(1)
    return users, rank_a, rank_b, true_a, true_b


def _resampled_power(values: list[np.ndarray], n: int, reps: int, rng: np.random.Generator,
                     test) -> float:
    """Share of `reps` experiments of size n (drawn from the simulated pools) that reject."""
    hits = 0
    for _ in range(reps):
        draws = [v[rng.integers(0, v.size, n)] for v in values]
        hits += bool(test(*draws))
    return hits / reps


def bench_interleaving(n_requests: int, reps: int, seed: int, noise: float = 0.3,
                       ab_pool: int = 200_000) -> dict[str, Any]:
    """Ranker A ranks candidates by the true attraction; B by attraction x lognormal noise.
    A/B randomises requests (generous to A/B: no user clustering); interleaving team-drafts
    both rankings into every slate. Sample sizes for 80 % power at two-sided alpha 0.05 use
    the TRUE A/B difference and the observed interleaving preference, then are checked by
    resampling experiments of that size from the simulated pools."""
    world, t = _world(seed)
    rng = np.random.default_rng(seed + 1)
    clicks_a, clicks_b, true_a, true_b = [], [], [], []
    for _ in range(max(ab_pool // 25_000, 1)):
        users, rank_a, rank_b, ta, tb = _ranked_requests(world, t, 25_000, noise, rng)
        clicks_a.append(world.respond(users, rank_a[:, :SLATE], t, rng).sum(1).astype(float))
        clicks_b.append(world.respond(users, rank_b[:, :SLATE], t, rng).sum(1).astype(float))
        true_a.append(ta)
        true_b.append(tb)
    ca, cb = np.concatenate(clicks_a), np.concatenate(clicks_b)
    ta_all, tb_all = np.concatenate(true_a), np.concatenate(true_b)
    # interleaving: team draft of the two rankings on the same request
    users, rank_a, rank_b, _, _ = _ranked_requests(world, t, n_requests, noise, rng)
    slates = np.empty((n_requests, SLATE), dtype=np.int64)
    teams = np.empty((n_requests, SLATE), dtype=int)
    for r in range(n_requests):
        s = team_draft(rank_a[r].tolist(), rank_b[r].tolist(), SLATE, rng)
        slates[r], teams[r] = s.article_ids, s.teams
    # 10 independent click draws per interleaved slate: a precise preference estimate at the
    # cost of one team draft per request (credit() is checked against the vectorised form)
    draws = 10
    clicked = world.respond(np.repeat(users, draws), np.repeat(slates, draws, 0), t, rng)
    team_rep = np.repeat(teams, draws, 0)
    wins_a = (clicked & (team_rep == TEAM_A)).sum(1)
    prefs = np.sign(wins_a - clicked.sum(1) + wins_a)
    assert all(prefs[r] == credit(team_rep[r], np.flatnonzero(clicked[r]).tolist())
               for r in range(200))
    z = 1.959963984540054 + 0.8416212335729143
    delta_ab = float(ta_all.mean() - tb_all.mean())
    n_ab_per_arm = (ca.var() + cb.var()) * z**2 / delta_ab**2
    mu, var = prefs.mean(), prefs.var()
    n_il = var * z**2 / mu**2

    def ab_test(xa: np.ndarray, xb: np.ndarray) -> bool:
        se = np.sqrt(xa.var(ddof=1) / xa.size + xb.var(ddof=1) / xb.size)
        return abs(xa.mean() - xb.mean()) / se > 1.959963984540054

    def il_test(p: np.ndarray) -> bool:
        return sign_test_pvalues(np.array([(p > 0).sum()]), np.array([(p < 0).sum()]))[0] < 0.05

    power_ab = _resampled_power([ca, cb], int(np.ceil(n_ab_per_arm)), reps, rng, ab_test)
    power_il = _resampled_power([prefs], int(np.ceil(n_il)), reps, rng, il_test)
    true_a, true_b = ta_all, tb_all
    ratio = 2 * n_ab_per_arm / n_il
    out = {
        "interleaved_requests_simulated": n_requests, "click_draws_per_interleaved_slate": draws,
        "power_check_reps": reps,
        "true_clicks_per_slate": {"A_oracle": float(true_a.mean()),
                                  "B_noisy": float(true_b.mean())},
        "true_relative_difference": float(true_a.mean() / true_b.mean() - 1),
        "systems": {
            "ab": {"requests_for_80pct_power": 2 * n_ab_per_arm, "empirical_power": power_ab,
                   "true_delta_clicks_per_slate": delta_ab, "pool_requests": int(ca.size),
                   "observed_delta_clicks_per_slate": float(ca.mean() - cb.mean())},
            "interleaving": {"requests_for_80pct_power": n_il, "empirical_power": power_il,
                             "preference_mean": float(mu),
                             "share_with_preference": float(np.mean(prefs != 0))},
        },
        "traffic_ratio_ab_over_interleaving": ratio,
    }
    print(f"[interleaving] simulator, A=oracle ranker, B=noisy (true clicks/slate "
          f"{true_a.mean():.4f} vs {true_b.mean():.4f}, {out['true_relative_difference']:+.1%}): "
          f"A/B needs {2 * n_ab_per_arm:,.0f} requests for 80% power (empirical "
          f"{power_ab:.2f}), interleaving {n_il:,.0f} (empirical {power_il:.2f}) -> "
          f"{ratio:.1f}x less traffic")
    return out


def bench_ope(runs: int, n_requests: int, seed: int) -> dict[str, Any]:
    """Logging: the simulator's inclusion-probability policy (eps 0.2, quality weights);
    target: a sharper policy on freshness x quality (eps 0.05). Item-level estimates of CTR
    per slot, CIs clustered by request; truth = exact expectation under the target policy."""
    from newsdesk.simulation import inclusion_probabilities, systematic_sample

    world, t = _world(seed)
    rng = np.random.default_rng(seed + 2)
    cand = rng.choice(world.live_articles(t), 100, replace=False)
    q = world.article_quality[cand]
    fresh = world.freshness(cand, t)
    pi0 = inclusion_probabilities(np.exp(0.3 * q), SLATE, 0.2)
    pi1 = inclusion_probabilities(np.exp(1.5 * q) * fresh, SLATE, 0.05)
    exam_mean = world.examination(np.arange(SLATE)).mean()
    # exact truth over a large sample of request contexts (users by activity)
    big_users = world.sample_users(200_000, rng)
    truth_rows = []
    for chunk in np.array_split(big_users, 20):
        attr = world.attraction(chunk[:, None], cand[None, :], t)
        truth_rows.append((attr * pi1).sum(1) * exam_mean / SLATE)
    truth = float(np.concatenate(truth_rows).mean())
    cover = {"ips": 0, "snips": 0, "dr": 0}
    logged: list[float] = []
    errors: dict[str, list[float]] = {k: [] for k in cover}
    widths: dict[str, list[float]] = {k: [] for k in cover}
    for _ in range(runs):
        users = world.sample_users(n_requests, rng)
        slates_local = systematic_sample(pi0, n_requests, rng)
        clicks = world.respond(users, cand[slates_local], t, rng)
        a = slates_local.ravel()
        r = clicks.ravel().astype(float)
        group = np.repeat(np.arange(n_requests), SLATE)
        # DR reward model: per-article CTR, cross-fitted on two halves of the requests
        fold = group % 2
        q_hat = np.zeros(a.size)
        q_tgt = np.zeros(a.size)
        for f in (0, 1):
            tr = fold != f
            shows = np.bincount(a[tr], minlength=cand.size) + 2.0
            hits = np.bincount(a[tr], weights=r[tr], minlength=cand.size) + 2.0 * r[tr].mean()
            ctr_hat = hits / shows
            q_hat[fold == f] = ctr_hat[a[fold == f]]
            q_tgt[fold == f] = (pi1 * ctr_hat).sum() / SLATE
        logged.append(r.mean())
        data = LoggedData(r, pi0[a], pi1[a], group=group, q_logged=q_hat, q_target=q_tgt)
        for name, est in evaluate_all(data).items():
            cover[name] += est.covers(truth)
            errors[name].append(est.value - truth)
            widths[name].append(est.ci_high - est.ci_low)
    logged_ctr = float(np.mean(logged))
    out = {"runs": runs, "requests_per_run": n_requests, "true_ctr_per_slot": truth,
           "logged_policy_ctr_per_slot": logged_ctr,
           "systems": {k: {"coverage": cover[k] / runs, "bias": float(np.mean(errors[k])),
                           "rmse": float(np.sqrt(np.mean(np.square(errors[k])))),
                           "mean_ci_width": float(np.mean(widths[k]))} for k in cover}}
    print(f"[ope] {runs} runs x {n_requests:,} logged slates; true target CTR/slot {truth:.5f}: "
          + ", ".join(f"{k} coverage {v['coverage']:.1%} (bias {v['bias']:+.5f}, CI width "
                      f"{v['mean_ci_width']:.5f})" for k, v in out["systems"].items()))
    return out


# -------------------------------------------------------------------------------- rollout
def _run_rollout(rng: np.random.Generator, err_t: float, ctr_t: float, hours: int,
                 per_hour: int) -> dict[str, Any]:
    ctl = RolloutController(InMemoryRolloutStore())
    plan = RolloutPlan(stages=[0.01, 0.05, 0.25, 0.5, 1.0], min_requests_per_stage=20_000)
    ctl.start("exp", plan)
    err_c, ctr_c = 0.005, 0.04
    acc = np.zeros((2, 4))  # per arm: requests, errors, impressions, clicks
    max_frac = 0.0
    for h in range(hours):
        frac = ctl.fraction("exp") or 0.0
        max_frac = max(max_frac, frac)
        n_t = int(rng.binomial(per_hour, frac))
        for arm, (n, e, c) in enumerate(((per_hour - n_t, err_c, ctr_c), (n_t, err_t, ctr_t))):
            errs = rng.binomial(n, e)
            ok = n - errs
            acc[arm] += (n, errs, ok * SLATE, rng.binomial(ok * SLATE, c))
        arms = [ArmStats(int(x[0]), int(x[1]), 140.0, int(x[2]), int(x[3])) for x in acc]
        decision = ctl.evaluate("exp", arms[0], arms[1])
        if decision == "advance":
            acc[:] = 0  # guardrail counts restart with each stage
        if decision in ("rollback", "complete"):
            return {"outcome": decision, "hour": h + 1, "max_fraction": max_frac,
                    "final_fraction": ctl.fraction("exp")}
    return {"outcome": "running", "hour": hours, "max_fraction": max_frac,
            "final_fraction": ctl.fraction("exp")}


def bench_rollout(reps: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    per_hour = 50_000  # requests per hour (1.2 M a day)
    scenarios = {"errors_plus_5pp": (0.055, 0.04), "ctr_minus_30pct": (0.005, 0.028),
                 "healthy": (0.005, 0.04)}
    out: dict[str, Any] = {"reps": reps, "requests_per_hour": per_hour,
                           "stages": [0.01, 0.05, 0.25, 0.5, 1.0], "scenarios": {}}
    for name, (err, ctr) in scenarios.items():
        runs = [_run_rollout(rng, err, ctr, 24 * 14, per_hour) for _ in range(reps)]
        res = {"rolled_back": float(np.mean([r["outcome"] == "rollback" for r in runs])),
               "completed": float(np.mean([r["outcome"] == "complete" for r in runs])),
               "max_fraction_reached": float(max(r["max_fraction"] for r in runs)),
               "mean_hours_to_decision": float(np.mean([r["hour"] for r in runs]))}
        out["scenarios"][name] = res
        print(f"[rollout] {name}: rolled back {res['rolled_back']:.0%}, completed "
              f"{res['completed']:.0%}, max treatment fraction reached "
              f"{res['max_fraction_reached']:.0%}, mean hours to decision "
              f"{res['mean_hours_to_decision']:.1f}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer replications (< 3 minutes)")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-live", action="store_true",
                    help="skip the live section (a running server, simulated readers)")
    ap.add_argument("--live-work", type=Path, default=None,
                    help="work dir of the live section (world, bundles; reused when present)")
    args = ap.parse_args(argv)
    q = args.quick
    plan = {
        "aa_reps": 1000, "aa_users": 2000 if q else 4000,
        "power_reps": 100 if q else 400, "power_users": 4000,
        "srm_reps": 300 if q else 1000, "il_requests": 20_000 if q else 60_000,
        "il_reps": 200 if q else 500, "ab_pool": 100_000 if q else 300_000,
        "ope_runs": 100 if q else 300,
        "ope_requests": 3000 if q else 5000, "rollout_reps": 20 if q else 100,
        "assign_calls": 100_000 if q else 500_000,
    }
    print(f"mode: {'quick' if q else 'full'}; replications: {plan}")
    t0 = time.perf_counter()
    res: dict[str, Any] = {"mode": "quick" if q else "full", "seed": args.seed, "plan": plan}
    res["assignment"] = bench_assignment(plan["assign_calls"])
    res["aa"] = bench_aa(plan["aa_reps"], plan["aa_users"], args.seed)
    res["power"] = bench_power(plan["power_reps"], plan["power_users"],
                               [0.0, 0.03, 0.06, 0.09, 0.12], args.seed + 1)
    res["srm"] = bench_srm(plan["srm_reps"], [100_000, 1_000_000, 2_000_000, 4_000_000,
                                              8_000_000], args.seed + 2)
    # ranker B = true attraction x lognormal(0, noise): smaller noise = subtler difference
    levels = [bench_interleaving(plan["il_requests"], plan["il_reps"], args.seed + 3, noise,
                                 plan["ab_pool"])
              for noise in (0.3, 0.5, 1.0)]
    res["interleaving"] = {**levels[0], "noise_sigma": 0.3, "by_difference": [
        {"noise_sigma": n, **lv} for n, lv in zip((0.3, 0.5, 1.0), levels, strict=True)]}
    res["ope"] = bench_ope(plan["ope_runs"], plan["ope_requests"], args.seed + 4)
    res["rollout"] = bench_rollout(plan["rollout_reps"], args.seed + 5)
    if not args.no_live:
        from live_ladder import bench_live  # benchmarks/ is on sys.path when run as a script

        live = bench_live(q, 7, args.live_work)  # seed 7: the live_lift world
        res.setdefault("live", {}).update({
            "interleaving": {k: live["interleaving"][k]
                             for k in ("sign_agrees", "traffic_ratio_vs_ab")},
            "rollout": {k: live["rollout"][k]
                        for k in ("broken_rolled_back", "max_treatment_fraction")},
            "bandit": {"best_arm_share_last_quarter":
                       live["bandit"]["best_arm_share_last_quarter"]},
        })
        res.setdefault("live_detail", {}).update(live)
    res["seconds"] = time.perf_counter() - t0
    checks = {
        "aa_fpr_in_[0.035,0.065]": 0.035 <= res["aa"]["fpr_fixed"]["ctr"] <= 0.065,
        "aa_peeking_msprt_<=0.05": res["aa"]["fpr_daily_peeking_msprt"]["ctr"] <= 0.05,
        "srm_detected_at_4M_users": res["srm"]["by_size"][3]["detection_rate"] >= 0.8,
        "interleaving_>=5x_at_3pct_difference":
            res["interleaving"]["traffic_ratio_ab_over_interleaving"] >= 5,
        "ope_coverage_>=90%": all(v["coverage"] >= 0.9 for v in res["ope"]["systems"].values()),
        "rollout_broken_rolled_back_below_5pct": all(
            s["rolled_back"] == 1.0 and s["max_fraction_reached"] < 0.05
            for k, s in res["rollout"]["scenarios"].items() if k != "healthy"),
    }
    if "rollout" in res.get("live", {}):
        checks["live_interleaving_sign_agrees_and_>=5x"] = bool(
            res["live"]["interleaving"]["sign_agrees"]
            and res["live"]["interleaving"]["traffic_ratio_vs_ab"] >= 5)
        checks["live_rollout_broken_rolled_back_below_5pct"] = bool(
            res["live"]["rollout"]["broken_rolled_back"]
            and res["live"]["rollout"]["max_treatment_fraction"] < 0.05)
    res["checks"] = checks
    print(f"checks: {checks}")
    print(f"total {res['seconds']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(res), indent=2, allow_nan=False))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
