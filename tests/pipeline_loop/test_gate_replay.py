"""The gate's batched replay (pipelines/gate_replay.py) scores the same impressions with the
same per-impression metrics as the event-by-event replay it replaced (evaluation/replay.py's
build_events + replay_events, warm-up filter and seeded sample as the gate applied them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsdesk.content import make_embedder
from newsdesk.data.dataset import Dataset
from newsdesk.evaluation.replay import (
    ClickEvent,
    ImpressionEvent,
    build_events,
    history_events,
    replay_events,
)
from newsdesk.features.memory_store import MemoryOnlineStore
from newsdesk.models.bundle import load_recommender, read_manifest
from newsdesk.pipelines.gate_replay import sampled_replay
from newsdesk.pipelines.train import TrainConfig, train
from newsdesk.pipelines.window import latest_window

from .conftest import World
from .world import TRAIN


@pytest.fixture(scope="module")
def bundles(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The world's active bundle and one trained with another half-life (two store states)."""
    cfg = TrainConfig.from_dict({**TRAIN, "features": {**TRAIN["features"],  # type: ignore[dict-item]
                                                        "half_life_hours": 1.5}})
    out = tmp_path_factory.mktemp("gate-replay")
    return world.bundles / world.active, out / train(world.dataset, out, cfg)


def _systems(pair: tuple[Path, Path]) -> tuple[dict, list]:
    emb = make_embedder("hashing")
    systems, stores = {}, []
    for name, bundle in zip(("a", "b"), pair, strict=True):
        hl = read_manifest(bundle)["config"]["features"]["half_life_hours"]
        stores.append(MemoryOnlineStore(half_life_hours=hl))
        systems[name] = load_recommender(bundle, stores[-1], embedder=emb, ranker="lightgbm")
    return systems, stores


def _reference(dataset: Path, start: float, end: float, pair: tuple[Path, Path],
               warmup: float | None, max_scored: int, seed: int) -> dict:
    """The gate's replay as it was: every event an object, written one by one."""
    ds = Dataset(dataset)
    events = build_events(ds, score_from=start, score_until=end, seed_histories=False)
    if warmup is not None:
        since = start - warmup * 3600.0
        events = [e for e in events
                  if not isinstance(e, ImpressionEvent | ClickEvent) or e.ts >= since]
    events = history_events(ds, events[0].ts if events else 0.0) + events
    scored = [i for i, e in enumerate(events) if isinstance(e, ImpressionEvent) and e.scored]
    if len(scored) > max_scored:
        keep = set(np.random.default_rng(seed).choice(len(scored), max_scored,
                                                      replace=False).tolist())
        for j, i in enumerate(scored):
            if j not in keep:
                ev = events[i]
                events[i] = ImpressionEvent(ev.ts, ev.impression, False)  # type: ignore[union-attr]
    systems, stores = _systems(pair)
    return replay_events(events, systems, stores)


@pytest.mark.parametrize(("warmup", "max_scored", "chunk"),
                         [(6.0, 150, 2000), (None, 100_000, 64)])
def test_batched_replay_equals_event_by_event(world: World, bundles: tuple[Path, Path],
                                              warmup: float | None, max_scored: int, chunk: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Also with the ranker called per 64 scored impressions (several chunks)."""
    from newsdesk.pipelines import gate_replay

    monkeypatch.setattr(gate_replay, "PREDICT_CHUNK", chunk)
    start, end = latest_window(world.dataset, 6)
    ref = _reference(world.dataset, start, end, bundles, warmup, max_scored, seed=3)
    systems, stores = _systems(bundles)
    got = sampled_replay(world.dataset, start, end, systems, stores, warmup_hours=warmup,
                         max_scored=max_scored, seed=3)
    for name in ("a", "b"):
        assert got[name].impression_ids == ref[name].impression_ids
        assert len(got[name].impression_ids) == min(max_scored, len(ref[name].impression_ids))
        assert len(got[name].impression_ids) >= 100
        for metric, values in ref[name].per_unit().items():
            np.testing.assert_allclose(got[name].per_unit()[metric], values, rtol=1e-6,
                                       atol=1e-9, equal_nan=True, err_msg=f"{name} {metric}")
    # two bundles on two stores: the systems rank differently (two states were checked)
    assert not np.allclose(np.concatenate(got["a"].ranks), np.concatenate(got["b"].ranks))
