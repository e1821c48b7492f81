"""Team-draft interleaving: slate invariants, credit, and the sign test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from newsdesk.experiments.interleaving import (
    TEAM_A,
    TEAM_B,
    credit,
    sign_test,
    sign_test_pvalues,
    team_draft,
)

rankings = st.lists(st.sampled_from([f"a{i}" for i in range(30)]), min_size=1, max_size=20,
                    unique=True)


@settings(max_examples=200, deadline=None)
@given(rankings, rankings, st.integers(1, 15), st.integers(0, 2**32 - 1))
def test_team_draft_invariants(ra: list[str], rb: list[str], k: int, seed: int) -> None:
    s = team_draft(ra, rb, k, np.random.default_rng(seed))
    assert len(s.article_ids) == len(set(s.article_ids)) == min(k, len(set(ra) | set(rb)))
    assert set(s.article_ids) <= set(ra) | set(rb)
    for art, team in zip(s.article_ids, s.teams, strict=True):
        assert art in (ra if team == TEAM_A else rb)
    # each team's picks keep that ranker's order
    for team, ranking in ((TEAM_A, ra), (TEAM_B, rb)):
        picks = [a for a, t in zip(s.article_ids, s.teams, strict=True) if t == team]
        assert picks == sorted(picks, key=ranking.index)


def test_identical_rankers_split_picks_evenly() -> None:
    ranking = [f"a{i}" for i in range(10)]
    rng = np.random.default_rng(0)
    firsts = [team_draft(ranking, ranking, 10, rng).teams for _ in range(2000)]
    assert all(t.count(TEAM_A) == 5 for t in firsts)
    share_a_first = np.mean([t[0] == TEAM_A for t in firsts])
    assert 0.45 < share_a_first < 0.55


def test_credit_and_sign_test() -> None:
    teams = [TEAM_A, TEAM_B, TEAM_A, TEAM_B]
    assert credit(teams, [0]) == 1 and credit(teams, [1, 3]) == -1
    assert credit(teams, [0, 1]) == 0 and credit(teams, []) == 0
    prefs = [1] * 60 + [-1] * 40 + [0] * 50
    res = sign_test(prefs)
    assert (res.wins_a, res.wins_b, res.ties) == (60, 40, 50)
    assert res.p_value == pytest.approx(binomtest(60, 100, 0.5).pvalue)
    approx = sign_test_pvalues(np.array([60]), np.array([40]))[0]
    assert approx == pytest.approx(res.p_value, rel=0.05)
