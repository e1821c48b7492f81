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
from newsdesk.simulation.world_v2 import DEVICE_NAMES

REQUESTS_FILE = "requests.parquet"
DISMISSALS_FILE = "dismissals.parquet"

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
        # the simulator's logging policy logs marginal INCLUSION probabilities, not per-position
        # ones (see simulation/policy.py); the policy field is for served slates
        "policy": pa.nulls(n, pa.string()),
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


class SideTables:
    """World v2's devices and dismissals, kept beside the dataset in out/simulation/.

    The dataset's data model has no device field and no `dismiss` interaction type yet, so
    they are not in the tables the importers and trainers read: `requests.parquet`
    (request_id, device) and `dismissals.parquet` (event_id "r{n}-x{k}", request_id, user_id,
    article_id, timestamp) hold them, with the same ids as the impressions.
    """

    def __init__(self) -> None:
        self.requests: list[np.ndarray] = []  # global request indices per window
        self.devices: list[np.ndarray] = []
        self.dismissals: list[tuple[np.ndarray, ...]] = []  # (request, pos, user, article, us)
        self.shown = 0

    def add(self, log: WindowLog) -> None:
        if not log.n_requests or log.devices is None:
            return
        assert log.dismiss_rows is not None and log.dismiss_positions is not None
        assert log.dismiss_us is not None
        self.requests.append(log.first_request + np.arange(log.n_requests))
        self.devices.append(log.devices)
        rows, pos = log.dismiss_rows, log.dismiss_positions
        self.dismissals.append((log.first_request + rows, pos, log.users[rows],
                                log.slates[rows, pos], log.dismiss_us))
        self.shown += int(log.slates.size)

    def write(self, folder: Path, user_ids: pa.Array, article_ids: pa.Array) -> dict[str, Any]:
        """Write both files into `folder`; returns summary counts."""
        import pyarrow.parquet as pq

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

        devices = cat(self.devices, np.int64)
        pq.write_table(pa.table({
            "request_id": ids("r", cat(self.requests, np.int64)),
            "device": pa.array(np.asarray(DEVICE_NAMES)[devices].tolist(), pa.string()),
        }), folder / REQUESTS_FILE)
        r, pos, u, a, us = (cat([d[i] for d in self.dismissals], np.int64) for i in range(5))
        request_ids = ids("r", r)
        pq.write_table(pa.table({
            "event_id": pc.binary_join_element_wise(
                request_ids, pa.scalar("-x"), pc.cast(pa.array(pos), pa.string()),
                pa.scalar("")),
            "request_id": request_ids,
            "user_id": user_ids.take(pa.array(u)),
            "article_id": article_ids.take(pa.array(a)),
            "timestamp": pa.array(us, TS),
        }), folder / DISMISSALS_FILE)
        return {"dismissals": int(r.size),
                "dismiss_rate": round(r.size / self.shown, 6) if self.shown else None,
                "mobile_share": round(float(devices.mean()), 4) if devices.size else None}


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
        side = SideTables() if world.config.world == "v2" else None
        for log in sim.windows():
            dropped += log.dropped
            if side is not None:
                side.add(log)
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
    if side is not None:
        summary.update(side.write(folder, user_ids, article_ids))
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
