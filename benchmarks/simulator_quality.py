"""Ranking quality of newsdesk on the simulator, as a ratio of the oracle that knows the truth.

    benchmarks/simulator_quality.py --quick            # 3k users, 2 days, minutes
    benchmarks/simulator_quality.py [--full]           # 100k users, 5k articles/day, 7 days
    benchmarks/simulator_quality.py --quick --json out.json [--embedder minilm-int8]
    benchmarks/simulator_quality.py --quick --world v2 # stories, entities, bursts, German, ...

Protocol: simulate; train a bundle on the events before the last `--eval-days` (articles
published later are unknown to it and are upserted at the start of evaluation, as serving
would); then replay the held-out impressions in time order: each logged slate is ranked with
`Recommender.score` from a store that holds the events before the last 15-minute step boundary
at or before that impression (`--store-step-s 0`: every event before the impression, as a
server's store), and by the oracle (the simulator's true attraction = P(click | examined)).

Systems, all scored on the same held-out slates: `oracle` (true attraction), `newsdesk` (the
trained bundle), `streaming_ctr` (decayed smoothed CTR, the harness's baseline) and
`category_only`: the same newsdesk pipeline trained and served on a copy of the dataset whose
titles and abstracts are reduced to "category subcategory" and whose entities are removed, so
it sees topics, ids and behaviour but no story or entity words (the ablation of issue 14: what
the text and story signals add). The gain newsdesk - category_only gets a paired bootstrap
interval over impressions. `--text-features` trains every system with the story / entity /
language ranking features on (off by default). `--feature-ablations story,entities,language,
text` adds, per group, the
newsdesk pipeline trained with that group of ranking features left out (`newsdesk_no_<group>`,
`features.disabled`), each compared with newsdesk by the same paired bootstrap.

Real-time learning (issue 14, item 2): `newsdesk` serves the bundle with its online parts on
(co-visitation counted from the replayed events, fold-in of new articles and users);
`newsdesk_static` is the same bundle with both off, `newsdesk_covis` / `newsdesk_foldin` with
one of them on (the ablation). All four read one store fed point-in-time by the replay.

Figures (newsdesk / oracle):
* AUC and nDCG@10 of the logged clicks (mean over impressions with a click and a non-click);
* expected clicks when the slate is displayed in each ranker's order (true click model,
  position bias included), overall and for articles in their first hour (cold start), and
  `new_user_clicks_ratio`: the same on the impressions of readers whose first click came
  after the training cut, from their first click on (what fold-in of new users can reach).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.evaluation import metrics as M
from newsdesk.evaluation.bootstrap import compare_systems
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import load_log, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.baselines import StreamingCTRRecommender
from newsdesk.models.bundle import load_recommender, offline_store, read_manifest
from newsdesk.pipelines.train import TrainConfig
from newsdesk.pipelines.train import train as train_bundle
from newsdesk.simulation import SimulationConfig, World, simulate_to_dataset
from newsdesk.simulation.posterior import LatentPosterior, QualityPosterior
from newsdesk.simulation.world_v2 import WorldV2

STEP_S = 900.0
# ranking feature groups of `--feature-ablations` (features.disabled of the arm's training)
FEATURE_GROUPS = {
    "story": ["story_clicks", "hours_since_story_click"],
    "entities": ["entity_overlap"],
    "language": ["language_mismatch"],
    "text": ["content_sim", "max_click_sim", "story_clicks", "hours_since_story_click",
             "entity_overlap", "story_exposures"],
    "exposures": ["story_exposures"],
}

# the bundle served with its real-time parts on / off (see set_realtime), on one shared store
REALTIME_VARIANTS = {"newsdesk": (True, True), "newsdesk_static": (False, False),
                     "newsdesk_covis": (True, False), "newsdesk_foldin": (False, True)}


def set_realtime(rec: Any, covis: bool, foldin: bool) -> None:
    """Switch a loaded bundle's online co-visitation and fold-in on or off."""
    rec.coclick.online_weight = rec.coclick.online_weight if covis else 0.0
    if hasattr(rec.cf, "online_foldin"):
        rec.cf.online_foldin = rec.cf.online_foldin if foldin else False


def cut_dataset(src: Path, dst: Path, cut: float) -> None:
    """Copy of a dataset with the impressions / interactions / articles before `cut`."""
    ds = Dataset(src)
    cut_us = int(cut * 1e6)
    with DatasetWriter(dst, source=ds.source) as w:
        for table, col in (("articles", "published_at"), ("impressions", "timestamp"),
                           ("interactions", "timestamp")):
            df = ds.scan(table).filter(pl.col(col).dt.epoch("us") < cut_us).collect()
            w.table(table, dedupe=False).write_table(df)
        w.table("histories", dedupe=False).write_table(ds.read("histories"))


def blind_dataset(src: Path, dst: Path) -> None:
    """Copy of a dataset whose article text is only "category subcategory" (no entities)."""
    ds = Dataset(src)
    with DatasetWriter(dst, source=ds.source) as w:
        arts = ds.read("articles").with_columns(
            pl.concat_str([pl.col("category"), pl.col("subcategory")], separator=" ")
            .alias("title"),
            pl.concat_str([pl.col("category"), pl.col("subcategory")], separator=" ")
            .alias("abstract"),
            pl.col("entities").list.head(0))
        w.table("articles", dedupe=False).write_table(arts)
        for table in ("impressions", "interactions", "histories"):
            w.table(table, dedupe=False).write_table(ds.read(table))


def _ranker(bundle: Path, sim_dir: Path, cut: float, embedder_name: str,
            store: MemoryOnlineStore | None = None, log: Any = None
            ) -> tuple[Any, MemoryOnlineStore, Any]:
    """A bundle served from a fresh store warmed up to `cut` (or from `store`, already
    warm), with the later articles upserted (as serving would); returns (recommender, store,
    log)."""
    from newsdesk.content import make_embedder

    if store is None:
        log = load_log(sim_dir)
        store = offline_store(bundle)  # its half-life, and exposure lists if it reads them
        warm_store(store, log, until=cut)
    # the bundle's own embedder (a variant may train with another than the run's)
    name = str(read_manifest(bundle)["embedder"].get("short_name") or embedder_name)
    rec = load_recommender(bundle, store, embedder=make_embedder(name))
    rec.upsert_articles([a for a in log.articles if a.article_id not in rec.ws.catalog.index])
    return rec, store, log


def evaluate(sim_dir: Path, bundles: dict[str, tuple[Path, Path]], cut: float,
             max_impressions: int, embedder_name: str, step_s: float = STEP_S,
             references: int = 0) -> tuple[dict[str, Any], dict]:
    """Replay the held-out slates; `bundles`: system -> (bundle dir, dataset it reads).
    The stores advance in `step_s` steps (0: up to each impression's time, as a server's
    store is: every event strictly before the impression). `references` > 0 adds the
    information-limited oracles (`simulation/posterior.py`) with that many posterior samples.

    Returns (figures, per-impression metric values per system for the bootstrap)."""
    world = World.load(sim_dir)
    systems: dict[str, Any] = {}
    stores: list[tuple[MemoryOnlineStore, Any]] = []
    log = None
    for name, (bundle, data_dir) in bundles.items():
        rec, store, blog = _ranker(bundle, data_dir, cut, embedder_name)
        systems[name] = rec
        stores.append((store, blog))
        log = log or blog
        if name == "newsdesk":  # the ablation of the real-time parts: one store, four switches
            for variant, (covis, foldin) in REALTIME_VARIANTS.items():
                if variant != name:
                    systems[variant] = _ranker(bundle, data_dir, cut, embedder_name, store,
                                               blog)[0]
                set_realtime(systems[variant], covis, foldin)
    assert log is not None
    ctr_store = MemoryOnlineStore(half_life_hours=24.0)  # as the evaluation harness
    warm_store(ctr_store, log, until=cut)
    systems["streaming_ctr"] = StreamingCTRRecommender(ctr_store)
    stores.append((ctr_store, log))

    oracles = {"oracle": world, **oracle_ablations(world)}

    exp = log.exposures.filter(pl.col("ts") >= cut)
    qs = exp["q"].unique().sort().to_numpy()
    rng = np.random.default_rng(0)
    if len(qs) > max_impressions:
        qs = np.sort(rng.choice(qs, max_impressions, replace=False))
    new_since = first_clicks_after(log, cut)  # ucode -> first click time, for new readers
    # every held-out impression of a new reader after their first click is scored too (they
    # are few: a sample would leave a handful); outside the sample they count for
    # new_user_clicks_ratio only, so the other figures keep the sample they always had
    firsts = pl.DataFrame({"ucode": np.fromiter(new_since, np.int64, len(new_since)),
                           "first": np.fromiter(new_since.values(), np.float64,
                                                len(new_since))},
                          schema={"ucode": pl.Int32, "first": pl.Float64})
    new_qs = (exp.join(firsts, on="ucode").filter(pl.col("ts") > pl.col("first"))["q"]
              .unique().to_numpy())
    sampled = set(qs.tolist())
    qs_all = np.union1d(qs, new_qs)
    exp = exp.join(pl.DataFrame({"q": qs_all}), on="q", how="semi").sort(["q", "pos"])
    art_ids = [a.article_id for a in log.articles]
    users = log.events.user_ids
    if references:  # the information limits: the oracle estimating theta / q from the log
        shown_users = world.user_index(np.asarray(users)[exp["ucode"].unique().to_numpy()])
        shown_arts = world.article_index(
            np.asarray(art_ids)[exp.filter(pl.col("aidx") >= 0)["aidx"].unique().to_numpy()])
        quality = QualityPosterior(world, log, shown_arts)
        v2 = isinstance(world, WorldV2)
        latent = {"interest": (True, False, None)}
        if v2:
            latent |= {"story": (False, True, None), "interest_story": (True, True, None)}
        latent["all"] = (True, v2, quality)  # every latent fact of reader and article
        for name, (interests, stories, q) in latent.items():
            oracles[f"oracle_est_{name}"] = LatentPosterior(
                world, log, shown_users, references, interests=interests, stories=stories,
                quality=q)
        # the same from the readers' clicks alone: what keeping their exposures is worth
        oracles["oracle_est_all_clicks_only"] = LatentPosterior(
            world, log, shown_users, references, stories=v2, quality=quality, skips=False)
        if v2:  # a Bayes model of v1's terms only (topic, quality, freshness) learning theta
            # on v2's log: what a topic-level model can reach without stories and entities
            oracles["oracle_est_interest_topic_only"] = LatentPosterior(
                oracles["oracle_topic_only"], log, shown_users, references)  # type: ignore[arg-type]
        oracles["oracle_est_quality"] = quality
    names = [*systems, *oracles]
    per: dict[str, dict[str, list[float]]] = {n: {"auc": [], "ndcg@10": []} for n in names}
    exp_clicks = {n: 0.0 for n in names}
    fresh_clicks = {n: 0.0 for n in names}
    new_user_clicks = {n: 0.0 for n in names}
    new_user_impressions = 0
    t_store = cut
    latencies = []
    for (q,), grp in exp.group_by(["q"], maintain_order=True):
        t = float(grp["ts"][0])
        in_sample = q in sampled
        if step_s <= 0 and t > t_store:  # exact: every event strictly before t
            for store, slog in stores:
                warm_store(store, slog, until=t, since=t_store)
            t_store = t
        while step_s > 0 and t_store + step_s <= t:  # events strictly before the step end
            for store, slog in stores:
                warm_store(store, slog, until=t_store + step_s, since=t_store)
            t_store += step_s
        uid = users[int(grp["ucode"][0])]
        slate = [art_ids[a] for a in grp["aidx"].to_list()]
        labels = grp["label"].to_numpy().astype(float)
        scores = {}
        for name, rec in systems.items():
            began = time.perf_counter()
            scores[name] = np.asarray(rec.score(RequestContext(user_id=uid, now=t), slate),
                                      dtype=float)
            if name == "newsdesk" and in_sample:
                latencies.append(time.perf_counter() - began)
        for name, w in oracles.items():
            scores[name] = np.asarray(w.attraction([uid] * len(slate), slate, t), dtype=float)
        if in_sample and 0 < labels.sum() < len(labels):
            for name, s in scores.items():
                per[name]["auc"].append(M.auc(labels, s))
                per[name]["ndcg@10"].append(M.ndcg(labels, s, 10))
        age = t - world.article_published[world.article_index(slate)]
        first_hour = age < 3600.0
        first = new_since.get(int(grp["ucode"][0]))
        new_user = first is not None and t > first
        new_user_impressions += new_user
        for name, s in scores.items():
            pos = np.empty(len(slate))
            pos[np.argsort(-s, kind="stable")] = np.arange(len(slate))
            e = world.examination(pos) * scores["oracle"]
            if in_sample:
                exp_clicks[name] += e.sum()
                fresh_clicks[name] += e[first_hour].sum()
            if new_user:
                new_user_clicks[name] += e.sum()
    mean = {n: {m: float(np.nanmean(v)) for m, v in per[n].items()} for n in names}
    o = mean["oracle"]
    for n in names:
        mean[n]["auc_ratio"] = mean[n]["auc"] / o["auc"]
        mean[n]["ndcg@10_ratio"] = mean[n]["ndcg@10"] / o["ndcg@10"]
        mean[n]["expected_clicks_ratio"] = exp_clicks[n] / exp_clicks["oracle"]
        mean[n]["first_hour_clicks_ratio"] = fresh_clicks[n] / max(fresh_clicks["oracle"],
                                                                   1e-12)
        mean[n]["new_user_clicks_ratio"] = new_user_clicks[n] / max(new_user_clicks["oracle"],
                                                                    1e-12)
    nd = mean["newsdesk"]
    out: dict[str, Any] = {
        "auc_model": nd["auc"], "auc_oracle": o["auc"], "ndcg_model": nd["ndcg@10"],
        "ndcg_oracle": o["ndcg@10"], "auc_ratio": nd["auc_ratio"],
        "ndcg@10_ratio": nd["ndcg@10_ratio"],
        "expected_clicks_ratio": nd["expected_clicks_ratio"],
        "first_hour_clicks_ratio": nd["first_hour_clicks_ratio"],
        "new_user_clicks_ratio": nd["new_user_clicks_ratio"],
        "new_user_impressions": new_user_impressions,
        "eval_impressions": len(qs),
        "scored_impressions": len(per["oracle"]["auc"]),
        "score_p50_ms": float(np.percentile(latencies, 50) * 1e3),
        "score_p99_ms": float(np.percentile(latencies, 99) * 1e3),
        "systems": mean,
        "est_interest_mean_ess": (oracles["oracle_est_interest"].mean_ess  # type: ignore[attr-defined]
                                  if "oracle_est_interest" in oracles else None),
    }
    arrays = {n: {m: np.asarray(v) for m, v in per[n].items()} for n in names}
    return out, arrays


def ratio_intervals(per_unit: dict, n_resamples: int = 2000, seed: int = 0
                    ) -> dict[str, dict[str, list[float]]]:
    """95 % bootstrap intervals (over impressions) of each system's mean metric over the
    oracle's: is a ratio target above what a reference can reach, beyond the noise?"""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, list[float]]] = {}
    for metric in ("auc", "ndcg@10"):
        oracle = per_unit["oracle"][metric]
        idx = rng.integers(0, len(oracle), (n_resamples, len(oracle)))
        base = np.nanmean(oracle[idx], axis=1)
        for name, per in per_unit.items():
            if name == "oracle" or name.startswith(("oracle_no_", "oracle_topic")):
                continue
            ratios = np.nanmean(per[metric][idx], axis=1) / base
            out.setdefault(name, {})[metric] = [float(v) for v in
                                                np.percentile(ratios, [2.5, 97.5])]
    return out


def first_clicks_after(log: Any, cut: float) -> dict[int, float]:
    """Readers (user codes) whose first click (histories included) came at or after `cut`,
    the training cut: their first click's time."""
    ev = log.events
    first: dict[int, float] = {}
    for u, t in zip(ev.click_user.tolist(), ev.click_ts.tolist(), strict=True):
        if t < first.get(u, np.inf):
            first[u] = t
    known = set(ev.hist_user.tolist())
    return {u: t for u, t in first.items() if t >= cut and u not in known}


def oracle_ablations(world: World) -> dict[str, World]:
    """World v2's oracle with one term of its click model switched off: how much each part
    of the truth is worth in AUC / nDCG (an upper bound on what a model can gain from it).
    `oracle_topic_only` keeps v1's terms (topic interest, quality, freshness) only."""
    if not isinstance(world, WorldV2):
        return {}
    arrays = {k: getattr(world, k) for k in WorldV2.ARRAYS}
    off = {"story": {"story_weight": 0.0}, "entities": {"entity_weight": 0.0},
           "burst": {"burst_weight": 0.0},
           "language": {"foreign_language_penalty": 0.0, "english_for_german_penalty": 0.0}}
    off["topic_only"] = {k: v for d in off.values() for k, v in d.items()}
    return {f"oracle_{'no_' if name != 'topic_only' else ''}{name}":
            WorldV2(dataclasses.replace(world.config, **zero), **arrays)
            for name, zero in off.items()}


def ablation(per_unit: dict, seed: int = 0) -> list[dict[str, Any]]:
    """newsdesk - category_only (and - streaming_ctr, - newsdesk_static: what the real-time
    parts add, - each newsdesk_no_<group>, - each information-limited reference
    oracle_est_<part>) with paired bootstrap intervals."""
    arms = [n for n in per_unit if n.startswith(("newsdesk_no_", "oracle_est_"))]
    pairs = {n: per_unit[n] for n in ("category_only", "streaming_ctr", "newsdesk_static",
                                      "newsdesk", *arms) if n in per_unit}
    out = []
    for base in ("category_only", "streaming_ctr", "newsdesk_static", *arms):
        if base in pairs and "newsdesk" in pairs:
            for c in compare_systems({base: pairs[base], "newsdesk": pairs["newsdesk"]}, base,
                                     ["auc", "ndcg@10"], n_resamples=2000, seed=seed):
                out.append(c.to_dict())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true",
                    help="100k users x 7 days (the default when --quick is not given)")
    ap.add_argument("--world", choices=("v1", "v2"), default="v1")
    ap.add_argument("--seed", type=int, default=1,
                    help="the simulated world's seed (the published figures use 1)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--eval-days", type=float, default=0.5)
    ap.add_argument("--max-eval-impressions", type=int, default=None)
    ap.add_argument("--online-replay", action="store_true",
                    help="train with the online co-clicks / fold-in replayed point in time "
                         "(train config generators.online_replay)")
    ap.add_argument("--store-step-s", type=float, default=STEP_S,
                    help="the online stores advance in steps of this many seconds (0: up to "
                         "each impression, as a server's store)")
    ap.add_argument("--no-ablation", action="store_true",
                    help="skip the category-only ranker (one training run less)")
    ap.add_argument("--text-features", action="store_true",
                    help="train every system with the story / entity / language features on "
                         "(features.disabled: []; they are off by default)")
    ap.add_argument("--feature-ablations", default="",
                    help=f"comma-separated feature groups, each trained without: "
                         f"{', '.join(FEATURE_GROUPS)}")
    ap.add_argument("--train-config", type=Path, default=None,
                    help="a train config YAML for every system trained (default: defaults)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--variant-config", type=Path, default=None,
                    help="a train config YAML of settings to change, merged one level deep "
                         "(e.g. ranker: {num_leaves: 15}): also train newsdesk with them "
                         "(newsdesk_variant), compared with newsdesk by the paired bootstrap")
    ap.add_argument("--reuse", action="store_true",
                    help="with --workdir: keep the simulated data and the bundles a previous "
                         "run left there (evaluate again, e.g. with other references); it "
                         "trusts the directory: give the world and train flags of that run")
    ap.add_argument("--references", type=int, default=1000,
                    help="posterior samples of the information-limited oracles "
                         "oracle_est_* (0: off). Their cost grows with each reader's log: "
                         "quick worlds 1-6 min, full v1 with 300 samples and 8,000 slates "
                         "35 min, full v2 (per-story likelihoods) hours: use 0 there")
    ap.add_argument("--plugin", default=None,
                    help="also train newsdesk + this plug-in as candidates and feature "
                         "(e.g. nrms): system newsdesk_<name>, compared with newsdesk")
    ap.add_argument("--plugin-roles", default="candidates,features",
                    help="the plug-in's roles, e.g. features (llm_enrichment has no generator)")
    ap.add_argument("--plugin-params", type=json.loads, default={},
                    help='JSON object of the plug-in\'s params, e.g. \'{"epochs": 6}\'')
    args = ap.parse_args()
    if args.quick and args.full:
        ap.error("--quick and --full exclude each other")
    groups = [g for g in args.feature_ablations.split(",") if g]
    for g in groups:
        if g not in FEATURE_GROUPS:
            ap.error(f"--feature-ablations: unknown group {g!r}; allowed: {list(FEATURE_GROUPS)}")
    make = SimulationConfig.v2 if args.world == "v2" else SimulationConfig
    if args.quick:
        sim = make(seed=args.seed, n_users=3000, days=2.0, articles_per_day=150,
                   impressions_per_day=40_000, backlog_days=1.0)
        max_eval = args.max_eval_impressions or 4000
    else:
        sim = make(seed=args.seed, n_users=100_000, days=7.0, articles_per_day=5000,
                   impressions_per_day=1_000_000, backlog_days=2.0)
        max_eval = args.max_eval_impressions or 30_000
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nd-simq-"))
    timings = {}
    reuse = args.reuse and (work / "sim" / "manifest.json").exists()
    cut = sim.end_unix - args.eval_days * 86400.0
    t = time.perf_counter()
    if not reuse:
        simulate_to_dataset(sim, work / "sim")
        cut_dataset(work / "sim", work / "train", cut)
    timings["simulate_s"] = time.perf_counter() - t

    def train(data: Path, out: Path, config: TrainConfig) -> str:
        """Train, or with --reuse take the newest bundle a previous run left in `out`."""
        done = sorted(p.parent.name for p in out.glob("*/manifest.json")) if reuse else []
        return done[-1] if done else train_bundle(data, out, config)
    base = TrainConfig.from_yaml(args.train_config).model_dump() if args.train_config else {}
    gens = {**base.get("generators", {}), "online_replay": args.online_replay}
    cfg = TrainConfig.from_dict({**base, "embedder": args.embedder,
                                 "embedding_cache_dir": str(work / "cache"),
                                 "generators": gens})
    if args.text_features:
        cfg = cfg.model_copy(update={"features": cfg.features.model_copy(
            update={"disabled": []})})
    t = time.perf_counter()
    version = train(work / "train", work / "bundles", cfg)
    timings["train_s"] = time.perf_counter() - t
    bundles = {"newsdesk": (work / "bundles" / version, work / "sim")}
    if not args.no_ablation:
        if not (reuse and (work / "sim_blind" / "manifest.json").exists()):
            blind_dataset(work / "sim", work / "sim_blind")
            cut_dataset(work / "sim_blind", work / "train_blind", cut)
        t = time.perf_counter()
        blind = train(work / "train_blind", work / "bundles_blind", cfg)
        timings["train_category_only_s"] = time.perf_counter() - t
        bundles["category_only"] = (work / "bundles_blind" / blind, work / "sim_blind")
    for g in groups:
        arm_cfg = cfg.model_copy(update={"features": cfg.features.model_copy(
            update={"disabled": sorted({*cfg.features.disabled, *FEATURE_GROUPS[g]})})})
        t = time.perf_counter()
        v = train(work / "train", work / f"bundles_no_{g}", arm_cfg)
        timings[f"train_no_{g}_s"] = time.perf_counter() - t
        bundles[f"newsdesk_no_{g}"] = (work / f"bundles_no_{g}" / v, work / "sim")
    if args.plugin:  # the ablation of a plug-in: the same config with it, else identical
        with_plugin = TrainConfig.from_dict({**cfg.model_dump(mode="json"), "plugins": [
            {"name": args.plugin, "roles": args.plugin_roles.split(","),
             "params": args.plugin_params}]})
        t = time.perf_counter()
        pv = train(work / "train", work / "bundles_plugin", with_plugin)
        timings[f"train_{args.plugin}_s"] = time.perf_counter() - t
        bundles[f"newsdesk_{args.plugin}"] = (work / "bundles_plugin" / pv, work / "sim")
    if args.variant_config:  # the same pipeline with some train settings changed
        base_dump = cfg.model_dump(mode="json")
        changes = TrainConfig.from_yaml(args.variant_config).model_dump(
            mode="json", exclude_unset=True)
        variant = TrainConfig.from_dict({k: ({**base_dump[k], **v} if isinstance(v, dict)
                                              else v) for k, v in {**base_dump,
                                                                   **changes}.items()})
        # one bundle directory per set of changes, so that --reuse never takes another's
        tag = hashlib.sha1(json.dumps(changes, sort_keys=True).encode()).hexdigest()[:8]
        t = time.perf_counter()
        vv = train(work / "train", work / f"bundles_variant_{tag}", variant)
        timings["train_variant_s"] = time.perf_counter() - t
        bundles["newsdesk_variant"] = (work / f"bundles_variant_{tag}" / vv, work / "sim")
    t = time.perf_counter()
    figures, per_unit = evaluate(work / "sim", bundles, cut, max_eval, args.embedder,
                                 args.store_step_s, args.references)
    timings["evaluate_s"] = time.perf_counter() - t
    comparisons = ablation(per_unit)
    for arm in [f"newsdesk_{args.plugin}" if args.plugin else None,
                "newsdesk_variant" if args.variant_config else None]:
        if arm:
            comparisons += [c.to_dict() for c in compare_systems(
                {"newsdesk": per_unit["newsdesk"], arm: per_unit[arm]},
                "newsdesk", ["auc", "ndcg@10"], n_resamples=2000, seed=0)]
    manifest = json.loads((work / "bundles" / version / "manifest.json").read_text())
    systems = {n: {"auc": v["auc"], "ndcg@10": v["ndcg@10"]}
               for n, v in figures["systems"].items() if not n.startswith("oracle_")}
    oracle_parts = {n: v for n, v in figures["systems"].items() if n.startswith("oracle_")}
    result = {"benchmark": "simulator_quality", "quick": args.quick, "world": args.world,
              "config": sim.to_dict(), "embedder": args.embedder,
              "store_step_s": args.store_step_s, "online_replay": args.online_replay,
              "train_config": cfg.model_dump(mode="json"),
              "variant_config": (TrainConfig.from_yaml(args.variant_config).model_dump(
                  mode="json", exclude_unset=True) if args.variant_config else None),
              **{k: v for k, v in figures.items() if k != "systems"},
              **{k: round(v, 2) for k, v in timings.items()},
              "systems": systems,
              "system_ratios": {n: {k: v[k] for k in ("auc_ratio", "ndcg@10_ratio",
                                                     "expected_clicks_ratio",
                                                     "first_hour_clicks_ratio",
                                                     "new_user_clicks_ratio")}
                                for n, v in figures["systems"].items()},
              "comparisons": comparisons,
              "ratio_intervals": ratio_intervals(per_unit),
              "feature_ablations": {g: FEATURE_GROUPS[g] for g in groups},
              "feature_importance": manifest["metrics"].get("feature_importance"),
              "oracle_ablations": oracle_parts,
              "bundle_valid_metrics": manifest["metrics"].get("valid"),
              "targets": ({"auc_ratio": 0.93} if args.world == "v2" else
                          {"auc_ratio": 0.97, "ndcg@10_ratio": 0.95}),
              "machine": "2 cores shared with other engineers' jobs; figures are noisy"}
    for k in ("auc_model", "auc_oracle", "auc_ratio", "ndcg_model", "ndcg_oracle",
              "ndcg@10_ratio", "expected_clicks_ratio", "first_hour_clicks_ratio",
              "new_user_clicks_ratio", "new_user_impressions", "eval_impressions",
              "score_p50_ms", "score_p99_ms"):
        print(f"{k:26s} {figures[k]:.4f}" if isinstance(figures[k], float) else
              f"{k:26s} {figures[k]}")
    for n, v in figures["systems"].items():
        print(f"{n:16s} auc {v['auc']:.4f} ({v['auc_ratio']:.4f} of oracle)  "
              f"ndcg@10 {v['ndcg@10']:.4f} ({v['ndcg@10_ratio']:.4f})  "
              f"first hour {v['first_hour_clicks_ratio']:.4f}  "
              f"new users {v['new_user_clicks_ratio']:.4f}")
    for n, iv in result["ratio_intervals"].items():
        print(f"{n:16s} ratio to oracle, 95 %: " + "  ".join(
            f"{m} [{lo:.4f}, {hi:.4f}]" for m, (lo, hi) in iv.items()))
    for c in comparisons:
        print(f"{c['system_b']} - {c['system_a']} {c['metric']}: {c['diff']:+.4f} "
              f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] p={c['p_value']:.4f}")
    print("timings", {k: round(v, 1) for k, v in timings.items()})
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
