"""PSI arithmetic, bins and the sliding window (no model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from newsdesk.monitoring.drift import DriftWindow, Histogram, Reference

NAMES = ("position", "a", "b")


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    x = np.column_stack([np.zeros(n), rng.normal(shift, 1, n), rng.exponential(1, n)])
    x[rng.random(n) < 0.1, 2] = np.nan  # missing values have their own bin
    return x.astype(np.float32)


def test_same_distribution_is_near_zero_and_a_shift_is_large() -> None:
    rng = np.random.default_rng(0)
    h = Histogram.fit(rng.normal(0, 1, 50_000))
    assert len(h.edges) == 9 and h.shares.sum() == pytest.approx(1.0)
    assert h.psi(rng.normal(0, 1, 5000)) < 0.02
    assert h.psi(rng.normal(1, 1, 5000)) > 0.5
    assert h.psi(np.full(100, np.nan)) > 1  # everything missing: all mass in the NaN bin


def test_discrete_values_dedupe_edges() -> None:
    h = Histogram.fit(np.array([0.0] * 900 + [1.0] * 100))
    assert list(h.edges) == [0.0]  # quantiles collapse: bins (<= 0], (> 0), NaN
    assert h.shares.tolist() == pytest.approx([0.9, 0.1, 0.0])


def test_reference_round_trip_and_window(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = _rows(rng, 20_000)
    ref = Reference.fit(x, x[:, 1] * 2, NAMES)
    assert "position" not in ref.features
    ref.save(tmp_path)
    back = Reference.load(tmp_path)
    assert back is not None and back.features["a"].edges.tolist() == pytest.approx(
        ref.features["a"].edges.tolist())
    assert Reference.load(tmp_path / "none") is None  # an older bundle: no reference

    window = DriftWindow(back, window=1000, sample_every=3, threshold=0.2)
    assert window.compute().score is None  # below min_rows
    for _ in range(300):  # 100 sampled requests of 20 rows: the window wraps around
        y = _rows(rng, 20)
        window.observe(y, y[:, 1] * 2)
    report = window.compute()
    assert report.rows == 1000 and not report.alarm and report.score < 0.1
    for _ in range(150):  # the window slides: 50 shifted requests replace every row
        y = _rows(rng, 20, shift=1.5)
        window.observe(y, y[:, 1] * 2)
    report = window.compute()
    assert report.alarm and report.drifted[:2] == ["score", "a"]
    assert report.features["b"] < 0.1
    with pytest.raises(ValueError, match="sample_every"):
        DriftWindow(back, window=10, sample_every=0, threshold=0.2)
