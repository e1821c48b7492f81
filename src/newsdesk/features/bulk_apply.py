"""Many impressions and clicks written into an online store at once, leaving the state that
writing them one by one (`record_impressions` / `record_clicks` in time order) would leave.

    apply_batch(store, EventBatch(...))

Why: replaying a log into a store event by event costs one Python call per shown article; at
1M impressions (10M shown articles) that was most of the pipeline cycle (the drift reference
of `newsdesk train` and the gate's warm-up). Grouped per article and per user, the same
events are a few vectorised aggregations and one `merge_article_counts` /
`merge_user_clicks` call.

Why the state is the same: an article's counts are sums, so their order does not matter; a
decayed count is the sum of 2**(-(ref - t) / half_life) over its events, expressed at its
newest event `ref` (what `_bump` accumulates one event at a time, equal up to float rounding,
~1e-12 relative); `last_ts` is the newest event. A user's recent clicks are the user's clicks
in the reverse of the order they were written, capped; merged into the list the store already
holds, which is older when batches are applied in time order (the contract: a batch holds its
clicks in the order they would be written, and no event older than one already written).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from newsdesk.features.covisitation import batch_pairs
from newsdesk.features.online_store import ArticleCounts, Click, OnlineStore


@dataclass
class EventBatch:
    """Events to write, as codes into `ids` (article ids) and `users` (user ids).

    Impressions: one row per shown article (imp_key, imp_ts). Clicks: (click_user, click_key,
    click_ts), in the order they would be written (time order; ties keep this order). Keys
    < 0 in imp_key are skipped; keys < 0 in click_key are written as `unknown_id` (a clicked
    article missing from the catalog still counts, as it does online)."""

    ids: Sequence[str]
    users: Sequence[str]
    imp_key: np.ndarray
    imp_ts: np.ndarray
    click_user: np.ndarray
    click_key: np.ndarray
    click_ts: np.ndarray
    unknown_id: str = "\x00unknown"
    imp_user: np.ndarray | None = None  # reader of each impression row: exposure lists


def _decayed(keys: np.ndarray, ts: np.ndarray, half_life_hours: float
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct key (sorted): count, newest time (ref) and the decayed count at ref.
    numpy only: batches are often small, and a thread pool's start-up costs more than them."""
    uniq, inv = np.unique(keys.astype(np.int64), return_inverse=True)
    ts = ts.astype(np.float64)
    ref = np.full(len(uniq), -np.inf)
    np.maximum.at(ref, inv, ts)
    w = np.power(2.0, np.clip((ts - ref[inv]) / (half_life_hours * 3600.0), -1000.0, 0.0))
    value = np.bincount(inv, weights=w, minlength=len(uniq))
    return uniq, np.bincount(inv, minlength=len(uniq)).astype(np.int64), ref, value


def article_counts(batch: EventBatch, half_life_hours: float) -> ArticleCounts:
    """The batch's per-article counts (ArticleCounts for `merge_article_counts`)."""
    unknown = len(batch.ids)  # the code of unknown_id
    imp_keep = batch.imp_key >= 0
    ik, i_n, i_ref, i_val = _decayed(batch.imp_key[imp_keep], batch.imp_ts[imp_keep],
                                     half_life_hours)
    ck, c_n, c_ref, c_val = _decayed(np.where(batch.click_key >= 0, batch.click_key, unknown),
                                     batch.click_ts, half_life_hours)
    keys = np.union1d(ik, ck)
    n = len(keys)
    impressions, clicks = np.zeros(n, np.int64), np.zeros(n, np.int64)
    imp_value, clk_value = np.zeros(n), np.zeros(n)
    imp_ref, clk_ref = np.full(n, np.nan), np.full(n, np.nan)
    at = np.searchsorted(keys, ik)
    impressions[at], imp_ref[at], imp_value[at] = i_n, i_ref, i_val
    at = np.searchsorted(keys, ck)
    clicks[at], clk_ref[at], clk_value[at] = c_n, c_ref, c_val
    ids = [batch.ids[k] if k < unknown else batch.unknown_id for k in keys.tolist()]
    return ArticleCounts(ids=ids, impressions=impressions, clicks=clicks,
                         imp_value=imp_value, imp_ref=np.nan_to_num(imp_ref, nan=0.0),
                         clk_value=clk_value, clk_ref=np.nan_to_num(clk_ref, nan=0.0),
                         last_ts=np.fmax(imp_ref, clk_ref))


def user_click_lists(batch: EventBatch, cap: int) -> list[tuple[str, list[Click]]]:
    """Per user with clicks in the batch: its last `cap` clicks in the batch's (written)
    order, the last one first, as `record_clicks` would leave them."""
    return _user_lists(batch, batch.click_user, batch.click_key, batch.click_ts, cap)


def user_exposure_lists(batch: EventBatch, cap: int) -> list[tuple[str, list[Click]]]:
    """Per reader shown articles in the batch: the last `cap` of them (rows with a key), the
    last first, as `record_exposures` would leave them."""
    if batch.imp_user is None:
        return []
    keep = batch.imp_key >= 0
    return _user_lists(batch, batch.imp_user[keep], batch.imp_key[keep], batch.imp_ts[keep],
                       cap)


def _user_lists(batch: EventBatch, user: np.ndarray, key: np.ndarray, t: np.ndarray,
                cap: int) -> list[tuple[str, list[Click]]]:
    if len(user) == 0:
        return []
    # a stable sort by user keeps the written order within each user; reversed per user
    order = np.argsort(user, kind="stable")
    users = user[order]
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    keys = key[order].tolist()
    ts = t[order].tolist()
    out = []
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        lo = max(s, e - cap)
        out.append((batch.users[int(users[s])],
                    [Click(batch.ids[keys[i]] if keys[i] >= 0 else batch.unknown_id, ts[i])
                     for i in range(e - 1, lo - 1, -1)]))
    return out


def coclick_pairs(store: OnlineStore, batch: EventBatch) -> list[tuple[str, str, float]]:
    """The online co-clicks (a, b, ts) writing the batch's clicks one by one would count,
    from each clicking reader's list as the store holds it now (call before merging the
    users' clicks); empty for a store without online co-visitation."""
    params = store.covisit
    if params is None or len(batch.click_user) == 0:
        return []
    users = batch.users
    codes = np.unique(batch.click_user).tolist()
    previous = {users[u]: store.user_clicks(users[u], limit=params.window) for u in codes}
    ids, unknown = batch.ids, batch.unknown_id
    clicks = ((users[u], ids[k] if k >= 0 else unknown, t)
              for u, k, t in zip(batch.click_user.tolist(), batch.click_key.tolist(),
                                 batch.click_ts.tolist(), strict=True))
    return batch_pairs(previous, clicks, params)


SMALL_BATCH = 64  # below this many events, writing them one by one is cheaper


def apply_batch(store: OnlineStore, batch: EventBatch, *, small: int = SMALL_BATCH) -> None:
    """Write the batch into the store (module docstring: same state as one by one). A batch
    of fewer than `small` events is written one by one: the aggregation's fixed cost (a few
    numpy calls and a merge) is larger than a few dozen store writes."""
    exposures = batch.imp_user is not None and store.max_user_exposures > 0
    if len(batch.imp_key) + len(batch.click_key) < small:
        for i, (k, t) in enumerate(zip(batch.imp_key.tolist(), batch.imp_ts.tolist(),
                                       strict=True)):
            if k >= 0:
                store.record_impressions([batch.ids[k]], t)
                if exposures:
                    assert batch.imp_user is not None
                    store.record_exposures(batch.users[int(batch.imp_user[i])],
                                           [batch.ids[k]], t)
        for u, k, t in zip(batch.click_user.tolist(), batch.click_key.tolist(),
                           batch.click_ts.tolist(), strict=True):
            store.record_clicks(batch.users[u], [batch.ids[k] if k >= 0 else batch.unknown_id],
                                t)
        return
    store.merge_article_counts(article_counts(batch, store.half_life_hours))
    pairs = coclick_pairs(store, batch)
    if pairs:
        store.merge_coclicks(pairs)
    store.merge_user_clicks(user_click_lists(batch, store.max_user_clicks))
    if exposures:
        store.merge_user_exposures(user_exposure_lists(batch, store.max_user_exposures))
