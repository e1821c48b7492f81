"""The built-in NRMS plug-in: the numpy encoder equals its torch twin, the training learns a
signal it can learn, the bundle round trip, serving's single-reader path equals training's
batch path, and serving never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lightgbm")

from newsdesk.features.memory_store import MemoryOnlineStore  # noqa: E402
from newsdesk.features.training_log import load_log, warm_store  # noqa: E402
from newsdesk.models.bundle import load_recommender, read_manifest  # noqa: E402
from newsdesk.pipelines.train import TrainConfig, train  # noqa: E402
from newsdesk.plugins.nrms import train_torch  # noqa: E402
from newsdesk.plugins.nrms.encoder import NRMSWeights  # noqa: E402
from newsdesk.plugins.nrms.plugin import NRMSPlugin  # noqa: E402
from newsdesk.plugins.registry import BUILTIN, find  # noqa: E402
from newsdesk.simulation import SimulationConfig, simulate_to_dataset  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_registered_as_entry_points_like_any_plugin() -> None:
    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    for role in ("candidates", "features", "rankers"):  # the fallback table mirrors pyproject
        assert BUILTIN[role] == eps.get(f"newsdesk.{role}", {})
    assert find("candidates", "nrms").cls is NRMSPlugin
    assert find("features", "nrms").cls is NRMSPlugin


def test_numpy_encoder_equals_the_torch_module() -> None:
    torch.manual_seed(0)
    module = train_torch._Module(torch.nn, torch, 24, 16, 4, 8, dropout=0.2).eval()
    w = module.export(heads=4)
    rng = np.random.default_rng(1)
    clicked = rng.normal(size=(5, 7, 24)).astype(np.float32)
    mask = rng.random((5, 7)) < 0.6
    mask[0] = False  # a reader without clicks
    mask[1, :] = True
    with torch.no_grad():
        want = module.user(torch.from_numpy(clicked), torch.from_numpy(mask)).numpy()
    got = w.encode(clicked, mask)
    np.testing.assert_allclose(got[1:], want[1:], rtol=1e-4, atol=1e-5)
    assert (got[0] == 0).all()
    # padding does not change a reader: the same clicks without the padded slots
    only = w.encode(clicked[2:3, mask[2]], np.ones((1, int(mask[2].sum())), bool))
    np.testing.assert_allclose(only[0], got[2], rtol=1e-4, atol=1e-5)
    # the request path's single-reader encoder agrees with the batch one
    for r in range(1, 5):
        np.testing.assert_allclose(w.encode_one(clicked[r, mask[r]]), got[r], rtol=1e-4,
                                   atol=1e-5)


def test_training_learns_which_article_follows_a_history() -> None:
    """Articles in 8 topic clusters; readers click within one topic; negatives come from
    other topics. The encoder must learn to put the click first (chance: 1 in 5)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 32))
    topic = np.repeat(np.arange(8), 40)
    emb = (centres[topic] + 0.8 * rng.normal(size=(320, 32))).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)

    def samples(n: int, seed: int) -> train_torch.Samples:
        g = np.random.default_rng(seed)
        t = g.integers(0, 8, n)
        hist = np.full((n, 10), -1, np.int64)
        cands = np.zeros((n, 5), np.int64)
        for s in range(n):
            same = np.flatnonzero(topic == t[s])
            k = int(g.integers(1, 11))
            hist[s, :k] = g.choice(same, k)
            cands[s, 0] = g.choice(same)
            cands[s, 1:] = g.choice(np.flatnonzero(topic != t[s]), 4, replace=False)
        return train_torch.Samples(hist, cands)

    w, figures = train_torch.train_encoder(
        emb, samples(1500, 1), dim=16, heads=2, attention_dim=16, epochs=3, batch_size=64,
        learning_rate=5e-3, dropout=0.1, seed=0, max_seconds=120)
    assert figures["loss_epoch_2"] < 0.5 * figures["chance_loss"]
    test = samples(500, 2)
    q = w.reader_queries(emb, test.history)  # (S, dim): P u
    scores = np.einsum("skd,sd->sk", emb[test.candidates], q)
    assert (scores.argmax(axis=1) == 0).mean() > 0.8


@pytest.fixture(scope="module")
def nrms_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from threadpoolctl import threadpool_limits

    root = tmp_path_factory.mktemp("nrms")
    simulate_to_dataset(SimulationConfig(seed=3, n_users=200, days=1.5, articles_per_day=30,
                                         impressions_per_day=3000, backlog_days=1.0,
                                         slate_size=8), root / "ds")
    cfg = TrainConfig.from_dict({
        "embedder": "hashing", "reference_requests": 20,
        "ranker": {"num_boost_round": 20, "min_data_in_leaf": 20},
        "plugins": [{"name": "nrms", "roles": ["candidates", "features"], "quota": 25,
                     "params": {"epochs": 1, "dim": 16, "heads": 2, "history": 10}}]})
    with threadpool_limits(1, "blas"):
        version = train(root / "ds", root / "bundles", cfg)
    return root / "ds", root / "bundles" / version


def test_bundle_holds_numpy_weights_and_serves_both_roles(
        nrms_bundle: tuple[Path, Path]) -> None:
    dataset, bundle = nrms_bundle
    m = read_manifest(bundle)
    assert m["feature_schema"][-1] == "nrms_score"
    assert {"plugins/nrms/weights.npz", "plugins/nrms/training.json"} <= set(m["files"])
    training = json.loads((bundle / "plugins/nrms/training.json").read_text())
    assert training["samples"] > 100
    log = load_log(dataset)
    t1 = log.time_range[1]
    store = MemoryOnlineStore(half_life_hours=6.0)
    warm_store(store, log, until=t1)
    rec = load_recommender(bundle, store)
    gen = next(g for g in rec.generators if g.name == "nrms")
    plugin = gen.plugin
    clicked = [u for u in log.events.user_ids[:50]
               if (rec.ws.view(u, t1).click_idx >= 0).any()][:5]
    assert clicked
    for user in clicked:
        view = rec.ws.view(user, t1)
        idx, scores = gen.propose(view, 25)
        assert 0 < len(idx) <= 25 and np.isin(idx, view.live).all()
        assert (np.diff(scores) <= 0).all()  # best first
        # the proposals' scores are the feature's values: one model, two roles
        r = plugin.reader(rec.ws.catalog.embeddings, view.click_idx)
        np.testing.assert_allclose(scores, rec.ws.catalog.embeddings[idx] @ r[1], rtol=1e-4,
                                   atol=1e-6)
    new = rec.ws.view("a-reader-without-clicks", t1)
    assert len(gen.propose(new, 25)[0]) == 0


def test_serving_path_equals_the_training_batch_path(nrms_bundle: tuple[Path, Path]) -> None:
    """`compute` on many readers at once (training) equals the single-reader path."""
    dataset, bundle = nrms_bundle
    log = load_log(dataset)
    rec = load_recommender(bundle, MemoryOnlineStore(half_life_hours=6.0))
    plugin = next(p for n, p in rec.ws.builder.plugins if n == "nrms")
    from newsdesk.plugins.base import FitContext

    inputs, _, _ = FitContext(rec.ws, log, None, 0).impressions(40, recent_clicks=10)
    batch = plugin.compute(inputs, rec.ws.catalog)
    assert np.isfinite(batch).mean() > 0.5
    from newsdesk.features.ranking_features import RankingInputs

    for q in range(len(inputs.user_ids)):
        rows = np.flatnonzero(inputs.row_query == q)
        one = RankingInputs(
            click_idx=inputs.click_idx[q:q + 1], click_ts=inputs.click_ts[q:q + 1],
            user_ids=[inputs.user_ids[q]], row_query=np.zeros(len(rows), np.int64),
            row_article=inputs.row_article[rows], now=inputs.now[rows],
            position=inputs.position[rows], stats=inputs.stats[rows])
        np.testing.assert_allclose(plugin.compute(one, rec.ws.catalog)[:, 0], batch[rows, 0],
                                   rtol=1e-4, atol=1e-6)


_SERVE_WITHOUT_TORCH = """
import sys
from pathlib import Path
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.features.training_log import load_log, warm_store
from newsdesk.models.base import RequestContext
from newsdesk.models.bundle import load_recommender
log = load_log(Path(sys.argv[1]))
store = MemoryOnlineStore(half_life_hours=6.0)
warm_store(store, log, until=log.time_range[1])
rec = load_recommender(Path(sys.argv[2]), store)
items = rec.recommend(RequestContext(user_id=log.events.user_ids[0], now=log.time_range[1]))
print(len(items), "torch" in sys.modules)
"""


def test_serving_does_not_import_torch(nrms_bundle: tuple[Path, Path]) -> None:
    dataset, bundle = nrms_bundle
    out = subprocess.run([sys.executable, "-c", _SERVE_WITHOUT_TORCH, str(dataset),
                          str(bundle)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["10", "False"]


def test_bad_params_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="dim must be a positive multiple of heads"):
        NRMSPlugin(dim=10, heads=4)
    w = NRMSWeights(proj=np.zeros((8, 4), np.float32), wq=np.zeros((4, 4), np.float32),
                    wk=np.zeros((4, 4), np.float32), wv=np.zeros((4, 4), np.float32),
                    wa=np.zeros((4, 2), np.float32), ba=np.zeros(2, np.float32),
                    qa=np.zeros(2, np.float32), heads=2)
    assert w.reader_query(np.zeros((3, 8), np.float32), np.array([-1, -1])) is None
