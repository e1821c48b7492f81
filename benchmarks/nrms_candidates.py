"""Does the NRMS plug-in help as a candidate generator? Recall of held-out clicks.

    benchmarks/nrms_candidates.py [--quick] [--world v1|v2] [--json FILE]
                                  [--workdir DIR_OF_simulator_quality --plugin nrms RUN]

Protocol: the simulator_quality world (same seed and sizes), a bundle trained with
`plugins: [nrms (candidates, features)]` on the events before the evaluation period (reused
from a `simulator_quality.py --plugin nrms --workdir DIR` run when given), then for up to
`--max-clicks` held-out clicks in time order (the store holding the events before each, advanced
in 15-minute steps): does a generator propose the clicked article at the click's time?

Per generator at the same n (`--n`): recall = share of clicks whose article it proposes.
Per pool (every enabled generator at its quota): recall with and without the NRMS generator,
and how many candidates NRMS adds. Clicks of readers without an earlier click are counted
(no personal generator can serve them) and the figures are also given for readers with history.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.training_log import load_log, warm_store  # noqa: E402
from newsdesk.models.bundle import load_recommender  # noqa: E402
from newsdesk.pipelines.train import TrainConfig, train  # noqa: E402
from newsdesk.simulation import SimulationConfig, simulate_to_dataset  # noqa: E402
from simulator_quality import STEP_S, cut_dataset  # noqa: E402


def prepare(args: argparse.Namespace) -> tuple[Path, Path, float]:
    """(dataset, bundle with nrms, cut)."""
    make = SimulationConfig.v2 if args.world == "v2" else SimulationConfig
    sim = (make(seed=1, n_users=3000, days=2.0, articles_per_day=150,
                impressions_per_day=40_000, backlog_days=1.0) if args.quick else
           make(seed=1, n_users=100_000, days=7.0, articles_per_day=5000,
                impressions_per_day=1_000_000, backlog_days=2.0))
    cut = sim.end_unix - args.eval_days * 86400.0
    work = args.workdir
    if work is not None and (work / "bundles_plugin").is_dir():
        bundle = sorted(p for p in (work / "bundles_plugin").iterdir()
                        if not p.name.startswith("."))[-1]
        return work / "sim", bundle, cut
    work = work or Path(tempfile.mkdtemp(prefix="nd-nrms-cand-"))
    simulate_to_dataset(sim, work / "sim")
    cut_dataset(work / "sim", work / "train", cut)
    cfg = TrainConfig.from_dict({"embedder": args.embedder,
                                 "embedding_cache_dir": str(work / "cache"),
                                 "plugins": [{"name": "nrms",
                                              "roles": ["candidates", "features"]}]})
    version = train(work / "train", work / "bundles_plugin", cfg)
    return work / "sim", work / "bundles_plugin" / version, cut


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--world", choices=("v1", "v2"), default="v1")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--eval-days", type=float, default=0.5)
    ap.add_argument("--max-clicks", type=int, default=2000)
    ap.add_argument("--n", type=int, default=60, help="proposals per generator compared")
    args = ap.parse_args()
    from newsdesk.content import make_embedder

    dataset, bundle, cut = prepare(args)
    log = load_log(dataset)
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=cut)
    rec = load_recommender(bundle, store, embedder=make_embedder(args.embedder))
    rec.upsert_articles([a for a in log.articles if a.article_id not in rec.ws.catalog.index])
    ev = log.events
    after = np.flatnonzero((ev.click_ts >= cut) & (ev.click_article >= 0))
    rng = np.random.default_rng(0)
    if len(after) > args.max_clicks:
        after = np.sort(rng.choice(after, args.max_clicks, replace=False))
    after = after[np.argsort(ev.click_ts[after], kind="stable")]
    art_ids = [a.article_id for a in log.articles]
    gens = {g.name: g for g in rec.generators}
    if "nrms" not in gens:
        raise SystemExit(f"{bundle}: no nrms generator (trained without the plug-in?)")
    hits: dict[str, list[bool]] = {name: [] for name in gens}
    pool_with, pool_without, added, has_hist = [], [], [], []
    t_store = cut
    for c in after.tolist():
        t = float(ev.click_ts[c])
        while t_store + STEP_S <= t:
            warm_store(store, log, until=t_store + STEP_S, since=t_store)
            t_store += STEP_S
        target = rec.ws.catalog.index.get(art_ids[int(ev.click_article[c])])
        if target is None:
            continue
        view = rec.ws.view(ev.user_ids[int(ev.click_user[c])], t)
        has_hist.append(view.has_history)
        proposals = {}
        for name, g in gens.items():
            proposals[name] = g.propose(view, rec.quotas.get(name, 100))[0]
            hits[name].append(bool(np.isin(target, g.propose(view, args.n)[0])))
        others = np.concatenate([p for n, p in proposals.items() if n != "nrms"])
        pool_without.append(bool(np.isin(target, others)))
        pool_with.append(pool_without[-1] or bool(np.isin(target, proposals["nrms"])))
        added.append(int((~np.isin(proposals["nrms"], others)).sum()))
    h = np.array(has_hist)

    def share(v: list[bool], mask: np.ndarray | None = None) -> float:
        a = np.array(v, dtype=float)
        return float(a[mask].mean()) if mask is not None and mask.any() else float(a.mean())

    systems: dict[str, Any] = {
        name: {f"recall@{args.n}": share(v), f"recall@{args.n}_with_history": share(v, h)}
        for name, v in hits.items()}
    systems["pool_without_nrms"] = {"recall": share(pool_without),
                                    "recall_with_history": share(pool_without, h)}
    systems["pool_with_nrms"] = {"recall": share(pool_with),
                                 "recall_with_history": share(pool_with, h)}
    result = {"benchmark": "nrms_candidates", "quick": args.quick, "world": args.world,
              "bundle": str(bundle), "clicks": len(h), "clicks_with_history": int(h.sum()),
              "nrms_new_candidates_per_request": float(np.mean(added)),
              "quotas": rec.quotas, "systems": systems,
              "machine": "2 cores shared with other engineers' jobs"}
    for name, v in systems.items():
        print(f"{name:20s} " + "  ".join(f"{k} {x:.4f}" for k, x in v.items()))
    print(f"clicks {len(h)} (with history {int(h.sum())}); nrms adds "
          f"{result['nrms_new_candidates_per_request']:.1f} new candidates per request")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
