"""Beta-Bernoulli Thompson sampling with logged propensities.

Use it to allocate traffic across variants (`choose` per request) or to fill one exploration
slot of a slate with one of several candidates. Each decision returns the arm and the
probability that Thompson sampling would choose it given the current posterior — the
propensity that must be logged for off-policy evaluation (`newsdesk.experiments.ope`). For two
arms it is exact, P(X_a > X_b) for independent Betas (closed-form sum, Miller 2015); for more
arms it is a Monte Carlo estimate from `n_mc` posterior draws (seeded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.special import betaln


@dataclass(frozen=True)
class Decision:
    arm: str
    propensity: float  # P(this arm is chosen | posterior), in (0, 1]
    probabilities: dict[str, float]  # for every arm


def prob_beta_greater(a1: float, b1: float, a2: float, b2: float) -> float:
    """P(X1 > X2), X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2); exact when a2 is an integer.

    Sum_{i=0}^{a2-1} B(a1+i, b1+b2) / ((b2+i) B(1+i, b2) B(a1, b1)) = P(X2 > X1); returns 1-.
    """
    if float(a2).is_integer() and a2 < 100_000:
        i = np.arange(int(a2))
        terms = np.exp(betaln(a1 + i, b1 + b2) - np.log(b2 + i) - betaln(1 + i, b2)
                       - betaln(a1, b1))
        return float(min(max(1.0 - terms.sum(), 0.0), 1.0))
    # non-integer prior: numerical integration of f1(x) F2(x)
    from scipy.integrate import quad
    from scipy.stats import beta

    val, _ = quad(lambda x: beta.pdf(x, a1, b1) * beta.cdf(x, a2, b2), 0, 1, limit=200)
    return float(min(max(val, 0.0), 1.0))


class ThompsonSampler:
    """Beta(alpha, beta) posterior per arm; `choose` samples, `update` learns from a reward."""

    def __init__(self, arms: Sequence[str], prior_alpha: float = 1.0, prior_beta: float = 1.0,
                 seed: int = 0, n_mc: int = 20_000, min_propensity: float = 1e-4) -> None:
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise ValueError("arms: need at least two distinct arm names")
        self.arms = list(arms)
        self.alpha = np.full(len(arms), float(prior_alpha))
        self.beta = np.full(len(arms), float(prior_beta))
        self.rng = np.random.default_rng(seed)
        self.n_mc = n_mc
        # a floor keeps every arm explorable and IPS weights bounded
        self.min_propensity = min_propensity

    def probabilities(self, arms: Sequence[str] | None = None) -> np.ndarray:
        """P(arm is the argmax of a posterior draw) over `arms` (default all), sums to 1."""
        idx = list(range(len(self.arms))) if arms is None else [self.arms.index(a) for a in arms]
        a, b = self.alpha[idx], self.beta[idx]
        if len(idx) == 1:
            return np.ones(1)
        if len(idx) == 2:
            p0 = prob_beta_greater(a[0], b[0], a[1], b[1])
            probs = np.array([p0, 1.0 - p0])
        else:
            draws = self.rng.beta(a, b, size=(self.n_mc, len(idx)))
            probs = np.bincount(draws.argmax(1), minlength=len(idx)) / self.n_mc
        probs = np.maximum(probs, self.min_propensity)
        return probs / probs.sum()

    def choose(self) -> Decision:
        """Pick an arm with its Thompson probability (the logged propensity)."""
        probs = self.probabilities()
        k = int(self.rng.choice(len(self.arms), p=probs))
        return Decision(self.arms[k], float(probs[k]),
                        {a: float(p) for a, p in zip(self.arms, probs, strict=True)})

    def update(self, arm: str, reward: float) -> None:
        """Bernoulli reward in [0, 1] (a click); fractional rewards update both counts."""
        k = self.arms.index(arm)
        self.alpha[k] += reward
        self.beta[k] += 1.0 - reward

    def state(self) -> dict[str, dict[str, float]]:
        """Posterior parameters, logged alongside decisions."""
        return {a: {"alpha": float(self.alpha[i]), "beta": float(self.beta[i]),
                    "mean": float(self.alpha[i] / (self.alpha[i] + self.beta[i]))}
                for i, a in enumerate(self.arms)}

    def fill_slot(self, candidates: Sequence[str]) -> Decision:
        """Choose what fills an exploration slot among `candidates` (a subset of the arms)."""
        probs = self.probabilities(candidates)
        k = int(self.rng.choice(len(candidates), p=probs))
        return Decision(candidates[k], float(probs[k]),
                        {c: float(p) for c, p in zip(candidates, probs, strict=True)})
