"""PSI is a real alarm: on a simulated world, shifted reader populations cross the threshold
and an unshifted one stays below.

A small world is simulated and trained (hashing embedder, few boosting rounds, as in
tests/serving/test_bundle_serving.py); training writes the bundle's reference.json from the
validation period (the last 15 % of the time range). The serving-time rows are built the way
serving builds them: the bundle's own `FeatureBuilder`, catalog, co-click and CF models, every
row at the serve position, scored by the bundle's ranker; the inputs are replayed point-in-time
from the log (the same `RankingInputs` serving gathers from the online store).

- no shift: the validation period's impressions of a random half of the readers;
- the hours before the validation period (same readers, earlier time): figures only;
- shift 1: only readers of one topic (users whose most clicked category is the most read one);
- shift 2: only cold readers (no click before the impression).

Run with -s to see the figures.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")

from newsdesk.features.ranking_features import FEATURE_NAMES  # noqa: E402
from newsdesk.monitoring.drift import REFERENCE_FILE, DriftReport, DriftWindow, Reference  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]
NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]
THRESHOLD = 0.2  # the settings' default


@dataclass
class World:
    dataset: Path
    bundle: Path
    reference: Reference
    rows: dict[str, tuple[np.ndarray, np.ndarray]]  # name -> (features, scores)


def _subset(rows, keep_q: np.ndarray):  # noqa: ANN001, ANN202 - QueryRows in, QueryRows out
    from newsdesk.features.replay import QueryRows

    new_index = np.cumsum(keep_q) - 1
    keep_r = keep_q[rows.row_query]
    return QueryRows(query_user=rows.query_user[keep_q], query_ts=rows.query_ts[keep_q],
                     row_query=new_index[rows.row_query[keep_r]],
                     row_article=rows.row_article[keep_r],
                     row_position=rows.row_position[keep_r],
                     row_key=None if rows.row_key is None else rows.row_key[keep_r])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    from threadpoolctl import threadpool_limits

    from newsdesk.features.memory_store import MemoryOnlineStore
    from newsdesk.features.replay import replay_inputs
    from newsdesk.features.training_log import load_log, ranker_queries
    from newsdesk.models.bundle import load_recommender, read_manifest
    from newsdesk.pipelines.train import RankerConfig, TrainConfig, build_features, train

    root = tmp_path_factory.mktemp("drift")
    dataset = root / "dataset"
    subprocess.run([*NEWSDESK, "simulate", "--seed", "3", "--users", "600", "--days", "2",
                    "--impressions-per-day", "4000", "--articles-per-day", "200",
                    "--out", str(dataset)], check=True, capture_output=True, timeout=180)
    config = TrainConfig(embedder="hashing",
                         ranker=RankerConfig(num_boost_round=30, min_data_in_leaf=5))
    with threadpool_limits(1, "blas"):
        version = train(dataset, root / "bundles", config)
    bundle = root / "bundles" / version
    manifest = read_manifest(bundle)
    assert REFERENCE_FILE in manifest["files"]  # listed, hashed, verified at load
    reference = Reference.load(bundle)
    assert reference is not None

    f = config.features
    rec = load_recommender(bundle, MemoryOnlineStore(half_life_hours=f.half_life_hours))
    log = load_log(dataset)
    t0, t1 = log.time_range
    valid_cut = t1 - config.split.valid_fraction * (t1 - t0)
    before = valid_cut - config.split.valid_fraction * (t1 - t0)
    period = ranker_queries(log, before, valid_cut, 10**9, np.random.default_rng(0)).rows
    latest = ranker_queries(log, valid_cut, np.inf, 10**9, np.random.default_rng(0)).rows

    # readers of one topic: most clicked category per user, over the whole log
    ev = log.events
    cat = rec.ws.catalog
    known = ev.click_article >= 0
    users, cats = ev.click_user[known], cat.category[ev.click_article[known]]
    n_cat = int(cats.max()) + 1
    per_user = np.zeros((len(ev.user_ids), n_cat))
    np.add.at(per_user, (users, cats), 1)
    top_topic = int(np.bincount(cats).argmax())
    topic_readers = (per_user.argmax(axis=1) == top_topic) & (per_user.sum(axis=1) > 0)

    def featurise(q):  # noqa: ANN001, ANN202
        inputs = replay_inputs(ev, q, cat.size, half_life_hours=f.half_life_hours,
                               recent_clicks=f.recent_clicks,
                               bucket_seconds=f.bucket_minutes * 60.0)
        x = build_features(rec.ws.builder, inputs, cat, rec.coclick, rec.cf)
        x[:, FEATURE_NAMES.index("position")] = rec.ws.builder.serve_position  # as online
        return x, rec.ranker.predict(x)

    rows = {"previous_hours": featurise(period)}
    half = np.random.default_rng(1).random(len(ev.user_ids)) < 0.5
    rows["no_shift"] = featurise(_subset(latest, half[latest.query_user]))
    both = [period, latest]
    x_topic = [featurise(_subset(q, topic_readers[q.query_user])) for q in both]
    rows["one_topic_readers"] = (np.concatenate([a for a, _ in x_topic]),
                                 np.concatenate([b for _, b in x_topic]))
    x_all = [featurise(q) for q in both]
    xs = np.concatenate([a for a, _ in x_all])
    ss = np.concatenate([b for _, b in x_all])
    cold = xs[:, FEATURE_NAMES.index("user_log_clicks")] == 0
    rows["cold_readers"] = (xs[cold], ss[cold])
    return World(dataset, bundle, reference, rows)


def _psi(world: World, name: str) -> DriftReport:
    x, scores = world.rows[name]
    window = DriftWindow(world.reference, window=len(scores), sample_every=1,
                         threshold=THRESHOLD)
    for start in range(0, len(scores), 10):  # slates of 10 rows, as requests would offer them
        window.observe(x[start:start + 10], scores[start:start + 10])
    report = window.compute()
    top = sorted(report.features.items(), key=lambda kv: -kv[1])[:4]
    print(f"\n[drift] {name}: rows={report.rows} psi_score={report.score:.4f} "
          f"max_feature_psi={max(report.features.values()):.4f} top={top} "
          f"alarm={report.alarm}")
    return report


def test_reference_is_written_by_training(world: World) -> None:
    ref = world.reference
    assert ref.rows > 100
    assert "position" not in ref.features  # constant at serving (drift module docstring)
    assert set(ref.features) == set(FEATURE_NAMES) - {"position"}
    for hist in (ref.score, *ref.features.values()):
        assert abs(hist.shares.sum() - 1.0) < 1e-6


def test_previous_hours_figures(world: World) -> None:
    # same readers, the hours before the reference: the score is stable, but the article
    # statistics (cumulative counts) grow with time, so their PSI is high (reported, not
    # asserted: that is the known limit of a fixed reference on non-stationary features)
    report = _psi(world, "previous_hours")
    assert report.score is not None and report.score < THRESHOLD


def test_no_shift_stays_below_threshold(world: World) -> None:
    report = _psi(world, "no_shift")
    assert report.rows > 1000
    assert report.score is not None and report.score < THRESHOLD
    assert not report.alarm, report.drifted


def test_one_topic_readers_cross_threshold(world: World) -> None:
    # the score's distribution barely moves (the ranker scores one-topic readers' slates much
    # like everyone's), but the reader-side features do: the per-feature PSI raises the alarm
    report = _psi(world, "one_topic_readers")
    assert report.rows > 300
    assert report.alarm
    assert "user_log_clicks" in report.drifted


def test_cold_readers_cross_threshold_on_the_score(world: World) -> None:
    report = _psi(world, "cold_readers")
    assert report.rows > 300
    assert report.alarm
    assert report.score is not None and report.score > THRESHOLD, report.drifted
