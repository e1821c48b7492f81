"""The experimentation ladder through a running `newsdesk serve`, with simulated readers.

    python benchmarks/live_ladder.py [--quick] [--json FILE] [--work DIR] [--seed S]
    (also the `live` section of benchmarks/experiments.py)

One server (`newsdesk serve`, fresh state dir, the simulated world of benchmarks/live_lift.py and
two bundles trained on it: the default config = "strong", and a deliberately weak one = "weak":
trending + recency candidates only, 3 boosting rounds). Every served slate is shown to the
world's TRUE click model and the clicks are POSTed back as events, as in live_lift. Each phase
runs on its own surface, so its experiment is the only one its requests meet.

* interleaving: experiment type `interleaving` (strong vs weak), then an A/B test of the same
  two bundles on the same readers at the same times. Reported: whether the interleaving verdict
  (the service's report route: mean per-request preference) agrees in sign with the A/B CTR
  difference, and `traffic_ratio_vs_ab` = requests an A/B test needs for 80 % power at
  alpha 0.05 divided by the impressions interleaving needs at the same power. Both use the
  measured variance of their per-request statistic (clicks per slate; preference +1/0/-1) and
  the effect of the SAME served slates under the true click model (expected clicks; expected
  preference, Monte Carlo over the click coins with the teams read from the service's exposure
  log): at a few thousand requests the measured effects are noisy enough to swing the ratio
  several-fold. The ratio from the measured effects alone is reported too
  (`traffic_ratio_vs_ab_measured`).
* rollout: a staged rollout (stages 2 %, 10 %, 50 %, 100 %) whose treatment is broken — the
  strong bundle with its ranker's sign flipped (`broken_bundle`: it ranks the worst candidates
  first) — with NO call from outside: the service's own autopilot must roll it back.
  Reported: `broken_rolled_back`, `max_treatment_fraction` (the largest fraction the rollout
  ever reached, from its audit history) and the observed share of the experiment's slates
  that went to treatment.
* bandit: experiment type `bandit` over strong, trending and broken; the allocation is learnt
  from the event stream by the service. Reported: `best_arm_share_last_quarter`, the share of
  the last quarter of the bandit's slates that went to the truly best arm (highest mean
  P(any click) of its served slates under the world's click model), and the report route's
  own view (its best arm by IPS click rate and that arm's share).

The machine running this may be shared: wall times are indicative only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

K = 10


def weak_bundle(sim: Path, bundles: Path, strong: str) -> str:
    """Train (once) the weak bundle; returns its version."""
    from newsdesk.pipelines.train import CandidateQuotas, RankerConfig, TrainConfig, train

    marker = bundles.parent / "weak_version.txt"
    if marker.exists() and (bundles / marker.read_text().strip()).exists():
        return marker.read_text().strip()
    cfg = TrainConfig(candidates=CandidateQuotas(trending=150, recency=150, content=0,
                                                 coclick=0, collaborative=0, category=0),
                      ranker=RankerConfig(num_boost_round=3, early_stopping_rounds=1))
    train(sim, bundles, cfg)
    versions = sorted(p.name for p in bundles.iterdir() if (p / "manifest.json").exists())
    weak = next(v for v in reversed(versions) if v != strong)
    marker.write_text(weak)
    return weak


def broken_bundle(bundles: Path, strong: str) -> str:
    """A copy of the strong bundle with its ranker's sign flipped (every leaf value negated):
    a realistic broken release (a sign bug in an export) that ranks the WORST candidates first.
    The manifest's file hashes are recomputed, so the service loads it as a valid bundle."""
    from newsdesk.models.bundle import MANIFEST, file_hashes

    version = f"{strong}-broken"
    dst = bundles / version
    if (dst / MANIFEST).exists():
        return version
    tmp = bundles / f".{version}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(bundles / strong, tmp)
    import lightgbm as lgb

    booster = lgb.Booster(model_file=str(tmp / "ranker.txt"))
    for tree in booster.dump_model()["tree_info"]:
        i = int(tree["tree_index"])
        for leaf in range(int(tree["num_leaves"])):
            booster.set_leaf_output(i, leaf, -booster.get_leaf_output(i, leaf))
    booster.save_model(str(tmp / "ranker.txt"))
    manifest = json.loads((tmp / MANIFEST).read_text())
    manifest["version"] = version
    manifest["files"] = file_hashes(tmp)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
    tmp.rename(dst)
    return version


class Driver:
    """Sends requests of simulated readers, shows slates to the world, posts the clicks."""

    def __init__(self, client: Any, world: Any, t0: float, seed: int) -> None:
        self.client, self.world, self.t0, self.seed = client, world, t0, seed
        self.start = time.monotonic()
        self.n_events = 0

    def request(self, i: int, user: int, surface: str) -> dict[str, Any]:
        from live_lift import draw_clicks

        body = self.client.post("/v1/recommendations", json={
            "user_id": f"u{user}", "k": K, "surface": surface})
        body.raise_for_status()
        slate = body.json()
        ids = [int(it["article_id"][1:]) for it in slate["items"]]
        t = self.t0 + (time.monotonic() - self.start)
        if not ids:
            return {"body": slate, "clicks": 0, "expected_clicks": 0.0, "expected_any": 0.0,
                    "p": None}
        mask, p = draw_clicks(self.world, user, ids, t, self.seed, i)
        events = []
        for a in np.asarray(ids)[mask]:
            self.n_events += 1
            events.append({"type": "click", "event_id": f"ladder-{surface}-{self.n_events}",
                           "user_id": f"u{user}", "article_id": f"a{int(a)}",
                           "request_id": slate["request_id"]})
        if events:
            self.client.post("/v1/events", json={"events": events}).raise_for_status()
        return {"body": slate, "clicks": int(mask.sum()), "expected_clicks": float(p.sum()),
                "p": p,
                "expected_any": float(1.0 - np.prod(1.0 - p))}


def _create(client: Any, admin: dict[str, str], config: dict[str, Any]) -> None:
    r = client.post("/v1/admin/experiments", headers=admin, json=config)
    if r.status_code != 201:
        raise RuntimeError(f"experiment {config['id']}: {r.status_code} {r.text}")


def _report(client: Any, admin: dict[str, str], exp_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/experiments/{exp_id}/report", headers=admin, timeout=300)
    r.raise_for_status()
    return r.json()


def expected_preference(drv: Driver, served: list[dict[str, Any]], state: Path,
                        draws: int = 400) -> float:
    """Mean preference for team 0 of the served interleaved slates under the TRUE click model
    (Monte Carlo over the click coins, teams read from the service's exposure log): the
    noise-free counterpart of the report's measured mean preference."""
    from newsdesk.data.eventlog import open_event_log
    from newsdesk.data.schema import Impression

    log = open_event_log(f"sqlite:///{state / 'events.db'}")
    try:
        teams = {e.request_id: e.teams for _, e in log.read()
                 if isinstance(e, Impression) and e.teams is not None}
    finally:
        log.close()
    rng = np.random.default_rng(drv.seed)
    prefs = []
    for r in served:
        t = teams.get(r["body"]["request_id"])
        if t is None or r["p"] is None:
            continue
        clicks = rng.random((draws, len(t))) < r["p"]
        team0 = np.asarray(t) == 0
        a, b = (clicks & team0).sum(1), (clicks & ~team0).sum(1)
        prefs.append(float(np.sign(a - b).mean()))
    return float(np.mean(prefs))


def phase_interleaving(client: Any, admin: dict[str, str], drv: Driver, users: np.ndarray,
                       strong: str, weak: str, state: Path) -> dict[str, Any]:
    _create(client, admin, {"id": "ladder-il", "type": "interleaving", "layer": "ladder",
                            "surfaces": ["ladder-il"], "variants": [
                                {"name": "strong", "bundle": strong},
                                {"name": "weak", "bundle": weak}]})
    _create(client, admin, {"id": "ladder-ab", "layer": "ladder", "surfaces": ["ladder-ab"],
                            "variants": [{"name": "strong", "bundle": strong},
                                         {"name": "weak", "bundle": weak}]})
    t = time.perf_counter()
    served = [drv.request(i, int(u), "ladder-il") for i, u in enumerate(users)]
    il_s = time.perf_counter() - t
    il = _report(client, admin, "ladder-il")
    true_pref = expected_preference(drv, served, state)
    t = time.perf_counter()
    clicks: dict[str, list[int]] = {"strong": [], "weak": []}
    expected: dict[str, list[float]] = {"strong": [], "weak": []}
    for i, u in enumerate(users):  # the same readers, the same click draws per request index
        r = drv.request(i, int(u), "ladder-ab")
        clicks[r["body"]["variant"]].append(r["clicks"])
        expected[r["body"]["variant"]].append(r["expected_clicks"])
    ab_s = time.perf_counter() - t
    xs, xw = (np.asarray(clicks[k], dtype=float) for k in ("strong", "weak"))
    delta = float(xs.mean() - xw.mean())
    # the same served slates under the TRUE click model, without the click coin: the best
    # estimate of the real difference (the A/B test's own estimate is noisy at this size)
    true_delta = float(np.mean(expected["strong"]) - np.mean(expected["weak"]))
    z = norm.isf(0.025) + norm.isf(0.2)
    # two arms of n requests each: n = z^2 (var_s + var_w) / delta^2; the A/B total is 2n
    var = xs.var(ddof=1) + xw.var(ddof=1)
    n_ab = 2 * z * z * var / (true_delta * true_delta)
    n_ab_measured = 2 * z * z * var / (delta * delta)
    n_il_measured = float(il["impressions_for_80pct_power"])
    n_il = z * z * float(il["sd_preference"]) ** 2 / (true_pref * true_pref)
    se = math.sqrt(xs.var(ddof=1) / len(xs) + xw.var(ddof=1) / len(xw))
    return {
        "requests_each": len(users),
        "sign_agrees": bool(np.sign(il["mean_preference"]) == np.sign(delta)),
        "sign_agrees_with_true_difference": bool(
            np.sign(il["mean_preference"]) == np.sign(true_delta)),
        "sign_agrees_true_preference_vs_true_difference": bool(
            np.sign(true_pref) == np.sign(true_delta)),
        "traffic_ratio_vs_ab": n_ab / n_il,
        "traffic_ratio_vs_ab_measured": n_ab_measured / n_il_measured,
        "interleaving_true_mean_preference": true_pref,
        "interleaving_impressions_for_80pct_power": n_il,
        "interleaving": {k: il[k] for k in (
            "verdict", "p_value", "preference_share_a", "preference_share_a_ci95",
            "mean_preference", "sd_preference", "impressions_for_80pct_power", "wins_a",
            "wins_b", "ties", "impressions")},
        "ab": {"clicks_per_request": {"strong": float(xs.mean()), "weak": float(xw.mean())},
               "requests": {"strong": len(xs), "weak": len(xw)},
               "difference": delta, "difference_ci95": [delta - 1.96 * se, delta + 1.96 * se],
               "true_difference": true_delta,
               "requests_for_80pct_power": n_ab,
               "requests_for_80pct_power_measured_difference": n_ab_measured},
        "wall_s": {"interleaving": il_s, "ab": ab_s},
    }


def phase_rollout(client: Any, admin: dict[str, str], drv: Driver, users: np.ndarray,
                  strong: str, broken: str, max_requests: int, state: Path
                  ) -> dict[str, Any]:
    _create(client, admin, {"id": "ladder-rollout", "layer": "ladder",
                            "surfaces": ["ladder-rollout"], "variants": [
                                {"name": "control", "bundle": strong},
                                {"name": "treatment", "bundle": broken}],
                            "rollout": {"stages": [0.02, 0.1, 0.5, 1.0],
                                        "min_requests_per_stage": 2000}})
    served = {"control": 0, "treatment": 0}
    status, t = "running", time.perf_counter()
    i = 0
    for i in range(max_requests):
        r = drv.request(10_000_000 + i, int(users[i % len(users)]), "ladder-rollout")
        served[r["body"]["variant"]] += 1
        if i % 100 == 99:
            rows = client.get("/v1/admin/experiments", headers=admin).json()["experiments"]
            row = next(x for x in rows if x["id"] == "ladder-rollout")
            status = row["rollout"]["status"]
            if status != "running":
                break
    wall = time.perf_counter() - t
    history = json.loads((state / "rollouts.json").read_text())["ladder-rollout"]["history"]
    fractions = [h["fraction"] for h in history if h["event"] in ("start", "advance")]
    rollback = [h for h in history if h["event"] == "rollback"]
    return {"broken_rolled_back": status == "rolled_back",
            "max_treatment_fraction": max(fractions) if fractions else None,
            "observed_treatment_share": served["treatment"] / max(sum(served.values()), 1),
            "requests_until_decision": i + 1, "served": served,
            "decided_by": rollback[0]["actor"] if rollback else None,
            "guardrails": rollback[0].get("guardrails") if rollback else None,
            "wall_s": wall}


def phase_bandit(client: Any, admin: dict[str, str], drv: Driver, users: np.ndarray,
                 strong: str, broken: str) -> dict[str, Any]:
    _create(client, admin, {"id": "ladder-bandit", "type": "bandit", "layer": "ladder",
                            "surfaces": ["ladder-bandit"], "variants": [
                                {"name": "strong", "bundle": strong},
                                {"name": "trending", "pipeline": "trending"},
                                {"name": "broken", "bundle": broken}]})
    expected: dict[str, list[float]] = {}
    order: list[str] = []
    t = time.perf_counter()
    for i, u in enumerate(users):
        r = drv.request(20_000_000 + i, int(u), "ladder-bandit")
        expected.setdefault(r["body"]["variant"], []).append(r["expected_any"])
        order.append(r["body"]["variant"])
    wall = time.perf_counter() - t
    rep = _report(client, admin, "ladder-bandit")
    truth = {k: float(np.mean(v)) for k, v in expected.items()}
    best = max(truth, key=truth.__getitem__)
    last = order[len(order) - len(order) // 4:]
    return {"best_arm_share_last_quarter": last.count(best) / len(last),
            "true_best_arm": best,
            "report_best_arm": rep["best_arm"],
            "report_best_arm_share_last_quarter": rep["best_arm_share_last_quarter"],
            "true_p_any_click": truth, "slates": rep["slates"],
            "arms": rep["arms"], "wall_s": wall}


def bench_live(quick: bool, seed: int, work: Path | None = None) -> dict[str, Any]:
    """Every live phase through one running server; the `live` section's figures."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from live_lift import build
    from newsdesk.data.stats import dataset_stats
    from newsdesk.demo_serving import running_server
    from newsdesk.simulation import World

    work = work or Path(f"/tmp/newsdesk-ladder-{'quick' if quick else 'full'}")
    work.mkdir(parents=True, exist_ok=True)
    t_build = time.perf_counter()
    sim, bundles = build(work, True, seed)  # the quick world: a few minutes to build once
    strong = sorted(p.name for p in bundles.iterdir() if (p / "manifest.json").exists())[0]
    weak = weak_bundle(sim, bundles, strong)
    broken = broken_bundle(bundles, strong)
    build_s = time.perf_counter() - t_build
    world = World.load(sim)
    t0 = dataset_stats(sim)["last_event"].timestamp()
    n_il = 2000 if quick else 5000
    n_bandit = 2500 if quick else 6000
    users = world.sample_users(max(n_il, n_bandit), np.random.default_rng(seed))
    key = secrets.token_hex(16)
    admin = {"X-API-Key": key, "X-Actor": "live_ladder"}
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    env = {"NEWSDESK_ADMIN_API_KEY": key, "NEWSDESK_BUNDLE_VERSION": strong,
           "NEWSDESK_AUTOPILOT_INTERVAL_S": "1", "NEWSDESK_BANDIT_UPDATE_S": "1"}
    out: dict[str, Any] = {"bundles": {"strong": strong, "weak": weak, "broken": broken},
                           "build_s": build_s}
    with running_server(sim, bundles, state, work / "serve.log", env=env) as client:
        deadline = time.monotonic() + 600
        while client.get("/readyz").json()["status"] != "ready":
            if time.monotonic() > deadline:
                raise TimeoutError("the online store bootstrap did not finish in 10 min")
            time.sleep(0.2)
        drv = Driver(client, world, t0, seed)
        out["interleaving"] = phase_interleaving(client, admin, drv, users[:n_il], strong, weak,
                                                 state)
        print(f"live interleaving: {out['interleaving']['interleaving']['verdict']}, sign agrees"
              f" {out['interleaving']['sign_agrees']}, traffic ratio vs A/B "
              f"{out['interleaving']['traffic_ratio_vs_ab']:.1f}")
        out["rollout"] = phase_rollout(client, admin, drv, users, strong, broken,
                                       4000 if quick else 10_000, state)
        print(f"live rollout: rolled back {out['rollout']['broken_rolled_back']} after "
              f"{out['rollout']['requests_until_decision']} requests, max fraction "
              f"{out['rollout']['max_treatment_fraction']}, observed treatment share "
              f"{out['rollout']['observed_treatment_share']:.3f}")
        out["bandit"] = phase_bandit(client, admin, drv, users[:n_bandit], strong, broken)
        print(f"live bandit: truly best arm {out['bandit']['true_best_arm']}, its share of the "
              f"last quarter {out['bandit']['best_arm_share_last_quarter']:.3f} (the report's "
              f"best arm by IPS: {out['bandit']['report_best_arm']})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    from newsdesk.experiments.report import json_safe

    res = {"benchmark": "live_ladder", "quick": args.quick, "seed": args.seed,
           "live": bench_live(args.quick, args.seed, args.work)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(res), indent=2))


if __name__ == "__main__":
    main()
