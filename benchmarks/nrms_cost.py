"""Request-path cost of the NRMS plug-in (numpy serving; issue 14 item 4: < 0.3 ms/request).

    benchmarks/nrms_cost.py [--quick] [--json FILE] [--requests N]

One request of the plug-in, as the recommender runs it: encode the reader from their newest
`history` clicks (cache miss), propose `quota` candidates from the live set (the live set's
projected embeddings are cached per live set, as in serving), and compute the `nrms_score`
feature for the request's candidate pool (R rows, the article embeddings already gathered by
the recommender; the reader comes from the per-request cache). The weights are random: the
cost does not depend on their values. Catalog: 384-dim unit vectors (MiniLM's size); full:
100k articles with ~11k live (serve_load's state), --quick: 20k with ~2.5k live.

Baseline in the same run, on the same readers and pools: what newsdesk already does per
request with the same inputs: the content generator's `propose` and `FeatureBuilder.build` of
the pool. The machine is shared (2 cores, other jobs): read the ratio, not only the absolute.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the server runs BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from newsdesk.data.schema import Article  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.ranking_features import FeatureBuilder, RankingInputs  # noqa: E402
from newsdesk.models.candidates import ContentGenerator, UserView, Workspace  # noqa: E402
from newsdesk.models.catalog import ArticleCatalog  # noqa: E402
from newsdesk.plugins.nrms.encoder import NRMSWeights  # noqa: E402
from newsdesk.plugins.nrms.plugin import NRMSPlugin  # noqa: E402

TARGET_MS = 0.3
DIM = 384


def build(n_articles: int, live_share: float, seed: int) -> tuple[Workspace, float]:
    rng = np.random.default_rng(seed)
    now = datetime(2026, 1, 10, tzinfo=UTC).timestamp()
    horizon_h = 72.0
    # published uniformly over horizon / live_share hours before now: ~live_share live
    ages = rng.uniform(0, horizon_h / live_share, n_articles) * 3600.0
    cats = [f"c{i}" for i in range(20)]
    arts = [Article.model_construct(
        article_id=f"a{i}", title=f"t{i}", abstract="", category=cats[i % 20], subcategory="",
        entities=[], language="en", published_at=datetime.fromtimestamp(now - ages[i], UTC),
        expires_at=None) for i in range(n_articles)]
    vec = rng.normal(size=(n_articles, DIM)).astype(np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    catalog = ArticleCatalog(DIM, capacity=n_articles + 16)
    catalog.add(arts, vec)
    ws = Workspace(catalog, MemoryOnlineStore(half_life_hours=6.0), FeatureBuilder(),
                   max_age_hours=horizon_h)
    return ws, now


def plugin_for(ws: Workspace, seed: int, work: Path) -> NRMSPlugin:
    rng = np.random.default_rng(seed)
    d, a = 64, 64

    def m(*shape: int) -> np.ndarray:
        return (rng.normal(size=shape) / np.sqrt(shape[0])).astype(np.float32)

    NRMSWeights(proj=m(DIM, d), wq=m(d, d), wk=m(d, d), wv=m(d, d), wa=m(d, a),
                ba=np.zeros(a, np.float32), qa=m(a), heads=4).save(work)
    return NRMSPlugin().load(work, ws)  # the bundle's load path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--requests", type=int, default=None)
    ap.add_argument("--pool", type=int, default=400, help="candidate rows featurised")
    ap.add_argument("--quota", type=int, default=60)
    args = ap.parse_args()
    n_articles, live_share = (20_000, 0.125) if args.quick else (100_000, 0.11)
    n_req = args.requests or (1000 if args.quick else 3000)
    ws, now = build(n_articles, live_share, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        plugin = plugin_for(ws, 1, Path(tmp))
    content = ContentGenerator(ws)
    content.basis()  # as NewsRecommender.warm does at load
    live = ws.live_set(now)
    rng = np.random.default_rng(2)
    L = ws.builder.recent_clicks
    views, pools = [], []
    for _ in range(n_req):
        k = int(rng.integers(1, L + 1))
        idx = np.full(L, -1, np.int64)
        idx[:k] = rng.choice(ws.catalog.size, k, replace=False)
        ts = np.where(idx >= 0, now - 3600.0, np.nan)
        prof, aff = ws.builder.user_profiles(ws.catalog, idx[None, :])
        views.append(UserView(f"u{_}", now, idx, ts, prof[0], aff[0], live.indices, live))
        pools.append(rng.choice(live.indices, min(args.pool, len(live.indices)),
                                replace=False))
    # warm both paths once (the live set's derived arrays, as after the first request)
    plugin.propose(views[0], args.quota)
    content.propose(views[0], 150)

    def inputs(view: UserView, pool: np.ndarray) -> RankingInputs:
        n = len(pool)
        return RankingInputs(click_idx=view.click_idx[None, :], click_ts=view.click_ts[None, :],
                             user_ids=[view.user_id], row_query=np.zeros(n, np.int64),
                             row_article=pool, now=np.full(n, now), position=np.zeros(n),
                             stats=np.zeros((n, 4)))

    nrms, encode, propose, base = [], [], [], []
    emb = ws.catalog.embeddings
    for view, pool in zip(views, pools, strict=True):
        inp = inputs(view, pool)
        pool_emb = emb[pool]
        plugin._local.last = None  # a new request: the reader is not cached
        t0 = time.perf_counter()
        plugin.reader(emb, view.click_idx)
        t1 = time.perf_counter()
        plugin.propose(view, args.quota)  # the reader cached: the search alone
        t1b = time.perf_counter()
        plugin._local.last = None
        t2 = time.perf_counter()
        plugin.propose(view, args.quota)
        plugin.compute(inp, ws.catalog, pool_emb)
        t3 = time.perf_counter()
        content.propose(view, 150)
        ws.builder.build(inp, ws.catalog, profiles=(view.profile[None, :],
                                                    view.affinity[None, :]),
                         article_embeddings=pool_emb)
        t4 = time.perf_counter()
        encode.append(t1 - t0)
        propose.append(t1b - t1)
        nrms.append(t3 - t2)
        base.append(t4 - t3)

    def ms(v: list[float], p: float) -> float:
        return float(np.percentile(v, p) * 1e3)

    systems = {
        "nrms_request": {"p50_ms": ms(nrms, 50), "p90_ms": ms(nrms, 90), "p99_ms": ms(nrms, 99)},
        "nrms_encode_only": {"p50_ms": ms(encode, 50), "p99_ms": ms(encode, 99)},
        "nrms_propose_only": {"p50_ms": ms(propose, 50), "p99_ms": ms(propose, 99)},
        "baseline_content_propose_plus_features": {"p50_ms": ms(base, 50),
                                                   "p90_ms": ms(base, 90),
                                                   "p99_ms": ms(base, 99)},
    }
    result = {"benchmark": "nrms_cost", "quick": args.quick, "articles": n_articles,
              "live": int(len(live.indices)), "requests": n_req, "pool_rows": args.pool,
              "quota": args.quota, "history": plugin.history, "dim": DIM, "encoder_dim": 64,
              "systems": systems,
              "nrms_over_baseline_p50": systems["nrms_request"]["p50_ms"]
              / systems["baseline_content_propose_plus_features"]["p50_ms"],
              "target_ms": TARGET_MS,
              "target_met_p50": systems["nrms_request"]["p50_ms"] < TARGET_MS,
              "machine": "2 cores shared with other engineers' jobs; figures are noisy"}
    for name, v in systems.items():
        print(f"{name:42s} " + "  ".join(f"{k} {x:.3f}" for k, x in v.items()))
    print(f"nrms / baseline (p50)  {result['nrms_over_baseline_p50']:.2f}   "
          f"target p50 < {TARGET_MS} ms: {result['target_met_p50']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
