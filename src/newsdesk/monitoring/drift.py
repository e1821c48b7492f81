"""Feature and score drift: population stability index (PSI) against a training reference.

    training:  feature matrix + ranker scores ──> Reference (fixed bins from quantiles)
                                                   └─> bundle/reference.json
    serving:   every n-th scored request ──> DriftWindow (ring buffer of rows, bounded)
               timer ──> DriftWindow.compute() ──> PSI per feature and for the score

Why these choices:
- Bin edges are fixed at training time (deciles of the reference rows, deduplicated, plus one
  bin for missing values), so serving only counts rows into known bins: no re-binning, no
  reference rows kept at serving.
- The request path only pays a counter increment, and every `sample_every`-th request a copy of
  its rows into a preallocated ring buffer (numpy slice assignment): microseconds on average.
  PSI is computed off the request path, on a timer.
- `position` is not monitored: serving scores every candidate at the fixed serve position by
  design (see `features.ranking_features`), so its serving distribution is a constant. For the
  same reason the reference *scores* are computed with `position` set to the serve position:
  they are the scores the ranker would give those rows online.
- A bundle written before references existed has no reference.json: it just has no PSI
  (`DriftWindow` is not created; the JSON reports `null`).

PSI = sum_b (a_b - e_b) * ln(a_b / e_b) over bins, with a_b the serving share and e_b the
reference share, both floored at EPS so empty bins stay finite. Rule of thumb: < 0.1 stable,
0.1-0.2 moderate, > 0.2 a real shift (the default threshold in settings).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT = "newsdesk-reference/1"
SCORE = "score"  # the name of the model score among the monitored series
UNMONITORED = frozenset({"position"})  # constant at serving by design (module docstring)
EPS = 1e-4
N_BINS = 10
MAX_REFERENCE_ROWS = 200_000


@dataclass(frozen=True)
class Histogram:
    """Fixed bins of one series: `edges` (sorted interior edges) and the reference shares.

    Bins: (-inf, e0], (e0, e1], ..., (e_last, inf), then one bin for NaN; so
    len(shares) == len(edges) + 2 and the shares sum to 1.
    """

    edges: np.ndarray
    shares: np.ndarray

    @classmethod
    def fit(cls, values: np.ndarray, n_bins: int = N_BINS) -> Histogram:
        values = np.asarray(values, dtype=np.float64)
        finite = values[np.isfinite(values)]
        if len(finite):
            qs = np.quantile(finite, np.linspace(0, 1, n_bins + 1)[1:-1], method="inverted_cdf")
            edges = np.unique(qs)
        else:
            edges = np.zeros(0)
        hist = cls(edges, np.zeros(len(edges) + 2))
        counts = hist.counts(values)
        return cls(edges, counts / max(counts.sum(), 1.0))

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Row counts per bin (float64, len(edges) + 2)."""
        values = np.asarray(values, dtype=np.float64)
        nan = np.isnan(values)
        idx = np.searchsorted(self.edges, values[~nan], side="left")
        out = np.bincount(idx, minlength=len(self.edges) + 2).astype(np.float64)
        out[-1] += nan.sum()
        return out

    def psi(self, values: np.ndarray) -> float:
        """PSI of `values` against the reference shares (see the module docstring)."""
        counts = self.counts(values)
        total = counts.sum()
        if total == 0:
            return 0.0
        actual = np.maximum(counts / total, EPS)
        expected = np.maximum(self.shares, EPS)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def to_json(self) -> dict[str, list[float]]:
        return {"edges": [float(x) for x in self.edges],
                "shares": [round(float(x), 8) for x in self.shares]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        edges = np.asarray(data["edges"], dtype=np.float64)
        shares = np.asarray(data["shares"], dtype=np.float64)
        if len(shares) != len(edges) + 2:
            raise ValueError(f"histogram has {len(edges)} edges but {len(shares)} shares "
                             f"(want {len(edges) + 2})")
        return cls(edges, shares)


@dataclass(frozen=True)
class Reference:
    """Reference histograms of the monitored features (by name) and of the model score."""

    feature_names: tuple[str, ...]  # the full feature schema, column order of the rows
    features: dict[str, Histogram]  # monitored features only
    score: Histogram
    rows: int

    @classmethod
    def fit(cls, x: np.ndarray, scores: np.ndarray, feature_names: Sequence[str], *,
            seed: int = 0, max_rows: int = MAX_REFERENCE_ROWS) -> Reference:
        """Histograms of x (rows, F) and scores (rows,), subsampled to max_rows rows."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(feature_names):
            raise ValueError(f"x has shape {x.shape}, want (rows, {len(feature_names)})")
        if len(x) > max_rows:
            keep = np.random.default_rng(seed).choice(len(x), max_rows, replace=False)
            x, scores = x[keep], np.asarray(scores)[keep]
        feats = {name: Histogram.fit(x[:, j]) for j, name in enumerate(feature_names)
                 if name not in UNMONITORED}
        return cls(tuple(feature_names), feats, Histogram.fit(scores), int(len(x)))

    def save(self, directory: Path) -> Path:
        path = Path(directory) / REFERENCE_FILE
        path.write_text(json.dumps({
            "format": REFERENCE_FORMAT, "rows": self.rows,
            "feature_names": list(self.feature_names),
            "features": {k: h.to_json() for k, h in self.features.items()},
            "score": self.score.to_json(),
        }))
        return path

    @classmethod
    def load(cls, directory: Path) -> Reference | None:
        """The bundle's reference, or None for a bundle written without one."""
        path = Path(directory) / REFERENCE_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        if data.get("format") != REFERENCE_FORMAT:
            raise ValueError(f"{path}: format {data.get('format')!r} is not "
                             f"{REFERENCE_FORMAT!r}")
        return cls(tuple(data["feature_names"]),
                   {k: Histogram.from_json(v) for k, v in data["features"].items()},
                   Histogram.from_json(data["score"]), int(data["rows"]))


@dataclass(frozen=True)
class DriftReport:
    """PSI of one window against the reference; `score` is None until `min_rows` are seen."""

    score: float | None
    features: dict[str, float]
    rows: int
    threshold: float

    @property
    def alarm(self) -> bool:
        values = [v for v in (self.score, *self.features.values()) if v is not None]
        return any(v > self.threshold for v in values)

    @property
    def drifted(self) -> list[str]:
        out = [name for name, v in self.features.items() if v > self.threshold]
        if self.score is not None and self.score > self.threshold:
            out.insert(0, SCORE)
        return out


class DriftWindow:
    """A sliding window of sampled serving rows for one model version (module docstring).

    observe() is called on the request path with the scored feature matrix; compute() on a
    timer. Thread-safe: the model runs in a worker thread, compute() in another.
    """

    def __init__(self, reference: Reference, *, window: int, sample_every: int,
                 threshold: float, min_rows: int = 100) -> None:
        if window < 1 or sample_every < 1:
            raise ValueError(f"window and sample_every must be >= 1, got {window}, "
                             f"{sample_every}")
        self.reference = reference
        self.threshold = threshold
        self.sample_every = sample_every
        self.min_rows = min(min_rows, window)
        self._cols = [j for j, n in enumerate(reference.feature_names) if n in reference.features]
        self._names = [reference.feature_names[j] for j in self._cols]
        self._x = np.zeros((window, len(self._cols)), dtype=np.float32)
        self._s = np.zeros(window, dtype=np.float64)
        self._pos = 0  # next write slot
        self._filled = 0
        self._seen = 0  # requests observed
        self._lock = threading.Lock()
        self.last: DriftReport | None = None

    def observe(self, x: np.ndarray, scores: np.ndarray) -> None:
        """Offer one request's rows (R, F) and scores (R,); keeps every sample_every-th."""
        self._seen += 1  # a lost increment under a race only shifts the sampling phase
        if self._seen % self.sample_every:
            return
        self.add(x, scores)

    def add(self, x: np.ndarray, scores: np.ndarray) -> None:
        """Put rows into the window unconditionally (oldest rows drop out first)."""
        n = len(scores)
        if n == 0:
            return
        cap = len(self._s)
        if n > cap:
            x, scores, n = x[-cap:], scores[-cap:], cap
        with self._lock:
            end = self._pos + n
            first = min(n, cap - self._pos)
            self._x[self._pos:self._pos + first] = x[:first, self._cols]
            self._s[self._pos:self._pos + first] = scores[:first]
            if end > cap:  # wrap around
                rest = n - first
                self._x[:rest] = x[first:, self._cols]
                self._s[:rest] = scores[first:]
            self._pos = end % cap
            self._filled = min(cap, self._filled + n)

    def compute(self) -> DriftReport:
        """PSI of the current window (None for the score below min_rows rows)."""
        with self._lock:
            n = self._filled
            x, s = self._x[:n].copy(), self._s[:n].copy()
        if n < self.min_rows:
            report = DriftReport(None, {}, n, self.threshold)
        else:
            ref = self.reference
            feats = {name: round(ref.features[name].psi(x[:, j]), 6)
                     for j, name in enumerate(self._names)}
            report = DriftReport(round(ref.score.psi(s), 6), feats, n, self.threshold)
        self.last = report
        return report
