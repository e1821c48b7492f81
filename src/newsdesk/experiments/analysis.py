"""Analysis of one experiment from a dataset directory's impressions and interactions.

Units are users. For each user exposed to the experiment (an impression whose encoded
experiment column contains the id, see `newsdesk.experiments.exposure`):

    shown      articles shown in the experiment's impressions
    clicks     click events attributed (by request_id) to those impressions
    dwell      dwell seconds attributed to those impressions
    pre_clicks clicks in the `pre_days` before the user's first exposure (CUPED covariate)

Metrics per variant: CTR = sum(clicks)/sum(shown) (ratio metric, delta method), clicks per
user, dwell seconds per user. Every treatment is compared with the control variant: difference,
relative lift, 95 % CI, fixed-horizon p-value, CUPED-adjusted difference, and an always-valid
mSPRT p-value over daily looks. A sample-ratio mismatch (chi-square p < 0.001) sets
`conclusions_blocked` and the verdict says so. Users seen in several variants are dropped and
counted (`mixed_users`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.errors import DatasetError
from newsdesk.experiments import stats
from newsdesk.experiments.config import ExperimentConfig
from newsdesk.experiments.exposure import SEP

METRICS = ("ctr", "clicks_per_user", "dwell_per_user")


@dataclass
class AnalysisOptions:
    alpha: float = 0.05
    srm_threshold: float = 0.001
    pre_days: float = 7.0
    # mSPRT mixing variance = (tau_rel * control mean)^2: the size of effect the test expects
    tau_rel: float = 0.05
    control: str | None = None  # default: config's first variant, else 'control', else first
    weights: dict[str, float] | None = None  # expected allocation; default config or equal


@dataclass
class UserTable:
    """Per-user arrays (aligned): variant label, shown, clicks, dwell, pre_clicks, first day."""

    variant: np.ndarray
    shown: np.ndarray
    clicks: np.ndarray
    dwell: np.ndarray
    pre_clicks: np.ndarray
    daily_shown: np.ndarray  # (n_users, n_days) cumulative by day of the experiment
    daily_clicks: np.ndarray
    mixed_users: int = 0
    start: Any = None
    days: int = 1
    extras: dict[str, Any] = field(default_factory=dict)


def _exposures(impressions: pl.DataFrame, experiment_id: str) -> pl.DataFrame:
    rows = impressions.filter(pl.col("experiment").str.contains(experiment_id, literal=True))
    if rows.is_empty():
        return rows.with_columns(pl.lit(None, dtype=pl.String).alias("arm"))
    rows = rows.with_columns(pl.col("experiment").str.split(SEP).alias("_e"),
                             pl.col("variant").str.split(SEP).alias("_v"))
    rows = rows.explode(["_e", "_v"]).filter(pl.col("_e") == experiment_id)
    return rows.with_columns(pl.col("_v").alias("arm")).drop(["_e", "_v"])


def user_table(impressions: pl.DataFrame, interactions: pl.DataFrame, experiment_id: str,
               pre_days: float = 7.0) -> UserTable:
    """Aggregate an experiment's exposures and attributed events into per-user arrays."""
    exp = _exposures(impressions, experiment_id)
    if exp.is_empty():
        raise DatasetError(f"no impressions of experiment '{experiment_id}' in the dataset")
    start = exp["timestamp"].min()
    exp = exp.with_columns(
        pl.col("article_ids").list.len().alias("n_shown"),
        ((pl.col("timestamp") - pl.lit(start)).dt.total_seconds() // 86_400).cast(pl.Int64)
        .alias("day"))
    arms = exp.group_by("user_id").agg(pl.col("arm").n_unique().alias("n_arms"),
                                       pl.col("arm").first(), pl.col("timestamp").min()
                                       .alias("first_seen"))
    mixed = int((arms["n_arms"] > 1).sum())
    arms = arms.filter(pl.col("n_arms") == 1).drop("n_arms")
    ev = interactions.join(exp.select("request_id", "day"), on="request_id", how="inner")
    ev_user = ev.group_by("user_id", "day").agg(
        (pl.col("type") == "click").sum().alias("clicks"),
        pl.col("dwell_seconds").filter(pl.col("type") == "dwell").sum().alias("dwell"))
    sh_user = exp.group_by("user_id", "day").agg(pl.col("n_shown").sum().alias("shown"))
    n_days = int(exp.select(pl.col("day").max()).item()) + 1
    per_day = (sh_user.join(ev_user, on=["user_id", "day"], how="full", coalesce=True)
               .fill_null(0).join(arms.select("user_id"), on="user_id", how="inner"))
    pre = (interactions.filter(pl.col("type") == "click")
           .join(arms.select("user_id", "first_seen"), on="user_id", how="inner")
           .filter((pl.col("timestamp") < pl.col("first_seen"))
                   & (pl.col("timestamp") >= pl.col("first_seen") - timedelta(days=pre_days)))
           .group_by("user_id").agg(pl.len().alias("pre_clicks")))
    users = arms.join(pre, on="user_id", how="left").fill_null(0).sort("user_id")
    index = {u: i for i, u in enumerate(users["user_id"].to_list())}
    n = len(index)
    shown_d = np.zeros((n, n_days))
    clicks_d = np.zeros((n, n_days))
    dwell = np.zeros(n)
    rows = np.array([index[u] for u in per_day["user_id"].to_list()], dtype=np.int64)
    days = per_day["day"].to_numpy()
    np.add.at(shown_d, (rows, days), per_day["shown"].to_numpy().astype(float))
    np.add.at(clicks_d, (rows, days), per_day["clicks"].to_numpy().astype(float))
    np.add.at(dwell, rows, per_day["dwell"].to_numpy().astype(float))
    return UserTable(
        variant=users["arm"].to_numpy().astype(str), shown=shown_d.sum(1), clicks=clicks_d.sum(1),
        dwell=dwell, pre_clicks=users["pre_clicks"].to_numpy().astype(float),
        daily_shown=np.cumsum(shown_d, axis=1), daily_clicks=np.cumsum(clicks_d, axis=1),
        mixed_users=mixed, start=start, days=n_days)


def _metric_values(t: UserTable, metric: str, mask: np.ndarray) -> stats.Estimate:
    if metric == "ctr":
        return stats.ratio_estimate(t.clicks[mask], t.shown[mask])
    y = t.clicks if metric == "clicks_per_user" else t.dwell
    return stats.mean_estimate(y[mask])


def _per_user(t: UserTable, metric: str) -> np.ndarray:
    """Per-user values whose mean/variance give the metric (ratios linearized)."""
    if metric == "ctr":
        return stats.linearize_ratio(t.clicks, np.maximum(t.shown, 0))
    return t.clicks if metric == "clicks_per_user" else t.dwell


def analyze_users(t: UserTable, variants: list[str], opts: AnalysisOptions) -> dict[str, Any]:
    """The full analysis dict (the dashboard's JSON) from a `UserTable`."""
    control = opts.control or variants[0]
    counts = [int((t.variant == v).sum()) for v in variants]
    weights = [(opts.weights or {}).get(v, 1.0) for v in variants]
    srm = stats.srm_test(counts, weights, opts.srm_threshold)
    per_variant = {}
    for v in variants:
        m = t.variant == v
        per_variant[v] = {"users": int(m.sum()), "shown": float(t.shown[m].sum()),
                          "clicks": float(t.clicks[m].sum()),
                          **{k: _metric_values(t, k, m).to_dict(opts.alpha) for k in METRICS}}
    comparisons: dict[str, Any] = {}
    cm = t.variant == control
    for v in variants:
        if v == control:
            continue
        tm = t.variant == v
        out = {}
        for metric in METRICS:
            fixed = stats.difference(_metric_values(t, metric, cm),
                                     _metric_values(t, metric, tm), opts.alpha)
            y = _per_user(t, metric)
            both = cm | tm
            theta = stats.cuped_theta(y[both], t.pre_clicks[both])
            adj = stats.cuped(y, t.pre_clicks, theta, float(t.pre_clicks[both].mean()))
            cup = stats.difference(stats.mean_estimate(adj[cm]), stats.mean_estimate(adj[tm]),
                                   opts.alpha)
            var_ratio = (cup.se / fixed.se) ** 2 if fixed.se > 0 else math.nan
            out[metric] = {"fixed": fixed.to_dict(),
                           "cuped": {**cup.to_dict(), "theta": theta,
                                     "variance_reduction": 1 - var_ratio},
                           "sequential": _sequential(t, metric, cm, tm, opts)}
        comparisons[v] = out
    return {
        "control": control, "variants": variants, "srm": srm.__dict__,
        "conclusions_blocked": srm.mismatch, "mixed_users": t.mixed_users, "days": t.days,
        "start": None if t.start is None else str(t.start),
        "per_variant": per_variant, "comparisons": comparisons,
        "verdict": _verdict(srm.mismatch, comparisons, opts.alpha),
    }


def _sequential(t: UserTable, metric: str, cm: np.ndarray, tm: np.ndarray,
                opts: AnalysisOptions) -> dict[str, Any]:
    """mSPRT over daily cumulative looks (users count from the first day they are seen)."""
    diffs, variances = [], []
    base = 0.0
    for d in range(t.days):
        seen = t.daily_shown[:, d] > 0
        c_mask, t_mask = cm & seen, tm & seen
        if c_mask.sum() < 2 or t_mask.sum() < 2:
            diffs.append(0.0)
            variances.append(math.inf)
            continue
        if metric == "ctr":
            ec = stats.ratio_estimate(t.daily_clicks[c_mask, d], t.daily_shown[c_mask, d])
            et = stats.ratio_estimate(t.daily_clicks[t_mask, d], t.daily_shown[t_mask, d])
        else:  # dwell has no daily split; clicks per user is cumulative clicks
            y = t.daily_clicks[:, d] if metric == "clicks_per_user" else t.dwell
            ec, et = stats.mean_estimate(y[c_mask]), stats.mean_estimate(y[t_mask])
        diffs.append(et.value - ec.value)
        variances.append(et.se**2 + ec.se**2)
        base = ec.value
    tau2 = (opts.tau_rel * base) ** 2 if diffs and base else 1e-12
    p = stats.msprt_pvalues(np.array(diffs), np.array(variances), max(tau2, 1e-18))
    return {"daily_p_values": p.tolist(), "p_value": float(p[-1]),
            "significant": bool(p[-1] < opts.alpha), "tau2": tau2}


def _verdict(blocked: bool, comparisons: dict[str, Any], alpha: float) -> str:
    if blocked:
        return ("SAMPLE RATIO MISMATCH: assignment or logging is broken; no conclusion may be "
                "drawn from this experiment until it is explained.")
    parts = []
    for v, res in comparisons.items():
        ctr = res["ctr"]
        if ctr["sequential"]["significant"]:
            direction = "better" if ctr["fixed"]["diff"] > 0 else "worse"
            parts.append(f"{v}: CTR {direction} than control ({ctr['fixed']['rel_lift']:+.2%}, "
                         f"always-valid p={ctr['sequential']['p_value']:.3g})")
        else:
            parts.append(f"{v}: no significant CTR difference yet "
                         f"(always-valid p={ctr['sequential']['p_value']:.3g})")
    return "; ".join(parts)


def analyze_dataset(dataset_dir: str | Path, experiment_id: str,
                    config: ExperimentConfig | None = None,
                    opts: AnalysisOptions | None = None) -> dict[str, Any]:
    """Analyze `experiment_id` from a dataset directory (impressions + interactions only)."""
    opts = opts or AnalysisOptions()
    ds = Dataset(dataset_dir)
    t = user_table(ds.read("impressions"), ds.read("interactions"), experiment_id,
                   opts.pre_days)
    seen = sorted(set(t.variant.tolist()))
    if config is not None:
        variants = [v.name for v in config.variants] + [v for v in seen if
                                                         v not in {x.name for x in config.variants}]
        if opts.weights is None:
            opts.weights = {v.name: w for v, w in zip(config.variants, config.weights(),
                                                      strict=True)}
    else:
        variants = (["control"] if "control" in seen else []) + [v for v in seen if v != "control"]
    if len(variants) < 2:
        raise DatasetError(f"experiment '{experiment_id}' has fewer than two variants in the "
                           f"data ({variants})")
    result = analyze_users(t, variants, opts)
    result["experiment_id"] = experiment_id
    result["dataset"] = str(dataset_dir)
    return result
