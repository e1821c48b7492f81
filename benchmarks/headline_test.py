"""Headline testing on the simulator: does the bandit find the best variant, and at what regret?

    benchmarks/headline_test.py --quick [--json FILE] [--llm N]
    benchmarks/headline_test.py [--json FILE] [--llm N]

Protocol: a simulated world (readers with topic interests, articles with quality and
freshness: `World`). For each of `--articles` articles, `--variants` headlines get a LATENT
attraction multiplier: the original 1.0, the others exp(N(0, sigma)) (the truth the test must
find). Readers arrive one impression at a time (drawn by activity, at times over the article's
first hours, at a random slate position); P(click) = the world's true click probability of
the article for that reader, time and position x the shown variant's multiplier. Two
allocation policies see the same readers, times, positions and random numbers:

* `thompson` - `llm.headlines.HeadlineTest` (probability matching on Beta posteriors,
  propensities logged, promotion at P(best) >= 0.95 after `--min-impressions`);
* `uniform`  - every variant equally often (a classic A/B/n test for the same traffic).

Figures: expected regret (sum over impressions of P(click | best variant) - P(click | shown
variant)) per policy and its ratio thompson / uniform; expected clicks; how often the final
choice is the true best (thompson: the promoted winner, else the variant of highest P(best);
uniform: the highest observed CTR), how often a test promoted at all, and whether promoted
winners were right; impressions until promotion.
`--llm N` also asks the local model (SmolLM2-135M) for variants of N simulated articles and
reports how many pass validation, and the seconds per proposal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from newsdesk.llm.headlines import HeadlineTest  # noqa: E402
from newsdesk.simulation import SimulationConfig  # noqa: E402
from newsdesk.simulation.population import build_world  # noqa: E402


def run_article(world: Any, a: int, mult: np.ndarray, n_imp: int, seed: int,
                min_impressions: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, a])
    users = world.sample_users(n_imp, rng)
    t = world.article_published[a] + rng.uniform(0, 6 * 3600.0, n_imp)
    pos = rng.integers(0, 10, n_imp)
    base = world.click_probability(users, np.full(n_imp, a), t, pos)
    p = np.minimum(base[:, None] * mult[None, :], 1.0)  # (impressions, variants)
    u01 = rng.random(n_imp)  # the same random number for whichever variant is shown
    best = int(np.argmax(mult))
    out: dict[str, Any] = {"best": best}
    # thompson
    test = HeadlineTest(f"a{a}", [f"v{k}" for k in range(len(mult))], seed=seed + a,
                        min_impressions=min_impressions)
    regret = clicks = 0.0
    promoted_at = None
    for i in range(n_imp):
        s = test.serve()
        k = int(s.variant[1:])
        regret += p[i, best] - p[i, k]
        clicks += p[i, k]
        test.record(s.variant, bool(u01[i] < p[i, k]))
        if promoted_at is None and test.maybe_promote() is not None:
            promoted_at = i + 1
    # without a promotion the test's current choice is its most probable best
    final = test.winner or test.arms[int(np.argmax(test.p_best()))]
    out["thompson"] = {"regret": regret, "clicks": clicks, "winner": final,
                       "promoted_at": promoted_at}
    # uniform: round robin (a balanced A/B/n), the winner = best observed CTR at the end
    k_of = np.arange(n_imp) % len(mult)
    chosen = p[np.arange(n_imp), k_of]
    hits = u01 < chosen
    ctr = np.array([hits[k_of == k].mean() for k in range(len(mult))])
    out["uniform"] = {"regret": float((p[:, best] - chosen).sum()),
                      "clicks": float(chosen.sum()), "winner": f"v{int(np.argmax(ctr))}"}
    return out


def llm_proposals(n: int) -> dict[str, Any]:
    from newsdesk.llm.headlines import propose_headlines
    from newsdesk.llm.local import LocalProvider
    from newsdesk.simulation.vocab import article_text

    provider = LocalProvider("smollm2-135m")
    rng = np.random.default_rng(0)
    valid = rejected = 0
    reasons: dict[str, int] = {}
    secs = []
    examples = []
    failures = 0
    for i in range(n):
        title, abstract, _ = article_text(i % 7, 0, "en", rng.integers(0, 1000, 12))
        began = time.perf_counter()
        try:
            prop = propose_headlines(provider, title, abstract, n=3, timeout_s=300)
        except Exception as exc:  # an invalid answer after the retry counts as a failure
            failures += 1
            reasons[type(exc).__name__] = reasons.get(type(exc).__name__, 0) + 1
            continue
        finally:
            secs.append(time.perf_counter() - began)
        valid += len(prop.valid)
        rejected += len(prop.rejected)
        for _, r in prop.rejected:
            reasons[r] = reasons.get(r, 0) + 1
        examples.append({"title": title, "valid": prop.valid, "rejected": prop.rejected})
    provider.close()
    return {"articles": n, "valid": valid, "rejected": rejected, "failed_answers": failures,
            "reasons": reasons, "seconds_per_proposal_p50": float(np.median(secs)),
            "examples": examples[:3]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--articles", type=int, default=None)
    ap.add_argument("--impressions", type=int, default=None)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--sigma", type=float, default=0.3)
    ap.add_argument("--min-impressions", type=int, default=500)
    ap.add_argument("--llm", type=int, default=0)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    n_art = args.articles or (20 if args.quick else 100)
    n_imp = args.impressions or (8000 if args.quick else 20_000)
    world = build_world(SimulationConfig(seed=args.seed, n_users=5000, days=2.0,
                                         articles_per_day=200, impressions_per_day=1000))
    rng = np.random.default_rng(args.seed)
    articles = rng.choice(world.n_articles, n_art, replace=False)
    began = time.perf_counter()
    runs = []
    for a in articles.tolist():
        mult = np.concatenate([[1.0], np.exp(rng.normal(0, args.sigma, args.variants - 1))])
        runs.append(run_article(world, a, mult, n_imp, args.seed, args.min_impressions))
    elapsed = time.perf_counter() - began
    systems: dict[str, dict[str, Any]] = {}
    for pol in ("thompson", "uniform"):
        rs = [r[pol] for r in runs]
        systems[pol] = {
            "regret_per_article": float(np.mean([r["regret"] for r in rs])),
            "expected_clicks_per_article": float(np.mean([r["clicks"] for r in rs])),
            "winner_is_best": float(np.mean([r["winner"] == f"v{x['best']}"
                                             for r, x in zip(rs, runs, strict=True)])),
        }
    th = [r["thompson"] for r in runs]
    systems["thompson"]["promoted_share"] = float(np.mean([r["promoted_at"] is not None
                                                           for r in th]))
    promoted = [r["promoted_at"] for r in th if r["promoted_at"] is not None]
    systems["thompson"]["impressions_to_promotion_p50"] = (float(np.median(promoted))
                                                           if promoted else None)
    systems["thompson"]["promoted_winner_is_best"] = float(np.mean(
        [r["winner"] == f"v{x['best']}" for r, x in zip(th, runs, strict=True)
         if r["promoted_at"] is not None])) if promoted else None
    ratio = systems["thompson"]["regret_per_article"] / max(
        systems["uniform"]["regret_per_article"], 1e-12)
    result: dict[str, Any] = {
        "benchmark": "headline_test", "quick": args.quick, "articles": n_art,
        "impressions_per_article": n_imp, "variants": args.variants, "sigma": args.sigma,
        "systems": systems, "regret_ratio_thompson_to_uniform": ratio,
        "seconds": round(elapsed, 1), "note": "shared 2-core machine"}
    if args.llm:
        result["llm_proposals"] = llm_proposals(args.llm)
    for pol, s in systems.items():
        print(pol, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()})
    print(f"regret thompson / uniform: {ratio:.3f}")
    if "llm_proposals" in result:
        lp = result["llm_proposals"]
        print("llm proposals:", {k: v for k, v in lp.items() if k != "examples"})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
