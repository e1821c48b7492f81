"""Semantic cold start on the simulator: clicks in a new reader's first session, with and without.

    benchmarks/cold_start.py --quick [--json FILE]     # 3k users, 2 days; minutes
    benchmarks/cold_start.py [--json FILE]             # 20k users, 4 days

Protocol: simulate a world, train a bundle on all of it (MiniLM embeddings), and warm an online
store with the whole log. Then `--readers` world readers arrive as NEW readers (ids unknown to
the store and to the CF factors: `cold:<u>`), each for one session of `--requests` front-page
requests two minutes apart, right after the log ends. Every slate is shown to the world's TRUE
click model; clicks are written back to the store (the session learns from them, as serving
does). Arms, each on its own copy of the store, with the same random numbers per (reader,
request):

* `none`      the reader says nothing (today's cold start: trending, recency, exploration);
* `text`      before the first request the reader states interests in free text, derived from
              their true topic interests WITH NOISE: 2-3 topics drawn in proportion to the
              reader's interest, each named by a random phrase of its vocabulary (English or
              German nouns, entities, subtopics), and each phrase replaced by a random other
              topic's with probability `--noise` (default 0.3);
* `referrer`  the reader arrives from an article: a live article of a topic drawn from their
              interests (as a link from elsewhere would be);
* `oracle`    the slate of highest true attraction (ceiling; not a product).

Figures: clicks per reader in the session (mean, and the ratio to `none` with a paired
bootstrap 95% interval), clicks on the first slate, the share of readers with at least one
click, and the cost of seeding (ms per seed, embedding included) and of a seeded request.
The machine may be shared: compare the arms' ratios, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from newsdesk.features.interest_seeds import write_seed  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.training_log import LogArrays, load_log, warm_store  # noqa: E402
from newsdesk.models.base import RequestContext  # noqa: E402
from newsdesk.models.bundle import load_recommender  # noqa: E402
from newsdesk.models.cold_start import seed_profile  # noqa: E402
from newsdesk.simulation import SimulationConfig, World, simulate_to_dataset  # noqa: E402
from newsdesk.simulation.vocab import CATEGORIES  # noqa: E402

K = 10
GAP_S = 120.0


def phrase(topic: int, rng: np.random.Generator) -> str:
    """A random way a reader might name a topic: a subtopic noun, an entity, a German noun,
    the subtopic or the category name."""
    c = CATEGORIES[topic]
    pools = [tuple(w for ws in c.subcategories.values() for w in ws), c.entities, c.nouns_de,
             tuple(c.subcategories), (c.name,)]
    pool = pools[int(rng.integers(len(pools)))]
    return str(pool[int(rng.integers(len(pool)))]).removeprefix("the ")


def stated_text(theta: np.ndarray, rng: np.random.Generator, noise: float) -> str:
    n = int(rng.integers(2, 4))
    topics = rng.choice(len(theta), size=min(n, int((theta > 0).sum())), replace=False,
                        p=theta / theta.sum())
    out = []
    for t in topics.tolist():
        if rng.random() < noise:  # a stated interest the reader does not really have
            t = int(rng.integers(len(theta)))
        out.append(phrase(t, rng))
    return ", ".join(out)


def referrer(world: World, u: int, t: float, rng: np.random.Generator) -> str:
    live = world.live_articles(t)
    topic = int(rng.choice(world.n_topics, p=world.user_theta[u] / world.user_theta[u].sum()))
    same = live[world.article_topic[live] == topic]
    pool = same if len(same) else live
    return f"a{int(pool[int(rng.integers(len(pool)))])}"


def run_arm(arm: str, world: World, log: LogArrays, bundle: Path, readers: np.ndarray,
            t0: float, n_requests: int, seed: int, noise: float) -> dict[str, Any]:
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=t0)
    rec = load_recommender(bundle, store)
    ws = rec.ws
    clicks = np.zeros((len(readers), n_requests), dtype=np.int64)
    seed_ms: list[float] = []
    req_ms: list[float] = []
    texts: list[str] = []
    for j, u in enumerate(readers.tolist()):
        uid = f"cold:{u}"
        start = t0 + 2.0 * j
        rng = np.random.default_rng([seed, u])  # the same text / referrer in every run
        if arm in ("text", "referrer"):
            began = time.perf_counter()
            if arm == "text":
                text = stated_text(world.user_theta[u].astype(np.float64), rng, noise)
                texts.append(text)
                sp = seed_profile(ws, rec.embedder, start, text=text)
            else:
                sp = seed_profile(ws, rec.embedder, start,
                                  article_id=referrer(world, u, start, rng))
            write_seed(store, uid, sp)
            seed_ms.append((time.perf_counter() - began) * 1e3)
        for i in range(n_requests):
            t = start + i * GAP_S
            if arm == "oracle":
                slate = world.oracle_slate(u, t, K).tolist()
            else:
                began = time.perf_counter()
                items = rec.recommend(RequestContext(user_id=uid, now=t, k=K))
                req_ms.append((time.perf_counter() - began) * 1e3)
                slate = [int(it.article_id[1:]) for it in items]
            if not slate:
                continue
            p = world.click_probability(u, np.asarray(slate), t, np.arange(len(slate)))
            hit = np.random.default_rng([seed, u, i]).random(len(slate)) < p
            clicks[j, i] = int(hit.sum())
            ids = [f"a{a}" for a in slate]
            store.record_impressions(ids, t)
            clicked = [a for a, h in zip(ids, hit.tolist(), strict=True) if h]
            if clicked:
                store.record_clicks(uid, clicked, t)
    return {"clicks": clicks, "seed_ms": seed_ms, "req_ms": req_ms, "texts": texts[:8]}


def paired_ratio_ci(a: np.ndarray, b: np.ndarray, seed: int, n_boot: int = 2000
                    ) -> tuple[float, float, float]:
    """mean(a) / mean(b) and a 95% bootstrap interval over readers (paired)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    ratios = a[idx].mean(axis=1) / np.maximum(b[idx].mean(axis=1), 1e-12)
    return (float(a.mean() / max(b.mean(), 1e-12)), float(np.percentile(ratios, 2.5)),
            float(np.percentile(ratios, 97.5)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--readers", type=int, default=None)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if args.quick:
        sim = SimulationConfig(seed=args.seed, n_users=3000, days=2.0, articles_per_day=150,
                               impressions_per_day=30_000, backlog_days=1.0, slate_size=K)
        n_readers = args.readers or 300
    else:
        sim = SimulationConfig(seed=args.seed, n_users=20_000, days=4.0, articles_per_day=400,
                               impressions_per_day=80_000, backlog_days=1.0, slate_size=K)
        n_readers = args.readers or 1500
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-coldstart-"))
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if not (work / "sim" / "manifest.json").exists():
        simulate_to_dataset(sim, work / "sim")
    timings["simulate_s"] = time.perf_counter() - t
    t = time.perf_counter()
    if not any((work / "bundles").glob("*/manifest.json")):
        from newsdesk.pipelines.train import TrainConfig, train

        train(work / "sim", work / "bundles", TrainConfig.from_dict(
            {"embedder": "minilm", "embedding_cache_dir": str(work / "cache")}))
    bundle = sorted((work / "bundles").glob("*/manifest.json"))[-1].parent
    timings["train_s"] = time.perf_counter() - t
    world = World.load(work / "sim")
    log = load_log(work / "sim")
    t0 = log.time_range[1] + 60.0
    readers = np.random.default_rng(args.seed).choice(world.n_users, n_readers, replace=False)
    arms = {}
    for arm in ("none", "text", "referrer", "oracle"):
        t = time.perf_counter()
        arms[arm] = run_arm(arm, world, log, bundle, readers, t0, args.requests, args.seed,
                            args.noise)
        timings[f"arm_{arm}_s"] = time.perf_counter() - t
        print(f"arm {arm:9s} clicks/reader {arms[arm]['clicks'].sum(axis=1).mean():.3f}",
              flush=True)
    base = arms["none"]["clicks"].sum(axis=1).astype(float)
    systems: dict[str, dict[str, Any]] = {}
    for arm, res in arms.items():
        per = res["clicks"].sum(axis=1).astype(float)
        ratio, lo, hi = paired_ratio_ci(per, base, args.seed)
        systems[arm] = {
            "clicks_per_reader": float(per.mean()),
            "first_slate_clicks": float(res["clicks"][:, 0].mean()),
            "readers_with_a_click": float((per > 0).mean()),
            "ratio_to_none": ratio, "ratio_ci95": [lo, hi],
            "seed_ms_p50": float(np.median(res["seed_ms"])) if res["seed_ms"] else None,
            "request_ms_p50": float(np.median(res["req_ms"])) if res["req_ms"] else None,
        }
        if res["texts"]:
            systems[arm]["example_texts"] = res["texts"]
    result = {"benchmark": "cold_start", "quick": args.quick, "config": sim.to_dict(),
              "readers": n_readers, "requests_per_session": args.requests,
              "noise": args.noise, "systems": systems,
              "timings": {k: round(v, 1) for k, v in timings.items()},
              "note": "shared 2-core machine: compare ratios within the run"}
    for arm, s in systems.items():
        print(f"{arm:9s} clicks/reader {s['clicks_per_reader']:.3f}  first slate "
              f"{s['first_slate_clicks']:.3f}  ratio {s['ratio_to_none']:.3f} "
              f"[{s['ratio_ci95'][0]:.3f}, {s['ratio_ci95'][1]:.3f}]  seed p50 "
              f"{s['seed_ms_p50']} ms  request p50 {s['request_ms_p50']} ms")
    print("examples:", systems["text"].get("example_texts", [])[:4])
    print("timings", result["timings"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
