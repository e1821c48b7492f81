"""An installed plug-in package end to end: pip-install tests/fixtures/example_plugin into a
temporary directory, train a bundle naming its candidate generator, feature and ranker, serve
it with `newsdesk serve`, and load it where the package is missing (a clear error).

The plug-in is importable only by the subprocesses that get the temporary directory on their
PYTHONPATH, so this process is the "machine without the plug-in".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

pytest.importorskip("lightgbm")

from newsdesk.errors import BundleError, ConfigError  # noqa: E402
from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.models.bundle import load_recommender, read_manifest  # noqa: E402
from newsdesk.pipelines.train import TrainConfig  # noqa: E402
from tests.serving.live_server import LiveServer, World  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "example_plugin"

_TRAIN = """
import json, sys
from pathlib import Path
from threadpoolctl import threadpool_limits
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import load_log, warm_store
from newsdesk.models.bundle import load_recommender, read_manifest
from newsdesk.pipelines.train import TrainConfig, train
from newsdesk.simulation import SimulationConfig, simulate_to_dataset

root = Path(sys.argv[1])
simulate_to_dataset(SimulationConfig(seed=3, n_users=200, days=1.5, articles_per_day=30,
                                     impressions_per_day=3000, backlog_days=1.0,
                                     slate_size=8), root / "dataset")
base = {"embedder": "hashing", "reference_requests": 20, "features": {"bucket_minutes": 30.0},
        "ranker": {"num_boost_round": 30, "min_data_in_leaf": 20}}
plugins = [{"name": "favourite_fresh", "roles": ["candidates"], "quota": 20},
           {"name": "category_ctr", "roles": ["features"], "params": {"strength": 20.0}}]
out = {}
with threadpool_limits(1, "blas"):
    # LightGBM over newsdesk's features + the plug-in's column
    out["lgbm"] = train(root / "dataset", root / "lgbm",
                        TrainConfig.from_dict({**base, "plugins": plugins}))
    # the plug-in's ranker instead of LightGBM
    out["logistic"] = train(root / "dataset", root / "logistic", TrainConfig.from_dict(
        {**base, "plugins": plugins + [{"name": "logistic", "roles": ["rankers"],
                                        "params": {"steps": 150}}]}))
log = load_log(root / "dataset")
store = MemoryOnlineStore(half_life_hours=6.0)
warm_store(store, log, until=log.time_range[1])
for kind in ("lgbm", "logistic"):
    rec = load_recommender(root / kind / out[kind], store)
    user = log.events.user_ids[0]
    view = rec.ws.view(user, log.time_range[1])
    gen = next(g for g in rec.generators if g.name == "favourite_fresh")
    idx, _ = gen.propose(view, 20)
    cats = sorted({rec.ws.catalog.categories[c] for c in rec.ws.catalog.category[idx]})
    x = rec.features(__import__("newsdesk.models.base", fromlist=["x"]).RequestContext(
        user_id=user, now=log.time_range[1]), [rec.ws.catalog.ids[i] for i in idx[:3]])
    pool, _ = rec.candidate_pool(view)
    out[kind + "_serving"] = {"generators": [g.name for g in rec.generators],
                              "proposed_in_pool": bool(len(idx)) and bool(set(idx) <= set(pool)),
                              "proposed_categories": cats,
                              "ranker": type(rec.ranker).__name__, "width": x.shape[1],
                              "ctr_column": x[:, -1].tolist()}
print(json.dumps(out))
"""


def _env(site: Path) -> dict[str, str]:
    paths = [str(site)] + [str(Path(p).resolve()) for p in
                           os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(site dir with the plug-in package, work dir, what the training script printed)."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "example_plugin"
    shutil.copytree(FIXTURE, src)  # setuptools writes build files beside the sources
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(site), str(src)],
                   check=True, capture_output=True, timeout=300)
    done = subprocess.run([sys.executable, "-c", _TRAIN, str(root)], env=_env(site),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return site, root, json.loads(done.stdout.strip().splitlines()[-1])


def test_bundle_records_plugin_and_its_files(installed: tuple[Path, Path, dict]) -> None:
    _, root, out = installed
    m = read_manifest(root / "lgbm" / out["lgbm"])
    by_name = {p["name"]: p for p in m["plugins"]}
    assert set(by_name) == {"favourite_fresh", "category_ctr"}
    ctr = by_name["category_ctr"]
    assert ctr["distribution"] == "newsdesk-example-plugin" and ctr["version"] == "0.3.1"
    assert ctr["entry_points"] == {"features": "newsdesk_example_plugin.plugins:CategoryCtr"}
    assert ctr["params"] == {"strength": 20.0}
    assert m["feature_schema"][-1] == "example_category_ctr"
    assert "plugins/category_ctr/ctr.json" in m["files"]
    assert "plugins/favourite_fresh/popular.json" in m["files"]
    # LightGBM saw the column: it is in the importance table (a gain >= 0)
    assert "example_category_ctr" in m["metrics"]["feature_importance"]
    learned = json.loads((root / "lgbm" / out["lgbm"] / "plugins/category_ctr/ctr.json")
                         .read_text())
    assert 0 < learned["prior"] < 1 and len(learned["ctr"]) >= 2
    m2 = read_manifest(root / "logistic" / out["logistic"])
    assert "ranker.txt" not in m2["files"] and "plugins/logistic/logistic.json" in m2["files"]
    assert 0.5 < m2["metrics"]["valid"]["auc"] <= 1.0  # the plug-in ranker learned something


def test_loaded_bundle_runs_the_plugins(installed: tuple[Path, Path, dict]) -> None:
    _, _, out = installed
    lgbm, logistic = out["lgbm_serving"], out["logistic_serving"]
    assert lgbm["generators"][-1] == "favourite_fresh"  # after newsdesk's own
    assert lgbm["proposed_in_pool"]  # its proposals reach the candidate pool
    assert len(lgbm["proposed_categories"]) == 1  # one favourite category
    assert lgbm["ranker"] != "LogisticRanker" and logistic["ranker"] == "LogisticRanker"
    assert lgbm["width"] == logistic["width"] and lgbm["width"] > 19
    assert all(0 < v < 1 for v in lgbm["ctr_column"])  # the plug-in's column, served


def test_newsdesk_serve_serves_the_plugin_bundle(installed: tuple[Path, Path, dict],
                                                 tmp_path: Path) -> None:
    from newsdesk.data.dataset import Dataset

    site, root, out = installed
    ds = Dataset(root / "dataset")
    end = ds.read("impressions")["timestamp"].max()
    users = ds.read("interactions")["user_id"].unique().sort().to_list()[:5]
    world = World(root / "dataset", root / "logistic", out["logistic"],
                  (end + timedelta(minutes=1)).isoformat(), users, [])
    # patient deadlines: the test checks which model answers, not how fast
    env = {"PYTHONPATH": _env(site)["PYTHONPATH"], "NEWSDESK_BUDGET_MS": "8000",
           "NEWSDESK_PERSONALISED_TIMEOUT_MS": "6000", "NEWSDESK_TRENDING_TIMEOUT_MS": "2000"}
    with LiveServer(world, tmp_path / "state", env=env) as server, \
            httpx.Client(base_url=server.base, timeout=30) as client:
        ready = client.get("/readyz").json()
        assert ready["model_version"] == out["logistic"]
        sources = set()
        for user in users:
            body = client.post("/v1/recommendations", json={"user_id": user, "k": 20}).json()
            assert body["degraded"] is False and len(body["items"]) == 20
            sources |= {item["source"] for item in body["items"]}
    assert sources  # answered by the model (the plug-in ranker), not a fallback


def test_loading_without_the_plugin_names_it(installed: tuple[Path, Path, dict]) -> None:
    _, root, out = installed
    with pytest.raises(BundleError, match=r"plug-in 'favourite_fresh'.*newsdesk\.candidates"):
        load_recommender(root / "lgbm" / out["lgbm"], MemoryOnlineStore(half_life_hours=6.0))


def test_unknown_plugin_in_config_is_refused_by_name(tmp_path: Path) -> None:
    cfg = TrainConfig.from_dict({"plugins": [{"name": "no_such_thing",
                                              "roles": ["features"]}]})
    from newsdesk.plugins.lifecycle import resolve

    with pytest.raises(ConfigError, match="no features plug-in named 'no_such_thing'"):
        resolve(cfg.plugins)
    with pytest.raises(ConfigError, match=r"plugins\.0\.name"):
        TrainConfig.from_dict({"plugins": [{"name": "trending", "roles": ["candidates"]}]})
    with pytest.raises(ConfigError, match="field 'plugins'.*at most one ranker"):
        TrainConfig.from_dict({"plugins": [{"name": "a", "roles": ["rankers"]},
                                           {"name": "b", "roles": ["rankers"]}]})
    with pytest.raises(ConfigError, match="local engine"):
        TrainConfig.from_dict({"engine": "spark", "plugins": [{"name": "a",
                                                               "roles": ["features"]}]})
