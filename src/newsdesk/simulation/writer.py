"""Stream a simulated world into a dataset directory (columnar Arrow batches per window)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from newsdesk.data.dataset import DatasetWriter
from newsdesk.data.schema import IMPRESSIONS, INTERACTIONS, TS
from newsdesk.simulation.config import SimulationConfig
from newsdesk.simulation.population import articles_table, build_world, histories_table, ids
from newsdesk.simulation.traffic import TrafficSimulator, WindowLog
from newsdesk.simulation.world import World

SOURCE = "simulation"


def _lists(values: pa.Array, rows: int, width: int) -> pa.ListArray:
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, values)


def _constant(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, dtype=np.int8)),
                                          pa.array([value])).cast(pa.string())


def impressions_batch(log: WindowLog, user_ids: pa.Array, article_ids: pa.Array) -> pa.Table:
    """The `impressions` rows of one window."""
    n, width = log.slates.shape
    request_ids = ids("r", np.arange(log.first_request, log.first_request + n))
    return pa.table({
        "request_id": request_ids,
        "user_id": user_ids.take(pa.array(log.users)),
        "timestamp": pa.array(log.times_us, TS),
        "surface": _constant("front_page", n),
        "article_ids": _lists(article_ids.take(pa.array(log.slates.ravel())), n, width),
        "propensities": _lists(pa.array(log.propensities.ravel()), n, width),
        "experiment": pa.nulls(n, pa.string()),
        "variant": pa.nulls(n, pa.string()),
        "teams": pa.nulls(n, pa.list_(pa.int8())),
        "assignment_propensity": pa.nulls(n, pa.float64()),
    }, schema=IMPRESSIONS)


def interactions_batch(log: WindowLog, user_ids: pa.Array, article_ids: pa.Array) -> pa.Table:
    """Click and dwell events of one window ("r{i}-c{pos}" / "r{i}-d{pos}")."""
    c = log.click_rows.size
    request_ids = ids("r", log.first_request + log.click_rows)
    pos = pc.cast(pa.array(log.click_positions.astype(np.int64)), pa.string())
    users = user_ids.take(pa.array(log.users[log.click_rows]))
    articles = article_ids.take(pa.array(log.slates[log.click_rows, log.click_positions]))
    dwell_us = log.click_us + np.round(log.dwell_seconds * 1e6).astype(np.int64)

    def events(kind: str, ts: np.ndarray, dwell: pa.Array) -> pa.Table:
        return pa.table({
            "event_id": pc.binary_join_element_wise(request_ids, pa.scalar(f"-{kind[0]}"), pos,
                                                    pa.scalar("")),
            "type": _constant(kind, c),
            "user_id": users,
            "article_id": articles,
            "timestamp": pa.array(ts, TS),
            "request_id": request_ids,
            "dwell_seconds": dwell,
            "rating": pa.nulls(c, pa.float64()),
        }, schema=INTERACTIONS)

    return pa.concat_tables([
        events("click", log.click_us, pa.nulls(c, pa.float64())),
        events("dwell", dwell_us, pa.array(log.dwell_seconds)),
    ])


def simulate_to_dataset(config: SimulationConfig, out: str | Path,
                        progress: bool = False) -> dict[str, Any]:
    """Simulate `config` into dataset directory `out` (replaced atomically) plus the world in
    out/simulation/. Returns a summary: counts, CTR and wall-clock seconds."""
    began = time.perf_counter()
    out = Path(out)
    world = build_world(config)
    user_ids = ids("u", np.arange(world.n_users))
    article_ids = ids("a", np.arange(world.n_articles))
    sim = TrafficSimulator(world)
    impressions = shown = clicks = dropped = 0
    with DatasetWriter(out, source=SOURCE) as writer:
        writer.table("articles", dedupe=False).write_table(articles_table(world))
        hist = histories_table(world)
        writer.table("histories", dedupe=False).write_table(hist)
        imp_writer = writer.table("impressions", dedupe=False)
        int_writer = writer.table("interactions", dedupe=False)
        step = max(1, sim.n_windows // 20)
        for log in sim.windows():
            dropped += log.dropped
            if log.n_requests:
                imp_writer.write_table(impressions_batch(log, user_ids, article_ids))
                int_writer.write_table(interactions_batch(log, user_ids, article_ids))
                impressions += log.n_requests
                shown += int(log.slates.size)
                clicks += int(log.click_rows.size)
            if progress and (log.window + 1) % step == 0:
                print(f"simulate: window {log.window + 1}/{sim.n_windows}, "
                      f"{impressions:,} impressions, {clicks:,} clicks, "
                      f"{time.perf_counter() - began:.1f} s", file=sys.stderr, flush=True)
        summary = _summary(world, impressions, shown, clicks, dropped, hist.num_rows, began)
        writer.report["simulation"] = {"config": config.to_dict(), "summary": summary}
    folder = world.save(out)
    summary["seconds"] = round(time.perf_counter() - began, 3)
    summary["impressions_per_second"] = round(impressions / max(summary["seconds"], 1e-9), 1)
    summary["world"] = str(folder)
    return summary


def _summary(world: World, impressions: int, shown: int, clicks: int, dropped: int,
             histories: int, began: float) -> dict[str, Any]:
    return {
        "users": world.n_users,
        "articles": world.n_articles,
        "impressions": impressions,
        "shown_items": shown,
        "clicks": clicks,
        "dwell_events": clicks,
        "histories": histories,
        "ctr": round(clicks / shown, 6) if shown else None,
        "dropped_requests": dropped,
        "seconds": round(time.perf_counter() - began, 3),
    }
