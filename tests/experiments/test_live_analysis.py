"""Click credit of live interleaving from exposure rows, the bandit's IPS estimate, the new
impression fields (validated, and absent from older datasets without breaking them)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.eventlog import open_event_log
from newsdesk.data.schema import IMPRESSIONS, Impression
from newsdesk.errors import ConfigError
from newsdesk.experiments.config import parse_suite
from newsdesk.experiments.live_analysis import bandit_report, interleaving_report, wilson

T = datetime(2026, 1, 1, tzinfo=UTC)
IL = parse_suite({"id": "il", "type": "interleaving",
                  "variants": [{"name": "new"}, {"name": "old"}]}).experiments[0]


def _imp(rid: str, ids: list[str], teams: list[int] | None, exp: str = "il",
         variant: str = "interleaved", p: float | None = None) -> dict:
    return {"request_id": rid, "experiment": exp, "variant": variant, "article_ids": ids,
            "teams": teams, "assignment_propensity": p}


def _clicks(pairs: list[tuple[str, str]]) -> pl.DataFrame:
    return pl.DataFrame({"type": ["click"] * len(pairs), "request_id": [r for r, _ in pairs],
                         "article_id": [a for _, a in pairs]},
                        schema={"type": pl.Utf8, "request_id": pl.Utf8, "article_id": pl.Utf8})


def test_interleaving_credit_from_the_exposure_log() -> None:
    imps = pl.DataFrame([
        _imp("r1", ["x", "y", "z"], [0, 1, 0]),   # click x (team 0)        -> new
        _imp("r2", ["x", "y", "z"], [1, 0, 1]),   # clicks x, z (team 1)    -> old
        _imp("r3", ["x", "y", "z"], [0, 1, 1]),   # clicks x (0) and y (1)  -> tie
        _imp("r4", ["x", "y", "z"], [0, 1, 0]),   # no click                -> tie
        _imp("r5", ["x", "y"], [1, 0]),           # click y (team 0)        -> new
        _imp("r6", ["x", "y"], None, exp="other", variant="control"),  # another experiment
    ])
    clicks = _clicks([("r1", "x"), ("r2", "x"), ("r2", "z"), ("r3", "x"), ("r3", "y"),
                      ("r5", "y"), ("r6", "x"), ("r9", "x")])
    rep = interleaving_report(imps, clicks, IL)
    assert (rep["impressions"], rep["wins_a"], rep["wins_b"], rep["ties"]) == (5, 2, 1, 2)
    assert rep["preference_share_a"] == pytest.approx(2 / 3)
    assert rep["mean_preference"] == pytest.approx(1 / 5)
    assert rep["verdict"] == "no significant preference" and rep["p_value"] == 1.0


def test_wilson_interval_covers_and_is_bounded() -> None:
    lo, hi = wilson(60, 100)
    assert 0.50 < lo < 0.6 < hi < 0.70
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and 0 < hi < 0.35


def test_bandit_ips_is_unbiased_where_the_naive_rate_is_not() -> None:
    """A policy that gives arm b more traffic when its clicks came easily: the naive per-arm
    rate of b is biased, the IPS estimate over all slates is not (both arms truly 0.3)."""
    cfg = parse_suite({"id": "bd", "type": "bandit",
                       "variants": [{"name": "a"}, {"name": "b"}]}).experiments[0]
    rng = np.random.default_rng(0)
    rows, clicks = [], []
    for i in range(40_000):
        day = i % 2  # on odd "days" clicks come more easily AND b gets more traffic
        p_b = 0.8 if day else 0.2
        arm = "b" if rng.random() < p_b else "a"
        click = rng.random() < (0.45 if day else 0.15)
        rows.append(_imp(f"r{i}", ["x"], None, exp="bd", variant=arm,
                         p=p_b if arm == "b" else 1 - p_b))
        if click:
            clicks.append((f"r{i}", "x"))
    rep = bandit_report(pl.DataFrame(rows), _clicks(clicks), cfg)
    for arm in ("a", "b"):
        lo, hi = rep["arms"][arm]["ips_rate_ci95"]
        assert lo < 0.30 < hi
    assert rep["arms"]["b"]["naive_rate"] > 0.36 and rep["arms"]["a"]["naive_rate"] < 0.24


def test_new_impression_fields_are_validated() -> None:
    base = {"request_id": "r", "user_id": "u", "timestamp": T, "article_ids": ["a", "b"]}
    assert Impression(**base, teams=[0, 1], assignment_propensity=0.25).teams == [0, 1]
    with pytest.raises(ValidationError, match="teams must have one value"):
        Impression(**base, teams=[0])
    with pytest.raises(ValidationError, match="teams must be 0 or 1"):
        Impression(**base, teams=[0, 2])
    with pytest.raises(ValidationError, match="assignment_propensity"):
        Impression(**base, assignment_propensity=0.0)


def test_config_types_refuse_what_they_cannot_serve() -> None:
    with pytest.raises(ConfigError, match="exactly two variants"):
        parse_suite({"id": "x", "type": "interleaving",
                     "variants": [{"name": "a"}, {"name": "b"}, {"name": "c"}]})
    with pytest.raises(ConfigError, match="cannot have a staged rollout"):
        parse_suite({"id": "x", "type": "bandit", "rollout": {"treatment": "b", "control": "a"},
                     "variants": [{"name": "a"}, {"name": "b"}]})
    with pytest.raises(ConfigError, match="type"):
        parse_suite({"id": "x", "type": "mab", "variants": [{"name": "a"}, {"name": "b"}]})


def test_a_dataset_written_before_the_new_fields_still_reads_and_exports(tmp_path: Path
                                                                         ) -> None:
    old_schema = pa.schema([f for f in IMPRESSIONS if f.name not in
                            ("teams", "assignment_propensity")])
    out = tmp_path / "old"
    with DatasetWriter(out, source="old") as w:
        w.table("impressions")
    part = out / "impressions" / "old.parquet"
    for f in (out / "impressions").glob("*.parquet"):
        f.unlink()
    pq.write_table(pa.Table.from_pylist([{
        "request_id": "r0", "user_id": "u", "timestamp": T, "surface": "front_page",
        "article_ids": ["a"], "propensities": None, "experiment": None, "variant": None}],
        schema=old_schema), part)
    assert Dataset(out).read("impressions").height == 1
    log = open_event_log(f"sqlite:///{tmp_path}/events.db")
    log.append([{"kind": "impression", "request_id": "r1", "user_id": "u", "timestamp": T,
                 "article_ids": ["a", "b"], "experiment": "il", "variant": "interleaved",
                 "teams": [1, 0]}])
    log.export(out)
    log.close()
    table = Dataset(out).read("impressions").sort("request_id")
    assert table["request_id"].to_list() == ["r0", "r1"]
    assert table["teams"].to_list() == [None, [1, 0]]
