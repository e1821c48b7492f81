"""Closed-loop evaluation: how many more clicks does newsdesk get, live, against the oracle?

    benchmarks/live_lift.py [--quick] [--json FILE] [--work DIR] [--requests N] [--seed S]

1. Simulates a world with a known click model (--quick: the `make demo` world, 3,000 users over
   3 days; default: 20,000 users over 7 days) and trains a bundle on it with the default
   training config, as `make demo` does.
2. Draws one sequence of (reader, time) requests: readers by activity, as in the demo.
3. Runs every policy on that same sequence, each from the same starting state:
   * newsdesk — the real `newsdesk serve` (fresh state dir, online store bootstrapped from the
     dataset at start), `POST /v1/recommendations`; every slate is shown to the world's true
     click model and the clicks are POSTed back as events (the feedback loop is live);
   * trending — the same service, every reader assigned to the "trending" pipeline by an
     experiment (trending by decayed clicks, then latest), clicks posted back likewise;
   * random — k live articles uniformly at random;
   * oracle — the k live articles with the highest true click probability for that reader at
     that time (`World.oracle_slate`), the ceiling no policy can beat in expectation;
   * oracle_unread — the same without the articles the reader already clicked (a product never
     re-shows a read article; the plain oracle shows a heavy reader the same slate again).
4. With --diagnose N (default 500), decomposes where the clicks go in process (see
   `diagnose`): candidate recall, ranking, re-ranking rules, and which latent part of the click
   model (interest, quality, freshness) costs most when estimated from the store.
5. Reports per policy: live CTR (clicks / shown) with a 95% interval, the expected CTR of the
   slates under the true model (the same quantity without click noise), and the ratio of each
   to the oracle's; and the lift of newsdesk over trending with a paired bootstrap interval
   (same readers at the same times, so the requests pair up).

The service clock starts at the dataset's last event and runs in real time; request i is shown
to the world at t0 + (its send time in the newsdesk run), for every policy.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

K = 10


def build(work: Path, quick: bool, seed: int) -> tuple[Path, Path]:
    from newsdesk.pipelines.train import train
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    sim, bundles = work / "sim", work / "bundles"
    if not (sim / "manifest.json").exists():
        config = (SimulationConfig(seed=seed, n_users=3000, days=3.0, articles_per_day=300,
                                   impressions_per_day=20_000, slate_size=K) if quick else
                  SimulationConfig(seed=seed, n_users=20_000, days=7.0, articles_per_day=600,
                                   impressions_per_day=60_000, slate_size=K))
        simulate_to_dataset(config, sim)
    if not any(bundles.glob("*/manifest.json")):
        train(sim, bundles)
    return sim, bundles


def serve_policy(name: str, sim: Path, bundles: Path, work: Path, world: Any,
                 users: np.ndarray, t0: float, times: np.ndarray | None, seed: int
                 ) -> dict[str, Any]:
    """Run one service policy over the request sequence; returns slates, clicks, send times."""
    from newsdesk.demo_serving import running_server

    key = secrets.token_hex(16)
    admin = {"X-API-Key": key, "X-Actor": "live_lift"}
    state = work / f"state-{name}"
    shutil.rmtree(state, ignore_errors=True)
    slates: list[list[int]] = []
    sent: list[float] = []
    degraded = 0
    with running_server(sim, bundles, state, work / f"serve-{name}.log",
                        env={"NEWSDESK_ADMIN_API_KEY": key}) as client:
        deadline = time.monotonic() + 600
        while client.get("/readyz").json()["status"] != "ready":  # the bootstrap finished
            if time.monotonic() > deadline:
                raise TimeoutError("the online store bootstrap did not finish in 10 min")
            time.sleep(0.2)
        if name == "trending":
            production = client.get("/readyz").json()["model_version"]
            client.post("/v1/admin/experiments", headers=admin, json={
                "id": "live-lift-trending", "layer": "ranking", "surfaces": ["front_page"],
                "description": "every reader on the trending pipeline", "owner": "bench",
                "variants": [{"name": "control", "weight": 1e-6, "bundle": production},
                             {"name": "trending", "weight": 1e6, "pipeline": "trending"}],
            }).raise_for_status()
        start = time.monotonic()
        n_events = 0
        for i, u in enumerate(users):
            user = f"u{int(u)}"
            body = client.post("/v1/recommendations", json={"user_id": user, "k": K,
                                                            "surface": "front_page"})
            body.raise_for_status()
            slate = body.json()
            if name == "trending" and slate["variant"] != "trending":
                raise RuntimeError(f"request {i} was not served by the trending pipeline")
            degraded += bool(slate["degraded"]) and name == "newsdesk"
            ids = [int(it["article_id"][1:]) for it in slate["items"]]
            t = t0 + (time.monotonic() - start) if times is None else float(times[i])
            sent.append(t)
            slates.append(ids)
            if not ids:
                continue
            clicked = np.asarray(ids)[draw_clicks(world, int(u), ids, t, seed, i)[0]]
            if len(clicked):
                events = []
                for a in clicked:
                    n_events += 1
                    events.append({"type": "click", "event_id": f"ll-{name}-{n_events}",
                                   "user_id": user, "article_id": f"a{int(a)}",
                                   "request_id": slate["request_id"]})
                client.post("/v1/events", json={"events": events}).raise_for_status()
    return {"slates": slates, "times": np.asarray(sent), "degraded": degraded}


def draw_clicks(world: Any, user: int, slate: list[int], t: float, seed: int, i: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Request i's clicks under the true model (mask, probabilities); seeded by (seed, i) so
    that every policy meets the same random numbers at the same request."""
    p = world.click_probability(user, np.asarray(slate), t, np.arange(len(slate)))
    return np.random.default_rng([seed, i]).random(len(slate)) < p, p


def offline_policy(name: str, world: Any, users: np.ndarray, times: np.ndarray,
                   sim: Path, seed: int) -> list[list[int]]:
    """Slates of a policy computed from the world. `oracle_unread` is the oracle without the
    articles the reader already clicked (dataset history and clicks, and clicks drawn earlier
    in this run), as a product that never re-shows a read article would be."""
    rng = np.random.default_rng(99)
    read: dict[int, set[int]] = {}
    if name == "oracle_unread":
        import polars as pl

        from newsdesk.data.dataset import Dataset

        ds = Dataset(sim)
        rows = pl.concat([
            ds.read("histories").select("user_id", pl.col("article_ids").alias("a"))
            .explode("a"),
            ds.read("interactions").filter(pl.col("type") == "click")
            .select("user_id", pl.col("article_id").alias("a"))])
        for u, a in rows.iter_rows():
            read.setdefault(int(u[1:]), set()).add(int(a[1:]))
    out = []
    for i, (u, t) in enumerate(zip(users.tolist(), times.tolist(), strict=True)):
        live = world.live_articles(t)
        if name == "random":
            out.append(rng.choice(live, size=min(K, len(live)), replace=False).tolist())
            continue
        seen = read.get(u, set())
        cand = live[~np.isin(live, list(seen))] if seen else live
        slate = world.oracle_slate(u, t, K, candidates=cand).tolist()
        out.append(slate)
        if name == "oracle_unread":
            clicked, _ = draw_clicks(world, u, slate, t, seed, i)
            read.setdefault(u, set()).update(np.asarray(slate)[clicked].tolist())
    return out


def score(world: Any, users: np.ndarray, times: np.ndarray, slates: list[list[int]],
          seed: int) -> dict[str, np.ndarray]:
    """Per request: shown, realised clicks (the true model, seeded per request so that every
    policy gets the same random numbers), expected clicks."""
    shown = np.zeros(len(users))
    clicks = np.zeros(len(users))
    expected = np.zeros(len(users))
    for i, (u, t, s) in enumerate(zip(users, times, slates, strict=True)):
        if not s:
            continue
        mask, p = draw_clicks(world, int(u), s, float(t), seed, i)
        shown[i], clicks[i], expected[i] = len(s), float(mask.sum()), float(p.sum())
    return {"shown": shown, "clicks": clicks, "expected": expected}


def ctr_interval(clicks: np.ndarray, shown: np.ndarray) -> tuple[float, float, float]:
    """CTR = sum clicks / sum shown with a delta-method 95% interval over requests."""
    n = len(clicks)
    ctr = clicks.sum() / shown.sum()
    resid = clicks - ctr * shown
    se = float(np.sqrt((resid ** 2).sum() / max(n - 1, 1) * n)) / shown.sum()
    return float(ctr), float(ctr - 1.96 * se), float(ctr + 1.96 * se)


def paired_lift(a: np.ndarray, b: np.ndarray, shown_a: np.ndarray, shown_b: np.ndarray,
                seed: int, n_boot: int = 2000) -> dict[str, float]:
    """Relative lift of CTR a over CTR b with a paired bootstrap over requests."""
    rng = np.random.default_rng(seed)
    n = len(a)
    idx = rng.integers(0, n, size=(n_boot, n))
    ca = a[idx].sum(1) / shown_a[idx].sum(1)
    cb = b[idx].sum(1) / shown_b[idx].sum(1)
    boot = ca / cb - 1.0
    point = (a.sum() / shown_a.sum()) / (b.sum() / shown_b.sum()) - 1.0
    return {"lift": float(point), "ci_low": float(np.quantile(boot, 0.025)),
            "ci_high": float(np.quantile(boot, 0.975))}


def diagnose(sim: Path, bundles: Path, world: Any, users: np.ndarray, t0: float
             ) -> dict[str, float]:
    """Where the clicks go, in process at t0 (no feedback loop): expected clicks per slate of
    each stage's best slate as a share of the oracle's.

    oracle_unread      the oracle without articles the reader already clicked (never re-shown)
    candidate_ceiling  the best k of newsdesk's candidate pool by true attraction (recall)
    ranker_candidates  newsdesk's ranker's top k of that pool, no re-ranking rules (ranking)
    newsdesk           the full recommend() with the surface's rules (category cap, near-dup)
    and the oracle's formula with one latent part replaced by an estimate from the store:
    est_interest       topic interests from the reader's clicks (Dirichlet prior 0.5)
    est_quality        quality from smoothed CTR (clicks + 1) / (impressions + 20), z-scored
    est_freshness      every article decays with the median half-life instead of its own
    """
    import json as _json

    from newsdesk.content import make_embedder
    from newsdesk.features.bootstrap import bootstrap_store
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.models.base import RequestContext
    from newsdesk.models.bundle import load_recommender

    bundle = sorted(p.parent for p in bundles.glob("*/manifest.json"))[-1]
    store = MemoryOnlineStore()
    bootstrap_store(store, sim)
    short = _json.loads((bundle / "manifest.json").read_text())["embedder"]["short_name"]
    rec = load_recommender(bundle, store, embedder=make_embedder(short))
    cat, c, n_topics = rec.ws.catalog, world.config, world.n_topics
    live = world.live_articles(t0)
    topic = world.article_topic[live]
    stats = store.stats_matrix([f"a{a}" for a in live], t0)
    log_ctr = np.log((stats[:, 2] + 1.0) / (stats[:, 3] + 20.0))
    q_est = (log_ctr - log_ctr.mean()) / max(float(log_ctr.std()), 1e-9)
    age = np.maximum(t0 - world.article_published[live], 0.0)
    fresh_est = np.exp2(-age / float(np.median(world.article_half_life)))
    fresh = world.freshness(live, t0)

    def attraction(theta: np.ndarray, quality: np.ndarray, freshness: np.ndarray
                   ) -> np.ndarray:
        logit = (c.click_bias + c.interest_weight * np.log1p(n_topics * theta[topic])
                 + c.quality_weight * quality)
        return freshness / (1.0 + np.exp(-logit))

    acc: dict[str, list[float]] = {k: [] for k in (
        "oracle", "oracle_unread", "candidate_ceiling", "ranker_candidates", "newsdesk",
        "est_interest", "est_quality", "est_freshness")}
    for u in users.tolist():
        def clicks_of(articles: Any, u: int = u) -> float:
            a = np.asarray(articles, dtype=np.int64)[:K]
            return float(world.click_probability(u, a, t0, np.arange(len(a))).sum())

        def best(pool: np.ndarray, scores: np.ndarray, u: int = u) -> float:
            return clicks_of(pool[np.argsort(-scores, kind="stable")[:K]], u)

        view = rec.ws.view(f"u{u}", t0)
        read = {int(cat.ids[i][1:]) for i in view.known_clicks.tolist()}
        unread = np.asarray([a for a in live if a not in read], dtype=np.int64)
        idx, _ = rec.candidate_pool(view)
        pool = np.asarray([int(cat.ids[i][1:]) for i in idx.tolist()], dtype=np.int64)
        pool = pool[~np.isin(pool, list(read))]
        pool_ids = [f"a{a}" for a in pool]
        ranked = rec.ranker.predict(rec._build(view, cat.lookup(pool_ids), pool_ids))
        out = rec.recommend(RequestContext(user_id=f"u{u}", k=K, now=t0))
        theta = world.user_theta[u].astype(np.float64)
        mine = [int(x.article_id[1:]) for x in store.user_clicks(f"u{u}")]
        counts = np.bincount(world.article_topic[mine], minlength=n_topics) if mine else \
            np.zeros(n_topics)
        theta_est = (counts + 0.5) / (counts.sum() + 0.5 * n_topics)
        q = world.article_quality[live]
        acc["oracle"].append(best(live, world.attraction(u, live, t0)))
        acc["oracle_unread"].append(best(unread, world.attraction(u, unread, t0)))
        acc["candidate_ceiling"].append(best(pool, world.attraction(u, pool, t0)))
        acc["ranker_candidates"].append(best(pool, ranked))
        acc["newsdesk"].append(clicks_of([int(x.article_id[1:]) for x in out]))
        acc["est_interest"].append(best(live, attraction(theta_est, q, fresh)))
        acc["est_quality"].append(best(live, attraction(theta, q_est, fresh)))
        acc["est_freshness"].append(best(live, attraction(theta, q, fresh_est)))
    oracle = float(np.mean(acc["oracle"]))
    return {k: float(np.mean(v)) / oracle for k, v in acc.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--diagnose", type=int, default=500, metavar="N",
                        help="Requests of the in-process decomposition (0: skip).")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from newsdesk.data.stats import dataset_stats
    from newsdesk.simulation import World

    work = args.work or Path(f"/tmp/newsdesk-live-lift-{'quick' if args.quick else 'full'}")
    work.mkdir(parents=True, exist_ok=True)
    n = args.requests or (3000 if args.quick else 8000)
    t_build = time.perf_counter()
    sim, bundles = build(work, args.quick, args.seed)
    build_s = time.perf_counter() - t_build
    world = World.load(sim)
    t0 = dataset_stats(sim)["last_event"].timestamp()
    users = world.sample_users(n, np.random.default_rng(args.seed))

    runs: dict[str, dict[str, Any]] = {}
    t = time.perf_counter()
    runs["newsdesk"] = serve_policy("newsdesk", sim, bundles, work, world, users, t0, None,
                                    args.seed)
    times = runs["newsdesk"]["times"]
    runs["newsdesk"]["wall_s"] = time.perf_counter() - t
    t = time.perf_counter()
    runs["trending"] = serve_policy("trending", sim, bundles, work, world, users, t0, times,
                                    args.seed)
    runs["trending"]["wall_s"] = time.perf_counter() - t
    for name in ("oracle", "oracle_unread", "random"):
        runs[name] = {"slates": offline_policy(name, world, users, times, sim, args.seed)}

    scored = {name: score(world, users, times, r["slates"], args.seed)
              for name, r in runs.items()}
    systems: dict[str, dict[str, Any]] = {}
    oracle_ctr = scored["oracle"]["clicks"].sum() / scored["oracle"]["shown"].sum()
    oracle_exp = scored["oracle"]["expected"].sum() / scored["oracle"]["shown"].sum()
    for name, s in scored.items():
        ctr, lo, hi = ctr_interval(s["clicks"], s["shown"])
        exp_ctr = float(s["expected"].sum() / s["shown"].sum())
        systems[name] = {"ctr": ctr, "ctr_ci95": [lo, hi], "expected_ctr": exp_ctr,
                         "requests": int(len(s["shown"])), "shown": int(s["shown"].sum()),
                         "clicks": int(s["clicks"].sum())}
        if name != "oracle":
            systems[name]["ratio_to_oracle"] = ctr / oracle_ctr
            systems[name]["expected_ratio_to_oracle"] = exp_ctr / oracle_exp
    systems["newsdesk"]["degraded_share"] = runs["newsdesk"]["degraded"] / n
    nd, tr = scored["newsdesk"], scored["trending"]
    lift = paired_lift(nd["clicks"], tr["clicks"], nd["shown"], tr["shown"], args.seed)
    lift_expected = paired_lift(nd["expected"], tr["expected"], nd["shown"], tr["shown"],
                                args.seed)
    result = {
        "benchmark": "live_lift", "quick": args.quick, "requests": n, "k": K,
        "seed": args.seed, "build_s": build_s,
        "wall_s": {k: v.get("wall_s") for k, v in runs.items() if "wall_s" in v},
        "systems": systems,
        "newsdesk_lift_over_trending": lift,
        "newsdesk_expected_lift_over_trending": lift_expected,
        "targets": {
            "ratio_to_oracle": {"target": 0.80,
                                "measured": systems["newsdesk"]["ratio_to_oracle"],
                                "met": bool(systems["newsdesk"]["ratio_to_oracle"] >= 0.80)},
            "lift_over_trending": {"target": 0.30, "measured": lift["lift"],
                                   "met": bool(lift["lift"] >= 0.30 and lift["ci_low"] > 0)},
        },
    }
    if args.diagnose:
        result["decomposition_share_of_oracle"] = diagnose(
            sim, bundles, world, users[: args.diagnose], t0)
        print("where the clicks go (expected clicks, share of the oracle's, at t0):")
        for name, share in result["decomposition_share_of_oracle"].items():
            print(f"  {name:<20} {share:.3f}")
    print(f"{'policy':<10} {'CTR':>8} {'95% CI':>20} {'exp. CTR':>9} {'/oracle':>8}")
    for name in ("oracle", "oracle_unread", "newsdesk", "trending", "random"):
        s = systems[name]
        print(f"{name:<10} {s['ctr']:8.4f} [{s['ctr_ci95'][0]:.4f}, {s['ctr_ci95'][1]:.4f}] "
              f"{s['expected_ctr']:9.4f} {s.get('ratio_to_oracle', 1.0):8.3f}")
    print(f"newsdesk vs trending: {lift['lift']:+.1%} "
          f"[{lift['ci_low']:+.1%}, {lift['ci_high']:+.1%}] (paired bootstrap); "
          f"degraded answers {systems['newsdesk']['degraded_share']:.2%}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
