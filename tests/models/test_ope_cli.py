"""`newsdesk experiment ope` on a dataset with explored slates served by the fixture bundle."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from newsdesk.cli.main import app
from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.stats import dataset_stats
from newsdesk.errors import InvalidInput
from newsdesk.experiments.exploration import pl_logits, sample_slate, slate_propensities
from newsdesk.experiments.ope_dataset import run_ope
from newsdesk.features.bootstrap import bootstrap_store
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender
from newsdesk.serving.exploration import pl_policy_name
from newsdesk.simulation import World

K = 5


@pytest.fixture(scope="module")
def served(sim_dataset: Path, bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[Path, int]:
    """A copy of the dataset plus 120 explored slates after its last event: the bundle's
    pool of k + 5, a PL draw at T = 0.5 with exact propensities, clicks from the world."""
    out = tmp_path_factory.mktemp("served") / "ds"
    shutil.copytree(sim_dataset, out)
    world = World.load(sim_dataset)
    store = MemoryOnlineStore()
    bootstrap_store(store, sim_dataset)
    rec = load_recommender(bundle_dir, store)
    t0 = dataset_stats(sim_dataset)["last_event"].timestamp() + 60.0
    rng = np.random.default_rng(0)
    imps, clicks = [], []
    for i, u in enumerate(world.sample_users(120, rng).tolist()):
        t = t0 + 5.0 * i
        items = rec.recommend(RequestContext(user_id=f"u{u}", now=t, k=K + 5))
        lg = pl_logits(np.array([it.score for it in items]), 0.5)
        pick = sample_slate(lg, K, rng.random(lg.size))
        ids = [items[j].article_id for j in pick]
        ts = datetime.fromtimestamp(t, tz=UTC)
        imps.append({"request_id": f"x{i}", "user_id": f"u{u}", "timestamp": ts,
                     "surface": "front_page", "article_ids": ids,
                     "propensities": slate_propensities(lg, pick).tolist(),
                     "policy": pl_policy_name(0.5, len(items))})
        p = world.click_probability(u, np.array([int(a[1:]) for a in ids]), t, np.arange(K))
        for pos in np.flatnonzero(rng.random(K) < p).tolist():
            clicks.append({"event_id": f"x{i}-c{pos}", "type": "click", "user_id": f"u{u}",
                           "article_id": ids[pos], "timestamp": ts, "request_id": f"x{i}"})
    with DatasetWriter(out, source="test") as writer:  # appends to the copied tables
        for name in ("articles", "histories"):
            writer.table(name, dedupe=False).write_table(Dataset(sim_dataset).arrow(name))
        imp_w = writer.table("impressions", dedupe=False)
        imp_w.write_table(Dataset(sim_dataset).arrow("impressions"))
        imp_w.write_rows(imps)
        int_w = writer.table("interactions", dedupe=False)
        int_w.write_table(Dataset(sim_dataset).arrow("interactions"))
        int_w.write_rows(clicks)
    return out, len(imps)


def test_cli_estimates_the_candidate_from_explored_slates(served: tuple[Path, int],
                                                          bundle_dir: Path,
                                                          tmp_path: Path) -> None:
    dataset, n = served
    out = tmp_path / "ope.json"
    res = CliRunner().invoke(app, ["experiment", "ope", "--dataset", str(dataset), "--bundle",
                                   str(bundle_dir), "--json", str(out)])
    assert res.exit_code == 0, res.output
    body = json.loads(out.read_text())
    assert set(body["estimates"]) == {"ips", "snips", "dr", "dr_score", "dr_propensity"}
    assert body["estimates"]["dr"]["bias_bound"] >= 0.0
    d = body["diagnostics"]
    assert d["explored_impressions"] == n and d["slates"] + d["not_answered"] == n
    assert d["slates"] >= 0.9 * n
    # the candidate is the logging ranker itself: its items are all in the explored pool, so
    # the mean weight 1[match] / p estimates a support of 1 (600 rows: loose bounds)
    assert d["match_rate"] > 0.03
    assert 0.5 < d["mean_weight"] < 1.5
    for e in body["estimates"].values():
        assert 0.0 <= e["value"] <= 1.0 and e["ci_low"] <= e["value"] <= e["ci_high"]
    assert "ips" in res.output


def test_a_dataset_without_explored_slates_is_refused(sim_dataset: Path,
                                                      bundle_dir: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        run_ope(sim_dataset, bundle_dir)
    assert err.value.field == "dataset" and "EXPLORATION_SHARE" in str(err.value)
