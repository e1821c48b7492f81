"""The static MIND protocol uses the history column: id-keyed co-clicks rank candidates that
would otherwise tie, and the systems' stores see the histories (not the window's events)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.evaluation.harness import run_evaluation
from tests.evaluation.conftest import T0, write_news_dataset


def _with_histories(root: Path) -> Dataset:
    # readers who read h1 also read h2; nobody who read h1 read x
    imps = [(f"r{i}", f"v{i}", 60 + i, ["x", "h2", "y"], ["h2"]) for i in range(6)]
    imps += [(f"s{i}", f"w{i}", 70 + i, ["h2", "x", "y"], ["x"]) for i in range(2)]
    write_news_dataset(root / "tmp", imps, {"h1": -600.0, "h2": -600.0, "x": 30.0, "y": 30.0})
    src = Dataset(root / "tmp")
    with DatasetWriter(root, source="test") as w:  # the same tables plus histories
        for table in ("articles", "impressions", "interactions"):
            w.table(table).write_table(src.read(table))
        for n, hist in enumerate([["h1", "h2"]] * 5 + [["h1", "z"]]):
            w.table("histories").write_row({"user_id": f"old{n}", "article_ids": hist,
                                            "as_of": T0})
        for i in range(6):  # the readers of the scored window read h1 before
            w.table("histories").write_row({"user_id": f"v{i}", "article_ids": ["h1"],
                                            "as_of": T0 + timedelta(minutes=1)})
    return Dataset(root)


def test_history_coclick_ranks_the_co_read_article_first(tmp_path: Path) -> None:
    ds = _with_histories(tmp_path / "ds")
    assert ds.count("impressions") == 8
    assert ds.count("histories") == 12
    rep = run_evaluation(tmp_path / "ds", None, "mind", window="all", k=10, seed=0,
                         n_resamples=50, predictions=None).to_dict()
    systems = rep["systems"]
    assert "history_coclick" in systems
    # v0..v5 read h1; h2 is co-read with h1 in five histories: ranked first, AUC 1 there.
    # w0, w1 have no history: co-clicks tie and the popularity tie-break (h2 clicked more in
    # the histories) puts h2 first while they clicked x: AUC 0 there. Mean = 6/8.
    assert systems["history_coclick"]["auc"] == 0.75
    # the histories reached the systems' stores: streaming CTR no longer ties h2 with x
    assert systems["streaming_ctr"]["auc"] == 0.75
