"""Exposure records: impression rows carry experiment, variant, positions and propensities."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from newsdesk.errors import InvalidInput
from newsdesk.experiments.assignment import Assigner, Assignment
from newsdesk.experiments.config import parse_suite
from newsdesk.experiments.exposure import Exposure, InMemoryExposureLog, variant_of

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_row_encodes_every_layer_and_decodes_per_experiment() -> None:
    suite = parse_suite([
        {"id": "rank", "layer": "r", "variants": [{"name": "control"}, {"name": "treatment"}]},
        {"id": "ui", "layer": "u", "variants": [{"name": "control"}, {"name": "big"}]},
    ])
    assigned = Assigner.from_config(suite).assign("u42", "front_page")
    log = InMemoryExposureLog()
    exp = Exposure("r1", "u42", "front_page", ["a1", "a2", "a3"], assigned, [0.5, 0.2, 1.0], T)
    log.log(exp)
    row = log.rows[0]
    assert exp.positions == [0, 1, 2]
    assert row["article_ids"] == ["a1", "a2", "a3"] and row["propensities"] == [0.5, 0.2, 1.0]
    by_exp = {a.experiment_id: a.variant for a in assigned}
    for exp_id, variant in by_exp.items():
        assert variant_of(row["experiment"], row["variant"], exp_id) == variant
    assert variant_of(row["experiment"], row["variant"], "other") is None


def test_unassigned_slate_has_null_experiment() -> None:
    row = Exposure("r2", "u1", "front_page", ["a1"], [], None, T).to_row()
    assert row["experiment"] is None and row["variant"] is None
    assert variant_of(None, None, "rank") is None


def test_invalid_exposures_name_the_field() -> None:
    a = Assignment("rank", "control", 5, "r")
    with pytest.raises(InvalidInput) as info:
        Exposure("r", "u", "front_page", ["a1", "a2"], [a], [0.5], T)
    assert info.value.field == "propensities"
    with pytest.raises(InvalidInput):
        Exposure("r", "u", "front_page", ["a1"], [Assignment("a;b", "c", 1, "r")], None, T)
    with pytest.raises(ValueError, match="propensities"):  # the schema's own (0, 1] check
        Exposure("r", "u", "front_page", ["a1"], [a], [0.0], T).to_row()
