"""The enrichment feature plug-in end to end: train a bundle naming `llm_enrichment`, load it as
serving does, and check its columns against the enrichment table (what is known, what is not,
what the reader's clicks share), and that an article enriched after training is picked up.

The enrichment rows are written as the batch would write them (EnrichmentStore, the real
Parquet table), from each simulated article's own words: this tests the feature path, not the
model (the model's own path is tested in test_batch_enrich / test_local_server)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightgbm")

from newsdesk.data.dataset import Dataset  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.training_log import load_log, warm_store  # noqa: E402
from newsdesk.llm.enrichment import Enrichment, EnrichmentRecord  # noqa: E402
from newsdesk.llm.enrichment_plugin import COLUMNS, EnrichmentFeatures  # noqa: E402
from newsdesk.llm.enrichment_store import EnrichmentStore  # noqa: E402
from newsdesk.models.base import RequestContext  # noqa: E402
from newsdesk.models.bundle import load_recommender, read_manifest  # noqa: E402
from newsdesk.pipelines.train import TrainConfig, train  # noqa: E402
from newsdesk.simulation import SimulationConfig, simulate_to_dataset  # noqa: E402

pytestmark = [pytest.mark.ml]


def _record(row: dict, timeliness: str = "breaking") -> EnrichmentRecord:
    words = [w for w in row["title"].lower().split() if len(w) > 3][:4] or ["news"]
    e = Enrichment(summary=row["title"][:200] + " today.", topics=[row["category"]],
                   keywords=words, entities=[{"name": n, "type": "organization"}
                                             for n in (row["entities"] or [])[:3]],
                   timeliness=timeliness, brand_safety="safe")
    return EnrichmentRecord(row["article_id"], "h", "enrich.v2", "test", e, time.time(), 0.1, 10)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    root = tmp_path_factory.mktemp("enrich_plugin")
    simulate_to_dataset(SimulationConfig(seed=3, n_users=200, days=1.5, articles_per_day=30,
                                         impressions_per_day=3000, backlog_days=1.0,
                                         slate_size=8), root / "dataset")
    articles = Dataset(root / "dataset").read("articles").to_dicts()
    # every article but the last two is enriched; those two stay unknown to training
    EnrichmentStore(root / "enriched").write(_record(r) for r in articles[:-2])
    cfg = TrainConfig.from_dict({
        "embedder": "hashing", "reference_requests": 20, "features": {"bucket_minutes": 30.0},
        "ranker": {"num_boost_round": 30, "min_data_in_leaf": 20},
        "plugins": [{"name": "llm_enrichment", "roles": ["features"],
                     "params": {"path": str(root / "enriched"), "refresh_s": 0.05}}]})
    version = train(root / "dataset", root / "bundles", cfg)
    return root, root / "bundles" / version, articles


def test_bundle_records_the_enrichment_columns(trained):
    _, bundle, articles = trained
    m = read_manifest(bundle)
    assert m["feature_schema"][-3:] == list(COLUMNS)
    assert [p["name"] for p in m["plugins"]] == ["llm_enrichment"]
    assert "plugins/llm_enrichment/terms.npz" in m["files"]
    assert set(COLUMNS) <= set(m["metrics"]["feature_importance"])


def test_served_columns_follow_the_table_and_pick_up_new_enrichment(trained):
    root, bundle, articles = trained
    log = load_log(root / "dataset")
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=log.time_range[1])
    rec = load_recommender(bundle, store)
    cat = rec.ws.catalog
    # a reader with clicks: the article they clicked last overlaps with itself fully
    user = next(u for u in log.events.user_ids
                if len(rec.ws.view(u, log.time_range[1]).click_idx) > 0)
    view = rec.ws.view(user, log.time_range[1])
    last = cat.ids[int(view.click_idx[0])]
    ids = [last, articles[0]["article_id"], articles[-1]["article_id"],
           articles[-2]["article_id"]]
    ctx = RequestContext(user_id=user, now=log.time_range[1])
    x = rec.features(ctx, ids)[:, -3:]
    overlap, has, breaking = x[:, 0], x[:, 1], x[:, 2]
    assert has.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert 0.0 < overlap[0] <= 1.0 + 1e-6 and 0.0 <= overlap[1] <= 1.0 + 1e-6
    assert np.isnan(overlap[2:]).all() and np.isnan(breaking[2:]).all()
    assert breaking[:2].tolist() == [1.0, 1.0]
    # one of the two is enriched now (the upsert queue writes the same table): served
    # within refresh_s, without reloading the bundle
    EnrichmentStore(root / "enriched").write([_record(articles[-1], "evergreen")])
    time.sleep(0.1)
    x = rec.features(ctx, ids)[:, -3:]
    assert x[:, 1].tolist() == [1.0, 1.0, 1.0, 0.0]
    assert x[2, 2] == 0.0 and 0.0 <= x[2, 0] <= 1.0 + 1e-6


def test_compute_is_the_cosine_of_term_sets(tmp_path: Path):
    # two articles sharing an entity and a topic, one sharing nothing; catalog order differs
    # from the table's, and one catalog article has no enrichment
    def rec(aid: str, ent: str, kw: str, topic: str) -> EnrichmentRecord:
        e = Enrichment(summary="A factual sentence.", topics=[topic], keywords=[kw],
                       entities=[{"name": ent, "type": "organization"}],
                       timeliness="evergreen", brand_safety="safe")
        return EnrichmentRecord(aid, "h", "enrich.v2", "test", e, time.time(), 0.1, 5)

    EnrichmentStore(tmp_path).write([rec("a", "Bayern", "transfer", "football"),
                                     rec("b", "Bayern", "injury", "football"),
                                     rec("c", "Oven", "bread", "cooking")])
    plugin = EnrichmentFeatures(path=str(tmp_path), refresh_s=0)
    plugin._read_table()

    class Catalog:
        ids = ["c", "x", "b", "a"]

    from newsdesk.features.ranking_features import RankingInputs

    n = 4
    inputs = RankingInputs(click_idx=np.array([[3, -1]]), click_ts=np.zeros((1, 2)),
                           user_ids=["u"], row_query=np.zeros(n, dtype=np.int64),
                           row_article=np.array([3, 2, 0, 1]), now=np.zeros(n),
                           position=np.zeros(n), stats=np.zeros((n, 4)))
    got = plugin.compute(inputs, Catalog())  # type: ignore[arg-type]
    assert got[:, 0][:3] == pytest.approx([1.0, 2 / 3, 0.0])
    assert np.isnan(got[3, 0]) and got[:, 1].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_params_are_checked_by_name():
    with pytest.raises(ValueError, match="params.path"):
        EnrichmentFeatures()
    with pytest.raises(ValueError, match="refresh_s"):
        EnrichmentFeatures(path="/x", refresh_s=-1)
