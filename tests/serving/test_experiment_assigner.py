"""Invariants of the serving `ExperimentAssigner` (real registry and rollout store in memory)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from newsdesk.experiments.config import parse_suite
from newsdesk.experiments.registry import InMemoryExperimentRegistry
from newsdesk.experiments.rollout import InMemoryRolloutStore, RolloutController
from newsdesk.serving.variants import PRODUCTION, ExperimentAssigner

SUITE = parse_suite({"experiments": [
    {"id": "rank", "layer": "ranking", "surfaces": ["front_page"], "traffic": 0.8,
     "variants": [{"name": "control", "bundle": "v1"},
                  {"name": "treatment", "weight": 3, "bundle": "v2"}]},
    {"id": "ui", "layer": "ui", "variants": [{"name": "a", "pipeline": "trending"},
                                             {"name": "b"}],
     "rollout": {"stages": [0.2, 0.6], "treatment": "b", "control": "a"}},
]})


def make() -> ExperimentAssigner:
    a = ExperimentAssigner(InMemoryExperimentRegistry(), RolloutController(InMemoryRolloutStore()))
    a.create(SUITE, "test")
    return a


ASSIGNER = make()
units = st.text(min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(units, st.sampled_from(["front_page", "article_page"]))
def test_assignment_is_deterministic_and_names_known_variants(unit: str, surface: str) -> None:
    a = ASSIGNER.assign(unit, surface)
    assert a == ASSIGNER.assign(unit, surface) == make().assign(unit, surface)
    if a == PRODUCTION:
        return
    exps, variants = a.experiment.split(";"), a.variant.split(";")
    assert len(exps) == len(variants) and "ui" in exps  # the ui layer covers every surface
    known = {"rank": {"control": "v1", "treatment": "v2"}, "ui": {"a": None, "b": None}}
    for e, v in zip(exps, variants, strict=True):
        assert v in known[e]
    if "rank" in exps:
        assert surface == "front_page"
        assert a.model_version == known["rank"][variants[exps.index("rank")]]
    assert (a.pipeline == "trending") == (variants[exps.index("ui")] == "a")


@settings(max_examples=200, deadline=None)
@given(st.lists(units, min_size=1, max_size=30, unique=True))
def test_kill_sends_every_unit_to_control(batch: list[str]) -> None:
    a = make()
    a.kill("rank", "test", "hypothesis")
    a.kill("ui", "test")
    for unit in batch:
        got = a.assign(unit, "front_page")
        for e, v in zip(got.experiment.split(";"), got.variant.split(";"), strict=True):
            assert v == {"rank": "control", "ui": "a"}[e]


def test_split_follows_the_weights() -> None:
    got = [ASSIGNER.assign(f"user-{i}", "front_page") for i in range(4000)]
    rank = [a.variant.split(";")[a.experiment.split(";").index("rank")]
            for a in got if "rank" in a.experiment.split(";")]
    assert abs(len(rank) / 4000 - 0.8) < 0.03  # traffic 0.8 of the layer
    assert abs(rank.count("treatment") / len(rank) - 0.75) < 0.03  # weights 1:3
    ui = [a.variant.split(";")[-1] for a in got]
    assert abs(ui.count("b") / len(ui) - 0.2) < 0.03  # rollout stage 0: 20 % treatment
