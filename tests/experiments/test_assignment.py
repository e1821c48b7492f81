"""Assignment: deterministic, sticky, uniform, exclusive within a layer, independent across."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, chisquare

from newsdesk.experiments.assignment import HOLDOUT, Assigner, unit_hash
from newsdesk.experiments.config import RolloutPlan, parse_suite
from newsdesk.experiments.rollout import InMemoryRolloutStore, RolloutController

SUITE = parse_suite({
    "holdout": {"fraction": 0.05, "salt": "hold"},
    "experiments": [
        {"id": "rank-a", "layer": "ranking", "traffic": 0.3,
         "variants": [{"name": "control"}, {"name": "treatment"}]},
        {"id": "rank-b", "layer": "ranking", "traffic_start": 0.3, "traffic": 0.7,
         "variants": [{"name": "control", "weight": 1}, {"name": "t1", "weight": 1},
                      {"name": "t2", "weight": 2}]},
        {"id": "layout", "layer": "ui", "variants": [{"name": "control"}, {"name": "big"}]},
        {"id": "mail", "layer": "mail", "surfaces": ["newsletter"],
         "variants": [{"name": "control"}, {"name": "digest", "pipeline": "mail/digest"}]},
    ],
})
USERS = [f"u{i}" for i in range(40_000)]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=64), st.sampled_from(["front_page", "newsletter", "x"]))
def test_assignment_is_deterministic_and_sticky(unit: str, surface: str) -> None:
    first = Assigner.from_config(SUITE).assign(unit, surface)
    again = Assigner.from_config(SUITE).assign(unit, surface)  # a fresh object, same answer
    assert first == again
    layers = [a.layer for a in first]
    assert len(layers) == len(set(layers))  # at most one experiment per layer
    for a in first:
        assert 0 <= a.bucket < 10_000


@settings(max_examples=100, deadline=None)
@given(st.text(min_size=1, max_size=32), st.text(min_size=1, max_size=16))
def test_unit_hash_in_unit_interval_and_salt_sensitive(unit: str, salt: str) -> None:
    h = unit_hash(unit, salt)
    assert 0.0 <= h < 1.0
    assert h == unit_hash(unit, salt)


def _assign_all(surface: str = "front_page") -> list[dict[str, str]]:
    assigner = Assigner.from_config(SUITE)
    return [{a.experiment_id: a.variant for a in assigner.assign(u, surface)} for u in USERS]


def test_holdout_fraction_and_exclusion() -> None:
    rows = _assign_all()
    held = [r for r in rows if HOLDOUT in r]
    assert all(len(r) == 1 for r in held)
    assert abs(len(held) / len(rows) - 0.05) < 0.006


def test_variant_split_is_uniform_by_chi_square() -> None:
    rows = [r for r in _assign_all() if HOLDOUT not in r]
    b = [r["rank-b"] for r in rows if "rank-b" in r]
    counts = [b.count(v) for v in ("control", "t1", "t2")]
    expected = np.array([0.25, 0.25, 0.5]) * len(b)
    assert chisquare(counts, expected).pvalue > 0.001
    # layer slices: 30 % / 70 % of non-held-out units
    a_share = sum("rank-a" in r for r in rows) / len(rows)
    assert abs(a_share - 0.3) < 0.015


def test_layers_are_exclusive_within_and_independent_across() -> None:
    rows = [r for r in _assign_all() if HOLDOUT not in r]
    assert not any("rank-a" in r and "rank-b" in r for r in rows)
    assert all("layout" in r for r in rows)  # the ui layer takes everyone
    ranking = ["a-" + r["rank-a"] if "rank-a" in r else "b-" + r["rank-b"] for r in rows]
    ui = [r["layout"] for r in rows]
    labels_r, labels_u = sorted(set(ranking)), sorted(set(ui))
    table = np.zeros((len(labels_r), len(labels_u)))
    for x, y in zip(ranking, ui, strict=True):
        table[labels_r.index(x), labels_u.index(y)] += 1
    assert chi2_contingency(table).pvalue > 0.001


def test_surface_targeting() -> None:
    assigner = Assigner.from_config(SUITE)
    on_mail = sum(any(a.experiment_id == "mail" for a in assigner.assign(u, "newsletter"))
                  for u in USERS[:2000])
    on_front = sum(any(a.experiment_id == "mail" for a in assigner.assign(u, "front_page"))
                   for u in USERS[:2000])
    assert on_front == 0 and on_mail > 1800


def test_variant_maps_to_pipeline_or_bundle() -> None:
    assigner = Assigner.from_config(SUITE)
    got = {(a.variant, a.pipeline) for u in USERS[:500] for a in assigner.assign(u, "newsletter")
           if a.experiment_id == "mail"}
    assert got == {("control", None), ("digest", "mail/digest")}


def _rollout_suite():
    return parse_suite({"id": "ro", "layer": "r",
                        "variants": [{"name": "control"}, {"name": "treatment"}],
                        "rollout": {"stages": [0.01, 0.05, 0.25, 1.0]}})


def test_rollout_fraction_is_monotone_sticky_and_killable() -> None:
    suite = _rollout_suite()
    ctl = RolloutController(InMemoryRolloutStore())
    ctl.start("ro", suite.get("ro").rollout or RolloutPlan())
    assigner = Assigner.from_config(suite, rollouts=ctl)
    users = USERS[:20_000]

    def treated() -> set[str]:
        return {u for u in users if assigner.assign(u)[0].variant == "treatment"}

    seen = []
    for stage in range(4):
        if stage:
            ctl.advance("ro", actor="test")
        seen.append(treated())
    sizes = [len(s) / len(users) for s in seen]
    assert abs(sizes[0] - 0.01) < 0.004 and abs(sizes[2] - 0.25) < 0.02 and sizes[3] == 1.0
    assert all(a <= b for a, b in zip(seen, seen[1:], strict=False))  # nobody flips back
    ctl.kill("ro", actor="oncall", reason="test")
    assert treated() == set()  # the very next request
