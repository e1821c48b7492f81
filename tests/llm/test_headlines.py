"""Headline testing: validation of proposed variants, the bandit, click attribution."""

from __future__ import annotations

import json

import numpy as np
import pytest

from newsdesk.errors import LLMInvalidOutput
from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.headlines import (
    HeadlineTest,
    HeadlineTests,
    propose_headlines,
    validate_headline,
    wilson,
)

TITLE = "Bayern Munich beat Dortmund 3-1 in the Bundesliga derby"
ABSTRACT = ("Harry Kane scored twice as Bayern Munich won the derby on Saturday in front of "
            "75000 fans.")


def test_validation_rejects_invented_names_numbers_and_bad_lengths() -> None:
    ok = validate_headline
    assert ok("Kane scores twice as Bayern win the derby against Dortmund", TITLE, ABSTRACT) is None
    assert ok("How Bayern Munich won the Bundesliga derby", TITLE, ABSTRACT) is None
    assert ok("75000 fans see Bayern beat Dortmund 3-1", TITLE, ABSTRACT) is None
    assert ok("Kane and Müller sink Dortmund in the derby", TITLE, ABSTRACT) == "new_entity"
    assert ok("Bayern beat Dortmund 4-1 in the derby", TITLE, ABSTRACT) == "new_entity"
    assert ok("Bayern win at Wembley against Dortmund", TITLE, ABSTRACT) == "new_entity"
    assert ok("Bayern win", TITLE, ABSTRACT) == "length"
    assert ok("x " * 80, TITLE, ABSTRACT) == "length"
    assert ok(TITLE + ".", TITLE, ABSTRACT) == "same_as_original"


def test_proposals_keep_the_valid_drop_and_count_the_invalid() -> None:
    answer = {"headlines": [
        "Kane double gives Bayern the derby win over Dortmund",
        "Bayern beat Dortmund as Messi watches from the stands",  # Messi: not in the article
        "Derby",  # too short
        "Kane double gives Bayern the derby win over Dortmund",  # duplicate
    ]}
    provider = FakeProvider(json.dumps(answer))
    reasons: list[str] = []
    proposal = propose_headlines(provider, TITLE, ABSTRACT, n=4, on_reject=reasons.append)
    assert proposal.valid == ["Kane double gives Bayern the derby win over Dortmund"]
    assert sorted(reasons) == ["duplicate", "length", "new_entity"]
    assert proposal.prompt_id == "headlines.v1"
    with pytest.raises(LLMInvalidOutput):
        propose_headlines(FakeProvider("no json at all"), TITLE, ABSTRACT)


def test_bandit_finds_the_best_variant_and_beats_uniform_regret() -> None:
    true_ctr = np.array([0.04, 0.05, 0.08])
    rng = np.random.default_rng(3)
    test = HeadlineTest("a1", ["original", "variant one", "variant two"], seed=3,
                        min_impressions=500)
    regret = 0.0
    props = []
    for _ in range(6000):
        s = test.serve()
        props.append(s.propensity)
        k = int(s.variant[1:])
        regret += true_ctr.max() - true_ctr[k]
        test.record(s.variant, bool(rng.random() < true_ctr[k]))
        test.maybe_promote()
    uniform_regret = 6000 * float(true_ctr.max() - true_ctr.mean())
    assert test.winner == "v2"
    assert regret < 0.5 * uniform_regret
    assert all(0 < p <= 1 for p in props)
    report = test.report()
    best = report["variants"][2]
    assert best["ci95"][0] <= best["ctr"] <= best["ci95"][1] and best["p_best"] > 0.9
    assert sum(v["impressions"] for v in report["variants"]) == 6000
    # promoted: the winner is served with propensity 1
    assert {test.serve().propensity for _ in range(10)} == {1.0}


def test_clicks_are_attributed_to_the_served_variant() -> None:
    tests = HeadlineTests(max_served=3)
    tests.start(HeadlineTest("a1", ["original title", "other title"], seed=0))
    assert tests.serve("r1", "not-tested") is None
    served = tests.serve("r1", "a1")
    assert served is not None
    assert tests.on_click("r1", "a1") is True
    assert tests.on_click("r1", "a1") is False  # counted once
    t = tests.tests["a1"]
    k = t.arms.index(served.variant)
    assert t.clicks[k] == 1 and t.impressions.sum() == 1
    for i in range(5):  # the oldest unclicked impressions age out as non-clicks
        tests.serve(f"r{i + 2}", "a1")
    assert t.sampler.beta.sum() - 2 == 2  # two aged out (prior beta 1 per arm)
    assert tests.close_impressions() == 3
    assert t.sampler.beta.sum() - 2 == 5


def test_wilson_interval() -> None:
    lo, hi = wilson(50, 1000)
    assert lo < 0.05 < hi and hi - lo < 0.03
    assert wilson(0, 0) == (0.0, 1.0)


def test_real_local_model_proposes_variants_that_pass_or_are_counted(local_provider) -> None:
    reasons: list[str] = []
    proposal = propose_headlines(local_provider, TITLE, ABSTRACT, n=3, timeout_s=120,
                                 on_reject=reasons.append)
    assert len(proposal.valid) + len(proposal.rejected) >= 1
    assert len(reasons) == len(proposal.rejected)
    for text in proposal.valid:
        assert validate_headline(text, TITLE, ABSTRACT) is None
