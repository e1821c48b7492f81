"""MemoryCoVisits' per-click path (`add_click`: hoisted row of the clicked article, trim by
value with the id sort only on a tie across the cut) leaves exactly the rows the plain rule
leaves: a reference written out one co-click at a time, as the module describes it."""

from __future__ import annotations

from operator import itemgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.features.covisitation import REBASE_HALF_LIVES, CoVisitParams, MemoryCoVisits


class Reference:
    """One co-click at a time: (a, b) then (b, a); past 2 * top_k a row keeps its top_k by
    (count, id); a row idle for ttl_s is dropped at every 4096th pair."""

    def __init__(self, p: CoVisitParams) -> None:
        self.p = p
        self.rows: dict[str, list] = {}  # a -> [epoch, last, counts]
        self.adds = 0

    def _add(self, a: str, b: str, ts: float) -> None:
        hl = self.p.half_life_hours * 3600.0
        row = self.rows.get(a)
        if row is None or not row[2]:
            row = self.rows[a] = [ts, ts, {}]
        elif (ts - row[0]) / hl > REBASE_HALF_LIVES:
            shift = 2.0 ** max(-1000.0, -(ts - row[0]) / hl)
            row[2] = {k: v * shift for k, v in row[2].items()}
            row[0] = ts
        counts = row[2]
        counts[b] = counts.get(b, 0.0) + 2.0 ** max(-1000.0, min(1000.0, (ts - row[0]) / hl))
        row[1] = max(row[1], ts)
        if len(counts) > 2 * self.p.top_k:
            items = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
            row[2] = dict(items[-self.p.top_k:])

    def add(self, a: str, b: str, ts: float) -> None:
        self._add(a, b, ts)
        self._add(b, a, ts)
        self.adds += 1
        if self.adds % 4096 == 0:
            cut = ts - self.p.ttl_s
            self.rows = {k: r for k, r in self.rows.items() if r[1] >= cut}


ids = st.sampled_from([f"a{i}" for i in range(9)])
# few distinct times: equal counts (ties across the cut) are common; big jumps re-base rows
steps = st.lists(st.tuples(st.lists(ids, min_size=1, max_size=4), ids,
                           st.sampled_from([0.0, 0.0, 1.0, 60.0, 7200.0, 70 * 3600.0])),
                 min_size=1, max_size=120)


@settings(max_examples=150, deadline=None)
@given(steps=steps, top_k=st.integers(1, 3))
def test_add_click_matches_the_plain_rule(steps: list, top_k: int) -> None:
    p = CoVisitParams(half_life_hours=1.0, top_k=top_k, ttl_s=1e9)
    fast, ref = MemoryCoVisits(p), Reference(p)
    ts = 1.0e9
    for partners, b, dt in steps:
        ts += dt
        partners = [a for a in partners if a != b]
        fast.add_click(partners, b, ts)
        for a in partners:
            ref.add(a, b, ts)
    got = {a: (r.epoch, r.last, r.counts) for a, r in fast._rows.items() if r.counts}
    want = {a: (r[0], r[1], r[2]) for a, r in ref.rows.items() if r[2]}
    assert got == want  # bit-identical floats, same neighbours kept


def test_trim_keeps_the_id_order_on_a_tie_across_the_cut() -> None:
    co = MemoryCoVisits(CoVisitParams(top_k=2))
    for b in ["x1", "x4", "x2", "x3", "x0"]:  # five equal co-clicks: ids decide the cut
        co.add("hub", b, 100.0)
    best = co.neighbours(["hub"], 100.0, 10)[0]
    assert [b for b, _ in best] == ["x4", "x3"]  # the two largest ids survive, as in Redis
    assert best[0][1] == itemgetter(1)(best[1]) == 1.0
