"""Counterfactual evaluation of a candidate bundle, validated against the simulator's truth.

    python benchmarks/ope_live.py [--quick] [--json FILE] [--work DIR] [--runs N] [--service]

1. Builds (once, cached in --work) a simulated world (the `make demo` size: 3,000 readers over
   3 days) and bundles trained on it: production (default training config) and a candidate
   (--candidate): `different` = a weak ranker (15 trees of 3 leaves) AND another seed, so its
   candidate generators differ too; `ranker_only` = the same weak ranker over the same
   generators (seed 0), the usual shape of a launch candidate.
2. Repeated runs, IN PROCESS (the service would take minutes per run on a shared 2-core
   machine): a pool of requests (readers by activity, at the dataset's last event) is
   answered by the production bundle exactly as the service does under exploration — a
   pool of k + 10 ranked items, a Plackett-Luce draw of k of them at temperature T with the
   exact per-position propensities of `newsdesk.serving.exploration` — and clicks are drawn
   from the world's true click model. Each run logs n requests drawn from the pool and
   estimates the candidate's CTR (IPS, SNIPS, DR of `newsdesk.experiments.slate_ope`) from
   that log alone. The truth is the candidate served deterministically to the same request
   pool: its exact expected CTR under the true click model (and, for reference, a realised
   live CTR with drawn clicks). Coverage = share of runs whose 95 % CI holds the truth.
   The online store is the dataset's state, fixed during a run (no feedback loop in process).
3. --service: one end-to-end run through the real `newsdesk serve` (exploration share 1.0):
   simulated readers get production's explored slates and their clicks are POSTed back; the
   event log is exported into a copy of the dataset and `newsdesk experiment ope` estimates
   the candidate; then the candidate is served to the same readers at the same times and its
   live CTR measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

K = 10
POOL_EXTRA = 10
TEMPERATURE = 0.5


# the candidate bundles: name -> (folder in --work, training config)
CANDIDATES = {
    # another ranker AND other candidate generators (another seed): some of its items are
    # never in production's ranked pool, so the logs cannot speak for them
    "different": ("cand", {"seed": 1, "ranker": {"num_boost_round": 15, "num_leaves": 3}}),
    # a new ranker over the same candidate generators (same seed): the usual launch candidate
    "ranker_only": ("cand_ranker", {"seed": 0, "ranker": {"num_boost_round": 15,
                                                          "num_leaves": 3}}),
}
CANDIDATE = "different"


def configure(pool_extra: int, temperature: float, candidate: str = CANDIDATE) -> None:
    """Set the exploration of the runs and the candidate (the module defaults are what
    experiments.py uses)."""
    global POOL_EXTRA, TEMPERATURE, CANDIDATE
    POOL_EXTRA, TEMPERATURE, CANDIDATE = pool_extra, temperature, candidate


def build(work: Path, seed: int = 7) -> tuple[Path, Path, Path]:
    """(dataset, production bundle, candidate bundle); cached in `work`."""
    from newsdesk.pipelines.train import TrainConfig, train
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    sim = work / "sim"
    if not (sim / "manifest.json").exists():
        simulate_to_dataset(SimulationConfig(
            seed=seed, n_users=3000, days=3.0, articles_per_day=300,
            impressions_per_day=20_000, slate_size=K), sim)
    if not any((work / "prod").glob("*/manifest.json")):
        train(sim, work / "prod")
    folder, config = CANDIDATES[CANDIDATE]
    if not any((work / folder).glob("*/manifest.json")):
        train(sim, work / folder, TrainConfig.from_dict(config))
    prod = sorted(p.parent for p in (work / "prod").glob("*/manifest.json"))[-1]
    cand = sorted(p.parent for p in (work / folder).glob("*/manifest.json"))[-1]
    return sim, prod, cand


def _aid(a: str) -> int:
    return int(a[1:])


def request_pool(sim: Path, prod: Path, cand: Path, world: Any, n_pool: int, seed: int
                 ) -> dict[str, Any]:
    """Per request of the pool: production's ranked pool (ids, PL logits, marginals), the
    candidate's slate and its scores of the pool items and of its own slate."""
    from newsdesk.data.stats import dataset_stats
    from newsdesk.experiments.exploration import marginal_matrix, pl_logits
    from newsdesk.features.bootstrap import bootstrap_store
    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.models.base import RequestContext
    from newsdesk.models.bundle import load_recommender

    store = MemoryOnlineStore()
    bootstrap_store(store, sim)
    rec_p = load_recommender(prod, store)
    rec_c = load_recommender(cand, store)
    t0 = dataset_stats(sim)["last_event"].timestamp()
    users = world.sample_users(n_pool, np.random.default_rng(seed))
    out: dict[str, list[Any]] = {k: [] for k in ("user", "pool", "logits", "marg", "target",
                                                 "cand_pool_scores", "cand_own_scores")}
    for u in users.tolist():
        ctx = RequestContext(user_id=f"u{u}", now=t0, surface="front_page", k=K + POOL_EXTRA)
        items = rec_p.recommend(ctx)
        own = [it.article_id for it in rec_c.recommend(RequestContext(
            user_id=f"u{u}", now=t0, surface="front_page", k=K))]
        if len(items) < K or len(own) < K:
            continue
        ids = [it.article_id for it in items]
        lg = pl_logits(np.array([it.score for it in items]), TEMPERATURE)
        scores = rec_c.score(ctx, ids + own)
        out["user"].append(u)
        out["pool"].append(np.array([_aid(a) for a in ids]))
        out["logits"].append(lg)
        out["marg"].append(marginal_matrix(lg, K))
        out["target"].append(np.array([_aid(a) for a in own]))
        out["cand_pool_scores"].append(np.asarray(scores[:len(ids)], float))
        out["cand_own_scores"].append(np.asarray(scores[len(ids):], float))
    return {**out, "t0": t0}


def one_run(pool: dict[str, Any], world: Any, n: int, rng: np.random.Generator
            ) -> tuple[dict[str, Any], dict[str, float]]:
    from newsdesk.experiments.exploration import sample_slate
    from newsdesk.experiments.slate_ope import evaluate, from_slates, summary

    t0 = pool["t0"]
    idx = rng.integers(0, len(pool["user"]), n)
    logged, target, clicks, props, s_log, s_tgt = [], [], [], [], [], []
    for i in idx.tolist():
        lg = pool["logits"][i]
        pick = sample_slate(lg, K, rng.random(lg.size))
        slate = pool["pool"][i][pick]
        p = world.click_probability(pool["user"][i], slate, t0, np.arange(K))
        logged.append(slate.tolist())
        target.append(pool["target"][i].tolist())
        clicks.append((rng.random(K) < p).tolist())
        props.append(pool["marg"][i][pick, np.arange(K)].tolist())
        s_log.append(pool["cand_pool_scores"][i][pick])
        s_tgt.append(pool["cand_own_scores"][i])
    log = from_slates(logged, target, clicks, props, s_log, s_tgt)
    return {k: v for k, v in evaluate(log).items()}, summary(log)


def truth(pool: dict[str, Any], world: Any) -> dict[str, float]:
    """Exact expected CTR over the request pool of the candidate, and of production's
    deterministic slate (its top k) and of the explored production policy (for scale)."""
    t0 = pool["t0"]
    exam = world.examination(np.arange(K))
    cand, prod_det, prod_pl = [], [], []
    for u, tgt, ids, marg in zip(pool["user"], pool["target"], pool["pool"], pool["marg"],
                                 strict=True):
        cand.append(float(world.click_probability(u, tgt, t0, np.arange(K)).mean()))
        prod_det.append(float(world.click_probability(u, ids[:K], t0, np.arange(K)).mean()))
        attr = world.attraction(u, ids, t0)
        prod_pl.append(float((marg * attr[:, None] * exam[None, :]).sum() / K))
    return {"candidate": float(np.mean(cand)), "production_deterministic": float(np.mean(prod_det)),
            "production_explored": float(np.mean(prod_pl))}


def live_candidate_ctr(pool: dict[str, Any], world: Any, rng: np.random.Generator
                       ) -> dict[str, float]:
    """The candidate served to every request of the pool once, clicks drawn: realised CTR."""
    t0 = pool["t0"]
    clicks = [float((rng.random(K) < world.click_probability(u, tgt, t0, np.arange(K))).sum())
              for u, tgt in zip(pool["user"], pool["target"], strict=True)]
    c = np.asarray(clicks)
    ctr = c.sum() / (K * c.size)
    se = c.std(ddof=1) / np.sqrt(c.size) / K
    return {"ctr": float(ctr), "ci_low": float(ctr - 1.96 * se), "ci_high": float(ctr + 1.96 * se)}


def validate(work: Path, runs: int, n_requests: int, n_pool: int, seed: int) -> dict[str, Any]:
    from newsdesk.simulation import World

    t_build = time.perf_counter()
    sim, prod, cand = build(work)
    build_s = time.perf_counter() - t_build
    world = World.load(sim)
    t = time.perf_counter()
    pool = request_pool(sim, prod, cand, world, n_pool, seed)
    pool_s = time.perf_counter() - t
    tr = truth(pool, world)
    rng = np.random.default_rng(seed + 1)
    cover: dict[str, int] = {}
    errors: dict[str, list[float]] = {}
    widths: dict[str, list[float]] = {}
    diags: list[dict[str, float]] = []
    t = time.perf_counter()
    for _ in range(runs):
        est, diag = one_run(pool, world, n_requests, rng)
        diags.append(diag)
        for name, e in est.items():
            cover[name] = cover.get(name, 0) + int(e.covers(tr["candidate"]))
            errors.setdefault(name, []).append(e.value - tr["candidate"])
            widths.setdefault(name, []).append(e.ci_high - e.ci_low)
    runs_s = time.perf_counter() - t
    systems = {name: {"coverage": cover[name] / runs,
                      "mean_abs_bias": float(abs(np.mean(errors[name]))),
                      "mean_abs_error": float(np.mean(np.abs(errors[name]))),
                      "bias": float(np.mean(errors[name])),
                      "bias_se": float(np.std(errors[name], ddof=1) / np.sqrt(runs)),
                      "mean_ci_width": float(np.mean(widths[name]))} for name in cover}
    support = float(np.mean([np.isin(tg, pl).mean()
                             for tg, pl in zip(pool["target"], pool["pool"], strict=True)]))
    out = {"mode": "in-process (production bundle + PL exploration, simulator clicks)",
           "candidate": CANDIDATE, "candidate_config": CANDIDATES[CANDIDATE][1],
           "runs": runs, "requests_per_run": n_requests, "request_pool": len(pool["user"]),
           "k": K, "pool_size": K + POOL_EXTRA, "temperature": TEMPERATURE,
           "production_bundle": prod.name, "candidate_bundle": cand.name,
           "true_ctr": tr, "candidate_live_ctr_same_requests": live_candidate_ctr(pool, world, rng),
           "candidate_items_in_production_pool": support,
           "mean_match_rate": float(np.mean([d["match_rate"] for d in diags])),
           "mean_effective_sample_size": float(np.mean([d["effective_sample_size"]
                                                        for d in diags])),
           "systems": systems, "build_s": build_s, "pool_s": pool_s, "runs_s": runs_s}
    # the headline: DR (the estimator the CLI reports first); all three are in systems
    head = systems["dr"]
    out.update({"estimator": "dr", "coverage": head["coverage"],
                "mean_abs_bias": head["mean_abs_bias"]})
    print(f"[ope live] truth: candidate CTR {tr['candidate']:.4f} (production deterministic "
          f"{tr['production_deterministic']:.4f}, explored {tr['production_explored']:.4f}); "
          f"{len(pool['user'])} requests in the pool, candidate items inside production's pool "
          f"{support:.1%}; {runs} runs x {n_requests} logged slates")
    for name, s in systems.items():
        print(f"[ope live] {name:<6} coverage {s['coverage']:.1%}, bias {s['bias']:+.5f} "
              f"(+-{1.96 * s['bias_se']:.5f}), mean |error| {s['mean_abs_error']:.5f}, "
              f"CI width {s['mean_ci_width']:.5f}")
    return out


def through_service(work: Path, n_requests: int, seed: int) -> dict[str, Any]:
    """One end-to-end run through `newsdesk serve` (module docstring, step 3)."""
    import secrets

    from newsdesk.data.eventlog import open_event_log
    from newsdesk.demo_serving import running_server
    from newsdesk.experiments.ope_dataset import run_ope
    from newsdesk.simulation import World

    sim, prod, cand = build(work)
    world = World.load(sim)
    users = world.sample_users(n_requests, np.random.default_rng(seed))
    rng = np.random.default_rng(seed + 1)
    out: dict[str, Any] = {"requests": n_requests}

    def serve(bundles: Path, name: str, env: dict[str, str], times: list[float] | None
              ) -> tuple[list[float], np.ndarray, np.ndarray]:
        state = work / f"state-{name}"
        shutil.rmtree(state, ignore_errors=True)
        sent, clicks, shown = [], [], []
        with running_server(sim, bundles.parent, state, work / f"serve-{name}.log",
                            env={"NEWSDESK_ADMIN_API_KEY": secrets.token_hex(16), **env}
                            ) as client:
            deadline = time.monotonic() + 600
            while client.get("/readyz").json()["status"] != "ready":
                if time.monotonic() > deadline:
                    raise TimeoutError("bootstrap did not finish")
                time.sleep(0.2)
            start = time.monotonic()
            for i, u in enumerate(users.tolist()):
                r = client.post("/v1/recommendations", json={"user_id": f"u{u}", "k": K})
                r.raise_for_status()
                body = r.json()
                # the service clock starts at the dataset's last event and runs in real time
                t_now = times[i] if times is not None else world_t0 + (time.monotonic() - start)
                ids = np.array([_aid(it["article_id"]) for it in body["items"]])
                p = world.click_probability(u, ids, t_now, np.arange(ids.size))
                hit = rng.random(ids.size) < p
                sent.append(t_now)
                clicks.append(int(hit.sum()))
                shown.append(int(ids.size))
                if hit.any():
                    client.post("/v1/events", json={"events": [
                        {"type": "click", "event_id": f"{name}-{i}-{a}", "user_id": f"u{u}",
                         "article_id": f"a{a}", "request_id": body["request_id"]}
                        for a in ids[hit].tolist()]}).raise_for_status()
        return sent, np.asarray(clicks, float), np.asarray(shown, float)

    from newsdesk.data.stats import dataset_stats

    world_t0 = dataset_stats(sim)["last_event"].timestamp()
    t = time.perf_counter()
    sent, c_prod, s_prod = serve(prod, "explore", {
        "NEWSDESK_EXPLORATION_SHARE": "1.0",
        "NEWSDESK_EXPLORATION_TEMPERATURE": str(TEMPERATURE),
        "NEWSDESK_EXPLORATION_POOL": str(POOL_EXTRA),
        "NEWSDESK_BUNDLE_VERSION": prod.name}, None)
    out["explore_serve_s"] = time.perf_counter() - t
    served = work / "served"
    shutil.rmtree(served, ignore_errors=True)
    shutil.copytree(sim, served)
    log = open_event_log(f"sqlite:///{(work / 'state-explore' / 'events.db').resolve()}")
    exported = log.export(served)
    log.close()
    t = time.perf_counter()
    est = run_ope(served, cand)
    out["ope_s"] = time.perf_counter() - t
    t = time.perf_counter()
    _, c_cand, s_cand = serve(cand, "candidate", {"NEWSDESK_BUNDLE_VERSION": cand.name}, sent)
    out["candidate_serve_s"] = time.perf_counter() - t
    ctr = c_cand.sum() / s_cand.sum()
    se = float(np.sqrt(((c_cand - ctr * s_cand) ** 2).sum() / (len(c_cand) - 1)
                       * len(c_cand))) / s_cand.sum()
    out.update({"exported": exported.added, "ope": est, "logged_ctr": c_prod.sum() / s_prod.sum(),
                "candidate_live_ctr": {"ctr": float(ctr), "ci_low": float(ctr - 1.96 * se),
                                       "ci_high": float(ctr + 1.96 * se)}})
    out["covered_by"] = {k: bool(v["ci_low"] <= ctr <= v["ci_high"])
                         for k, v in est["estimates"].items()}
    print(f"[ope service] {n_requests} explored slates served; candidate live CTR {ctr:.4f} "
          f"[{ctr - 1.96 * se:.4f}, {ctr + 1.96 * se:.4f}]; estimates: "
          + ", ".join(f"{k} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]"
                      for k, v in est["estimates"].items()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--work", type=Path, default=Path("/tmp/newsdesk-ope-live"))
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--service", action="store_true", help="also one run through the service")
    ap.add_argument("--pool", type=int, default=POOL_EXTRA, help="explored pool: k + POOL items")
    ap.add_argument("--temperature", type=float, default=TEMPERATURE)
    ap.add_argument("--candidate", choices=sorted(CANDIDATES), default=CANDIDATE)
    ap.add_argument("--service-only", action="store_true", help="skip the in-process runs")
    ap.add_argument("--service-requests", type=int, default=None)
    args = ap.parse_args(argv)
    configure(args.pool, args.temperature, args.candidate)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.work.mkdir(parents=True, exist_ok=True)
    runs = args.runs or (100 if args.quick else 300)
    res: dict[str, Any] = {}
    if not args.service_only:
        res["in_process"] = validate(args.work, runs, 1000 if args.quick else 2000,
                                     1500 if args.quick else 3000, args.seed)
    if args.service or args.service_only:
        res["service"] = through_service(
            args.work, args.service_requests or (800 if args.quick else 2000), args.seed)
    if args.json:
        from newsdesk.experiments.report import json_safe

        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(json_safe(res), indent=2, allow_nan=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
