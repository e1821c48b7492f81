"""Reports of the live experiment types, from the exposure log: interleaving and bandits.

Interleaving: every impression of the experiment carries `teams` (0 = the first variant's
ranker, 1 = the second's, per position). A click credits the team of its position; an
impression prefers the team with more credited clicks (`interleaving.credit`). The report gives
the preference share of the first variant among impressions with a preference (Wilson 95%
interval), the two-sided sign test, the verdict, and the mean per-impression preference with
the impressions an interleaving test needs for 80% power at alpha 0.05 at that effect.

Bandit: each slate logged its `assignment_propensity` p (the probability its variant had when
drawn). The click rate of arm a is estimated by inverse propensity weighting over ALL slates of
the experiment, mean(1[arm = a] * clicked / p) — unbiased although the allocation moved
(Horvitz-Thompson), with a normal 95% interval; the naive per-arm rate is biased when the
allocation follows the arms' luck. `best_arm_share_last_quarter` is the share of the last
quarter of slates (in log order) that went to the arm with the highest IPS estimate.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import norm

from newsdesk.experiments.config import ExperimentConfig
from newsdesk.experiments.exposure import variant_of
from newsdesk.experiments.interleaving import credit, sign_test

Z95 = float(norm.isf(0.025))


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (NaN bounds when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def _clicks(interactions: pl.DataFrame) -> dict[str, set[str]]:
    """request_id -> clicked article ids."""
    out: dict[str, set[str]] = defaultdict(set)
    if interactions.height == 0:
        return out
    rows = interactions.filter((pl.col("type") == "click") & pl.col("request_id").is_not_null())
    for rid, aid in zip(rows["request_id"].to_list(), rows["article_id"].to_list(),
                        strict=True):
        out[rid].add(aid)
    return out


def _rows(impressions: pl.DataFrame, experiment_id: str, columns: list[str]
          ) -> list[dict[str, Any]]:
    have = [c for c in columns if c in impressions.columns]
    sub = impressions.filter(pl.col("experiment").str.contains(experiment_id, literal=True))
    rows = sub.select(["request_id", "experiment", "variant", "article_ids", *have]).to_dicts()
    return [r for r in rows if variant_of(r["experiment"], r["variant"], experiment_id)]


def interleaving_report(impressions: pl.DataFrame, interactions: pl.DataFrame,
                        config: ExperimentConfig, alpha: float = 0.05) -> dict[str, Any]:
    """Preference share, interval, sign test and verdict of a live interleaving experiment."""
    a, b = config.variants[0].name, config.variants[1].name
    clicked = _clicks(interactions)
    prefs = []
    for r in _rows(impressions, config.id, ["teams"]):
        teams = r.get("teams")
        if teams is None:
            continue
        hit = clicked.get(r["request_id"], set())
        positions = [i for i, x in enumerate(r["article_ids"]) if x in hit]
        prefs.append(credit(teams, positions))
    p = np.asarray(prefs, dtype=float)
    test = sign_test(p.astype(int)) if p.size else sign_test([])
    decided = test.wins_a + test.wins_b
    share = test.wins_a / decided if decided else float("nan")
    lo, hi = wilson(test.wins_a, decided)
    mean = float(p.mean()) if p.size else float("nan")
    sd = float(p.std(ddof=1)) if p.size > 1 else float("nan")
    need = (((norm.isf(alpha / 2) + norm.isf(0.2)) * sd / mean) ** 2
            if p.size > 1 and mean != 0 else float("inf"))
    if decided and test.p_value < alpha:
        verdict = f"{a} preferred" if share > 0.5 else f"{b} preferred"
    else:
        verdict = "no significant preference"
    return {"type": "interleaving", "a": a, "b": b, "impressions": int(p.size),
            "wins_a": test.wins_a, "wins_b": test.wins_b, "ties": test.ties,
            "preference_share_a": share, "preference_share_a_ci95": [lo, hi],
            "p_value": test.p_value, "alpha": alpha, "verdict": verdict,
            "mean_preference": mean, "sd_preference": sd,
            "impressions_for_80pct_power": need}


def bandit_report(impressions: pl.DataFrame, interactions: pl.DataFrame,
                  config: ExperimentConfig) -> dict[str, Any]:
    """IPS click rate per arm (unbiased under the moving allocation) and the allocation."""
    arms = [v.name for v in config.variants]
    clicked = _clicks(interactions)
    rows = [r for r in _rows(impressions, config.id, ["assignment_propensity"])
            if r.get("assignment_propensity") is not None]
    n = len(rows)
    served = [variant_of(r["experiment"], r["variant"], config.id) for r in rows]
    y = np.array([bool(clicked.get(r["request_id"])) for r in rows], dtype=float)
    p = np.array([r["assignment_propensity"] for r in rows], dtype=float)
    out_arms: dict[str, Any] = {}
    for arm in arms:
        mask = np.array([s == arm for s in served], dtype=bool)
        terms = np.where(mask, y / np.where(p > 0, p, 1.0), 0.0)
        est = float(terms.mean()) if n else float("nan")
        se = float(terms.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
        out_arms[arm] = {"slates": int(mask.sum()), "clicked_slates": int(y[mask].sum()),
                         "naive_rate": float(y[mask].mean()) if mask.any() else float("nan"),
                         "ips_rate": est, "ips_rate_ci95": [est - Z95 * se, est + Z95 * se]}
    best = max(arms, key=lambda x: (np.nan_to_num(out_arms[x]["ips_rate"], nan=-1.0)))
    last = served[n - n // 4:] if n >= 4 else served
    share = sum(1 for s in last if s == best) / len(last) if last else float("nan")
    return {"type": "bandit", "slates": n, "arms": out_arms, "best_arm": best,
            "best_arm_share_last_quarter": share}


def live_report(dataset_dir: Any, config: ExperimentConfig) -> dict[str, Any]:
    """The report of an interleaving or bandit experiment from a dataset directory."""
    from newsdesk.data.dataset import Dataset

    ds = Dataset(dataset_dir)
    impressions = ds.read("impressions")
    interactions = ds.read("interactions")
    if config.type == "interleaving":
        return interleaving_report(impressions, interactions, config)
    return bandit_report(impressions, interactions, config)
