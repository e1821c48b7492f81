"""`newsdesk train`: dataset directory -> versioned model bundle.

Steps (times are split on the impressions' time span [start, end]):

1. catalog: every article of the dataset, embedded with the configured embedder;
2. static generators (co-clicks, ALS) are fitted on clicks before `start + generator_fraction *
   span` (plus histories), so the ranker's co-click / CF features never see the future;
3. the ranker's impressions are the ones after that cut; the last `valid_fraction` of the span is
   held out for validation metrics (and early stopping). Impressions without any click or
   without any non-click carry no ranking signal and are dropped; when more remain than
   `max_train_impressions` they are subsampled uniformly at random (seeded), which keeps the
   training time bounded at any log size (state replay still reads every event);
4. features: the log is replayed point-in-time (`features.replay`) and `FeatureBuilder.build`
   (the serving code) turns it into the matrix; LightGBM LambdaRank is fitted;
5. the static generators are refitted on all clicks for serving, and the bundle is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import newsdesk
from newsdesk.content.embedder import Embedder
from newsdesk.errors import ConfigError, DatasetError
from newsdesk.features.covisit_replay import ReplayCoVisits
from newsdesk.features.covisitation import CoVisitParams
from newsdesk.features.ranking_features import FEATURE_NAMES, FeatureBuilder, RankingInputs
from newsdesk.features.replay import replay_inputs
from newsdesk.features.training_log import LogArrays, load_log, ranker_queries
from newsdesk.models import rerank
from newsdesk.models.bundle import BUNDLE_FORMAT, MANIFEST, RANKER_FILE, file_hashes
from newsdesk.models.candidates import CoClickGenerator, CollaborativeGenerator, Workspace
from newsdesk.models.catalog import ArticleCatalog
from newsdesk.models.ranker import LambdaRanker
from newsdesk.monitoring.drift import Reference
from newsdesk.pipelines.drift_reference import serving_reference
from newsdesk.plugins import lifecycle as plugin_lifecycle
from newsdesk.plugins.base import FitContext
from newsdesk.plugins.config import PluginSpec, check_specs
from newsdesk.plugins.features import PluginFeatureBuilder

_Strict = ConfigDict(extra="forbid")


class CandidateQuotas(BaseModel):
    """Candidates per generator per request (0 disables a generator)."""

    model_config = _Strict
    trending: int = Field(100, ge=0)
    recency: int = Field(60, ge=0)
    content: int = Field(150, ge=0)
    coclick: int = Field(60, ge=0)
    collaborative: int = Field(60, ge=0)
    category: int = Field(60, ge=0)


OPT_IN_FEATURES = ("story_clicks", "hours_since_story_click", "entity_overlap",
                   "language_mismatch", "story_exposures")


class FeatureConfig(BaseModel):
    model_config = _Strict
    half_life_hours: float = Field(6.0, gt=0)  # must equal the online store's
    recent_clicks: int = Field(50, ge=1, le=1000)
    sim_clicks: int = Field(10, ge=0)
    profile_decay: float = Field(0.9, gt=0, le=1)
    ctr_strength: float = Field(20.0, ge=0)
    affinity_prior: float = Field(3.0, gt=0)  # Dirichlet pseudo-clicks of topic_interest
    story_sim: float = Field(0.7, ge=-1, le=1)  # cosine from which a click is the same story
    # articles shown to a reader kept per reader (the store) for story_exposures
    recent_exposures: int = Field(100, ge=0, le=1000)
    # features left missing for the ranker (and not computed): names from FEATURE_NAMES.
    # The story / entity / language features are off by default: on simulator world v2 they
    # gave no significant gain over the same ranker without them (nor over a category-only
    # ranker) while adding request cost (docs/simulator.md, "Ranking quality on v2").
    # story_exposures gains on the quick v2 worlds (little on the full one) and needs a store
    # that keeps exposure lists (serving setting online_store_exposures; docs/simulator.md,
    # "Exposure lists").
    # `disabled: []` turns them on
    disabled: list[str] = Field(default_factory=lambda: list(OPT_IN_FEATURES))

    @field_validator("disabled")
    @classmethod
    def _known_features(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; allowed: {list(FEATURE_NAMES)}")
        return v
    bucket_minutes: float = Field(60.0, gt=0)  # replay granularity (speed only, still exact)


class SplitConfig(BaseModel):
    model_config = _Strict
    generator_fraction: float = Field(0.3, ge=0, lt=1)
    valid_fraction: float = Field(0.15, gt=0, lt=1)


class RankerConfig(BaseModel):
    model_config = _Strict
    objective: Literal["rank_xendcg", "lambdarank"] = "rank_xendcg"
    num_boost_round: int = Field(300, ge=1)
    early_stopping_rounds: int = Field(30, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    num_leaves: int = Field(7, ge=2)
    min_data_in_leaf: int = Field(200, ge=1)
    max_train_impressions: int = Field(200_000, ge=10)
    max_valid_impressions: int = Field(50_000, ge=10)


class GeneratorConfig(BaseModel):
    model_config = _Strict
    coclick: dict[str, Any] = Field(default_factory=dict)  # session_gap_s, window, recent
    collaborative: dict[str, Any] = Field(default_factory=dict)  # factors, iterations, ...
    category: dict[str, Any] = Field(default_factory=dict)  # freshness_hours, top_categories
    # featurise the training rows with the online co-clicks and fold-in as the store held them
    # at each query (features/covisit_replay.py); off: measured to cost first-hour clicks in
    # both simulated worlds (docs/realtime.md)
    online_replay: bool = False


class SparkConfig(BaseModel):
    """The Spark engine's options (`engine: spark`); the session's own settings (master URL,
    driver memory) also come from NEWSDESK_SPARK_* (see `pipelines.spark.session`)."""

    model_config = _Strict
    master: str | None = None  # None: NEWSDESK_SPARK_MASTER or local[cores]
    driver_memory: str | None = None  # None: NEWSDESK_SPARK_DRIVER_MEMORY or a machine share
    als: Literal["implicit", "spark"] = "implicit"  # the collaborative model's ALS


class TrainConfig(BaseModel):
    """Everything `train` needs; stored in the bundle's manifest."""

    model_config = _Strict
    seed: int = 0
    # the engine of the data steps (generators, query selection, point-in-time features);
    # "local" (Polars + numpy) is the reference, "spark" the distributed twin
    engine: Literal["local", "spark"] = "local"
    spark: SparkConfig = Field(default_factory=SparkConfig)
    # a `newsdesk.content.make_embedder` name. int8 ONNX MiniLM: 1.9x the articles/s of
    # sentence-transformers, cosine >= 0.989 to it, and no ranking metric drops (quick v1 and
    # v2, three seeds each, paired; MIND; docs/simulator.md, "The embedder"); "minilm" is the
    # reference it was measured against
    embedder: str = "minilm-int8"
    embedding_cache_dir: str | None = None
    max_age_hours: float | None = Field(72.0, gt=0)  # live horizon of candidates
    candidates: CandidateQuotas = Field(default_factory=CandidateQuotas)
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    ranker: RankerConfig = Field(default_factory=RankerConfig)
    generators: GeneratorConfig = Field(default_factory=GeneratorConfig)
    serving: rerank.ServingConfig = Field(default_factory=rerank.ServingConfig)
    # requests of the validation period replayed through the serving path for the drift
    # reference (pipelines.drift_reference); 0 writes no reference
    reference_requests: int = Field(500, ge=0, le=100_000)
    # candidate generators, features and rankers of installed plug-ins (plugins.config)
    plugins: list[PluginSpec] = Field(default_factory=list)

    @field_validator("plugins")
    @classmethod
    def _plugins(cls, v: list[PluginSpec]) -> list[PluginSpec]:
        check_specs(v)
        return v

    @model_validator(mode="after")
    def _plugins_engine(self) -> TrainConfig:
        if self.plugins and self.engine != "local":
            raise ValueError("'plugins' train on the local engine only")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            raise ConfigError(f"train config: field '{where}': {err['msg']}") from exc

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"train config {path}: cannot read ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"train config {path}: expected a mapping at the top level")
        return cls.from_dict(data)


# -- steps ------------------------------------------------------------------------------------
def build_catalog(log: LogArrays, embedder: Embedder) -> ArticleCatalog:
    """Catalog of every dataset article, in dataset order, embedded in batches."""
    catalog = ArticleCatalog(embedder.dim, capacity=max(16, 2 * len(log.articles)))
    for lo in range(0, len(log.articles), 4096):
        catalog.upsert(log.articles[lo:lo + 4096], embedder)
    return catalog


def fit_static(ws: Workspace, cfg: TrainConfig, log: LogArrays, until: float | None
               ) -> tuple[CoClickGenerator, CollaborativeGenerator]:
    """Co-click and ALS models fitted on histories + clicks before `until` (None = all)."""
    ev = log.events
    keep = np.ones(len(ev.click_ts), bool) if until is None else ev.click_ts < until
    user = np.concatenate([ev.hist_user, ev.click_user[keep]])
    art = np.concatenate([ev.hist_article, ev.click_article[keep]])
    ts = np.concatenate([ev.hist_ts, ev.click_ts[keep]])
    n = ws.catalog.size
    co = CoClickGenerator(ws, **cfg.generators.coclick).fit(user, art, ts, n)
    cf = CollaborativeGenerator(ws, seed=cfg.seed, **cfg.generators.collaborative)
    cf.fit(ev.user_ids, user, art, n)
    return co, cf


def build_features(builder: FeatureBuilder, inputs: RankingInputs, catalog: ArticleCatalog,
                   co: CoClickGenerator, cf: CollaborativeGenerator,
                   chunk_queries: int = 20_000) -> np.ndarray:
    """FeatureBuilder.build over query chunks (bounded memory); rows must be query-sorted."""
    parts = []
    q_bounds = np.searchsorted(inputs.row_query, np.arange(0, len(inputs.user_ids) + 1))
    for q0 in range(0, len(inputs.user_ids), chunk_queries):
        q1 = min(q0 + chunk_queries, len(inputs.user_ids))
        r0, r1 = q_bounds[q0], q_bounds[q1]
        part = RankingInputs(
            click_idx=inputs.click_idx[q0:q1], click_ts=inputs.click_ts[q0:q1],
            user_ids=inputs.user_ids[q0:q1], row_query=inputs.row_query[r0:r1] - q0,
            row_article=inputs.row_article[r0:r1], now=inputs.now[r0:r1],
            position=inputs.position[r0:r1], stats=inputs.stats[r0:r1],
            exposure_idx=(None if inputs.exposure_idx is None
                          else inputs.exposure_idx[q0:q1]))
        parts.append(builder.build(part, catalog, coclick=co, cf=cf))
    return np.concatenate(parts) if parts else np.zeros((0, len(FEATURE_NAMES)), np.float32)


def group_metrics(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Mean per-impression AUC and nDCG@10, and the global row AUC."""
    from sklearn.metrics import roc_auc_score

    from newsdesk.evaluation import metrics as m

    aucs, ndcgs = [], []
    start = 0
    for g in groups:
        y, s = labels[start:start + g], scores[start:start + g]
        start += g
        if 0 < y.sum() < len(y):
            aucs.append(m.auc(y, s))
            ndcgs.append(m.ndcg(y, s, 10))
    glob = float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")
    return {"auc": float(np.mean(aucs)) if aucs else float("nan"),
            "ndcg@10": float(np.mean(ndcgs)) if ndcgs else float("nan"),
            "row_auc": glob, "impressions": len(aucs)}


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             cwd=Path(newsdesk.__file__).parent, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _data_hash(dataset_dir: Path) -> str:
    h = hashlib.sha256((dataset_dir / "manifest.json").read_bytes())
    for p in sorted(dataset_dir.glob("*/*.parquet")):
        h.update(f"{p.relative_to(dataset_dir)}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


@dataclass
class TrainingData:
    """What the ranker is fitted on, from either engine: the catalog and feature models, the
    train / valid sets (X (R, F) float32, labels (R,), groups (Q,)), the row identities
    (`rows`: per set, the query users and times and each row's position and statistics key,
    for parity checks) and what the bundle's manifest records."""

    catalog: ArticleCatalog
    builder: FeatureBuilder
    ws: Workspace
    co: CoClickGenerator
    cf: CollaborativeGenerator
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    rows: dict[str, dict[str, Any]]
    train_queries: int
    time_range: tuple[float, float]
    counts: dict[str, int]
    valid_cut: float
    refit: Callable[[], tuple[CoClickGenerator, CollaborativeGenerator]]  # on all clicks
    log: LogArrays | None = None  # the local engine's arrays (the drift reference needs them)
    plugins: list[plugin_lifecycle.Resolved] | None = None  # the config's plug-ins, resolved


def _builder_and_workspace(cfg: TrainConfig, catalog: ArticleCatalog, clicks: int,
                           exposures: int) -> tuple[FeatureBuilder, Workspace]:
    from newsdesk.features.memory_store import MemoryOnlineStore

    f = cfg.features
    prior = clicks / exposures if exposures else 0.05
    builder = FeatureBuilder(recent_clicks=f.recent_clicks, sim_clicks=f.sim_clicks,
                             profile_decay=f.profile_decay, ctr_prior=max(prior, 1e-4),
                             ctr_strength=f.ctr_strength, affinity_prior=f.affinity_prior,
                             story_sim=f.story_sim, recent_exposures=f.recent_exposures,
                             disabled=tuple(f.disabled))
    ws = Workspace(catalog, MemoryOnlineStore(half_life_hours=f.half_life_hours), builder,
                   max_age_hours=cfg.max_age_hours)
    return builder, ws


def split_times(cfg: TrainConfig, time_range: tuple[float, float]) -> tuple[float, float]:
    """(generator cut, validation cut) of the impressions' time span."""
    t0, t1 = time_range
    span = max(t1 - t0, 1.0)
    return t0 + cfg.split.generator_fraction * span, t1 - cfg.split.valid_fraction * span


def local_training_data(dataset_dir: Path, cfg: TrainConfig, embedder: Embedder,
                        lap: Callable[[str], None] = lambda name: None) -> TrainingData:
    """The local engine (the reference): Polars load, numpy replay, FeatureBuilder."""
    log = load_log(dataset_dir)
    lap("load")
    catalog = build_catalog(log, embedder)
    lap("embed")
    f = cfg.features
    builder, ws = _builder_and_workspace(cfg, catalog, len(log.events.click_ts),
                                         len(log.events.exp_ts))
    gen_cut, valid_cut = split_times(cfg, log.time_range)
    co, cf = fit_static(ws, cfg, log, until=gen_cut)
    # the online co-clicks (and fold-in) serving adds, as the store held them at each query
    if cfg.generators.online_replay:
        co.replay_covisits = cf.replay_covisits = ReplayCoVisits.fit(
            log.events.click_user, log.events.click_article, log.events.click_ts,
            CoVisitParams(), catalog.size)
    lap("fit_generators")
    resolved = plugin_lifecycle.resolve(cfg.plugins)
    if resolved:  # feature plug-ins learn before the ranker's period, like co-clicks and CF
        fitted = plugin_lifecycle.fit_trainable(
            resolved, FitContext(ws, log, gen_cut, cfg.seed), roles=frozenset({"features"}))
        builder = PluginFeatureBuilder(builder.params(),
                                       plugin_lifecycle.feature_plugins(resolved, fitted))
        lap("fit_plugins")

    rng = np.random.default_rng(cfg.seed)
    r = cfg.ranker
    train_q = ranker_queries(log, gen_cut, valid_cut, r.max_train_impressions, rng)
    valid_q = ranker_queries(log, valid_cut, np.inf, r.max_valid_impressions, rng)
    if train_q.n_queries == 0:
        raise DatasetError(f"{dataset_dir}: no impressions with both clicks and non-clicks "
                           "after the generator period; nothing to train the ranker on")
    sets, rows = {}, {}
    for name, q in (("train", train_q), ("valid", valid_q)):
        inputs = replay_inputs(log.events, q.rows, catalog.size,
                               half_life_hours=f.half_life_hours, recent_clicks=f.recent_clicks,
                               bucket_seconds=f.bucket_minutes * 60.0,
                               recent_exposures=builder.exposures_read)
        sets[name] = (build_features(builder, inputs, catalog, co, cf), q.labels, q.groups)
        rows[name] = {"query_user": [log.events.user_ids[u] for u in q.rows.query_user],
                      "query_ts": q.rows.query_ts, "row_position": q.rows.row_position,
                      "row_key": q.rows.row_key}
    lap("features")
    return TrainingData(catalog, builder, ws, co, cf, sets, rows, int(train_q.n_queries),
                        log.time_range, log.counts, valid_cut,
                        lambda: fit_static(ws, cfg, log, until=None), log, resolved)


def train(dataset_dir: Path, bundles_dir: Path, config: TrainConfig | None = None,
          *, embedder: Embedder | None = None,
          engine: Literal["local", "spark"] | None = None) -> str:
    """Train on a dataset directory and write a new bundle; returns its version. `engine`
    overrides the config's (`local` is the reference, `spark` the distributed twin)."""
    cfg = config or TrainConfig()
    if engine is not None and engine != cfg.engine:
        cfg = cfg.model_copy(update={"engine": engine})
    if cfg.plugins and cfg.engine != "local":
        raise ConfigError("train config: field 'plugins': plug-ins train on the local engine "
                          f"only, not {cfg.engine!r}")
    plugin_lifecycle.resolve(cfg.plugins)  # a name not installed fails before any work
    dataset_dir, bundles_dir = Path(dataset_dir), Path(bundles_dir)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: list[float] = [t_start]) -> None:  # noqa: B006 - a stopwatch
        now = time.perf_counter()
        timings[name] = round(now - since[0], 3)
        since[0] = now

    if embedder is None:
        from newsdesk.content import make_embedder

        cache = Path(cfg.embedding_cache_dir) if cfg.embedding_cache_dir else None
        embedder = make_embedder(cfg.embedder, cache_dir=cache)
    if cfg.engine == "spark":
        from newsdesk.pipelines.spark.engine import spark_training_data

        data = spark_training_data(dataset_dir, cfg, embedder, lap)
    else:
        data = local_training_data(dataset_dir, cfg, embedder, lap)
    return train_from_data(dataset_dir, bundles_dir, cfg, data, embedder, timings, lap)


def train_from_data(dataset_dir: Path, bundles_dir: Path, cfg: TrainConfig, data: TrainingData,
                    embedder: Embedder, timings: dict[str, float] | None = None,
                    lap: Callable[[str], None] = lambda name: None) -> str:
    """The ranker and the bundle from either engine's TrainingData; returns the version."""
    timings = {} if timings is None else timings
    f = cfg.features
    r = cfg.ranker
    sets = data.sets
    names = getattr(data.builder, "names", list(FEATURE_NAMES))  # + plug-ins' columns
    resolved = data.plugins or []
    plugin_ranker = plugin_lifecycle.ranker_spec(resolved)
    has_valid = len(sets["valid"][0]) > 0
    ranker: Any
    if plugin_ranker is not None:
        ranker = plugin_ranker.new().fit(*sets["train"], sets["valid"] if has_valid else None,
                                         names, cfg.seed)
    else:
        ranker = LambdaRanker(names, seed=cfg.seed, num_boost_round=r.num_boost_round,
                              early_stopping_rounds=r.early_stopping_rounds,
                              params={"objective": r.objective,
                                      "learning_rate": r.learning_rate,
                                      "num_leaves": r.num_leaves,
                                      "min_data_in_leaf": r.min_data_in_leaf})
        ranker.fit(*sets["train"], valid=sets["valid"] if has_valid else None)
    lap("fit_ranker")
    metrics: dict[str, Any] = {}
    if has_valid:
        xv, yv, gv = sets["valid"]
        metrics["valid"] = group_metrics(yv, ranker.predict(xv), gv)
        trend_col = FEATURE_NAMES.index("log_decayed_clicks")
        metrics["valid_trending"] = group_metrics(yv, xv[:, trend_col].astype(np.float64), gv)
    metrics["train_impressions"] = data.train_queries
    metrics["train_rows"] = int(len(sets["train"][1]))
    if plugin_ranker is None:
        metrics["best_iteration"] = int(ranker.booster_.best_iteration or r.num_boost_round)
        metrics["feature_importance"] = ranker.feature_importance()

    co_all, cf_all = data.refit()  # serving models see all clicks
    lap("refit_generators")
    fitted_all: dict[str, Any] = {}
    if resolved:  # serving plug-ins see all clicks too
        assert data.log is not None  # the config refuses plug-ins on other engines
        fitted_all = plugin_lifecycle.fit_trainable(
            resolved, FitContext(data.ws, data.log, None, cfg.seed))
        lap("refit_plugins")

    def save_plugins(staging: Path) -> list[dict[str, Any]]:
        return plugin_lifecycle.save(staging, resolved, fitted_all,
                                     ranker if plugin_ranker is not None else None)
    log = data.log

    def reference(staged: Path) -> Reference | None:  # the drift baseline, as served
        # (the Spark engine keeps the log distributed: no driver-side replay for it)
        if cfg.reference_requests == 0 or log is None:
            return None
        return serving_reference(staged, log, since=data.valid_cut,
                                 requests=cfg.reference_requests,
                                 half_life_hours=f.half_life_hours, seed=cfg.seed)

    version = _write_bundle(bundles_dir, cfg, dataset_dir, data.time_range, data.counts,
                            data.catalog, co_all, cf_all, ranker, data.builder, embedder,
                            metrics, timings, reference, save_plugins, names)
    return version


def _write_bundle(bundles_dir: Path, cfg: TrainConfig, dataset_dir: Path,
                  time_range: tuple[float, float], counts: dict[str, int],
                  catalog: ArticleCatalog, co: CoClickGenerator, cf: CollaborativeGenerator,
                  ranker: Any, builder: FeatureBuilder, embedder: Embedder,
                  metrics: dict[str, Any], timings: dict[str, float],
                  reference: Callable[[Path], Reference | None] | None = None,
                  save_plugins: Callable[[Path], list[dict[str, Any]]] | None = None,
                  feature_schema: list[str] | None = None) -> str:
    created = datetime.now(UTC)
    version = f"v{created:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    bundles_dir.mkdir(parents=True, exist_ok=True)
    staging = bundles_dir / f".staging-{version}"
    try:
        staging.mkdir()
        catalog.save(staging / "catalog")
        co.save(staging / "coclick")
        cf.save(staging / "collaborative")
        plugins = save_plugins(staging) if save_plugins is not None else []
        if not any("rankers" in p["roles"] for p in plugins):
            ranker.save(staging / RANKER_FILE)
        t0, t1 = time_range
        # the embedder actually used (a caller may pass one): serving rebuilds it by this name
        short = embedder.short_name or cfg.embedder
        if short != cfg.embedder:
            cfg = cfg.model_copy(update={"embedder": short})
        manifest = {
            "format": BUNDLE_FORMAT,
            "version": version,
            "created_at": created.isoformat(),
            "data": {"dataset": str(dataset_dir.resolve()), "hash": _data_hash(dataset_dir),
                     "rows": counts, "time_range": [
                         datetime.fromtimestamp(t0, UTC).isoformat(),
                         datetime.fromtimestamp(t1, UTC).isoformat()]},
            "config": cfg.model_dump(mode="json"),
            "code": {"newsdesk": newsdesk.__version__, "git_sha": _git_sha()},
            "feature_schema": list(feature_schema or FEATURE_NAMES),
            "plugins": plugins,
            "feature_params": builder.params(),
            "embedder": {"short_name": short, "name": embedder.name, "dim": embedder.dim},
            "metrics": metrics,
            "timings_s": timings,
            "files": file_hashes(staging),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        # the drift reference needs the staged bundle loadable (manifest written), then joins
        # its file list: still before the atomic rename
        t_ref = time.perf_counter()
        ref = reference(staging) if reference is not None else None
        if ref is not None:
            ref.save(staging)
            manifest["timings_s"]["drift_reference"] = round(time.perf_counter() - t_ref, 3)
            manifest["files"] = file_hashes(staging)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        os.replace(staging, bundles_dir / version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return version
