"""Team-draft interleaving of two rankers on one request, click credit and a sign test.

Team draft (Radlinski et al. 2008): in each round a coin decides which ranker picks first; each
ranker adds its highest-ranked article not yet in the slate, and the article is credited to that
ranker's team. A click credits the team of the clicked article; an impression prefers the ranker
with more credited clicks (ties and no-click impressions carry no preference). Under H0 (no
difference) each preference is a fair coin, so a two-sided binomial (sign) test over the
impressions with a preference gives the p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

TEAM_A, TEAM_B = 0, 1


@dataclass(frozen=True)
class InterleavedSlate:
    article_ids: list[str]
    teams: list[int]  # TEAM_A / TEAM_B per position


def team_draft(ranking_a: Sequence[str], ranking_b: Sequence[str], k: int,
               rng: np.random.Generator) -> InterleavedSlate:
    """Interleave two rankings into a slate of at most `k` unique articles."""
    out: list[str] = []
    teams: list[int] = []
    seen: set[str] = set()
    ia = ib = 0
    count = [0, 0]
    rankings = (ranking_a, ranking_b)
    idx = [ia, ib]
    while len(out) < k:
        # the team with fewer picks goes next; a coin breaks ties (standard team draft)
        if count[0] < count[1]:
            team = TEAM_A
        elif count[1] < count[0]:
            team = TEAM_B
        else:
            team = int(rng.integers(2))
        picked = _next_unseen(rankings[team], idx, team, seen)
        if picked is None:  # this ranker is exhausted; let the other one fill
            team = 1 - team
            picked = _next_unseen(rankings[team], idx, team, seen)
            if picked is None:
                break
        out.append(picked)
        teams.append(team)
        seen.add(picked)
        count[team] += 1
    return InterleavedSlate(out, teams)


def _next_unseen(ranking: Sequence[str], idx: list[int], team: int, seen: set[str]) -> str | None:
    while idx[team] < len(ranking) and ranking[idx[team]] in seen:
        idx[team] += 1
    if idx[team] >= len(ranking):
        return None
    return ranking[idx[team]]


def credit(teams: Sequence[int], clicked_positions: Sequence[int]) -> int:
    """Preference of one impression: +1 for A, -1 for B, 0 for a tie or no click."""
    a = sum(1 for p in clicked_positions if teams[p] == TEAM_A)
    b = len(clicked_positions) - a
    return (a > b) - (b > a)


@dataclass(frozen=True)
class InterleavingResult:
    wins_a: int
    wins_b: int
    ties: int
    delta: float  # (wins_a - wins_b) / (wins_a + wins_b), in [-1, 1]
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return self.__dict__.copy()


def sign_test(preferences: Sequence[int] | np.ndarray) -> InterleavingResult:
    """Two-sided binomial test over impressions with a preference (+1 A / -1 B / 0 none)."""
    prefs = np.asarray(preferences)
    wa, wb = int((prefs > 0).sum()), int((prefs < 0).sum())
    n = wa + wb
    p = binomtest(wa, n, 0.5).pvalue if n else 1.0
    return InterleavingResult(wa, wb, int(prefs.size - n), (wa - wb) / n if n else 0.0, float(p))


def sign_test_pvalues(wins_a: np.ndarray, wins_b: np.ndarray) -> np.ndarray:
    """Vectorised two-sided sign-test p-values (normal approximation with continuity
    correction; used by simulations that run thousands of tests)."""
    from scipy.stats import norm

    n = np.asarray(wins_a + wins_b, dtype=float)
    stat = (np.abs(wins_a - wins_b) - 1.0).clip(min=0) / np.sqrt(np.maximum(n, 1.0))
    return np.where(n > 0, 2 * norm.sf(stat), 1.0)
