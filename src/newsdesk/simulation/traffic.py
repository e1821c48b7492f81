"""Traffic generation, one time window at a time (vectorised; no per-impression Python).

Per window [ws, we) of `window_minutes`:

1. the number of requests was fixed up front (multinomial split of impressions_per_day * days
   by the diurnal rate); request times are uniform in the window, users activity-weighted;
2. candidates are the articles live during the whole window (published <= ws, expires >= we);
3. the logging policy (`newsdesk.simulation.policy`) refreshes its weights at ws from the decayed
   click counts it has logged so far and draws each slate with exact inclusion propensities;
4. clicks are Bernoulli draws from the world's true click model at the request time; a click
   happens 2 s + Exp(mean 18 s) after the request, and its dwell event (with dwell_seconds)
   is stamped when the reader leaves (click time + dwell).

World v2 (`world_v2.py`) adds, per request, a device (mobile with the reader's own
probability), whose position bias the clicks use, and dismissals: one uniform per shown item
gives a click below P(click) and a dismissal in [P(click), P(click) + P(dismiss)). A v1 world
draws exactly what it drew before v2 existed.

Each window has its own random stream (seed, TRAFFIC, window index), so a window's output
depends only on the config and the logger state carried from earlier windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from newsdesk.simulation.policy import (
    inclusion_probabilities,
    logging_weights,
    systematic_sample,
)
from newsdesk.simulation.population import TRAFFIC, _window_counts, rng_for
from newsdesk.simulation.world import World
from newsdesk.simulation.world_v2 import WorldV2

CLICK_DELAY_MIN_S = 2.0
CLICK_DELAY_MEAN_S = 20.0


@dataclass
class WindowLog:
    """What one window produced; arrays indexed by request (R) and slate position (S')."""

    window: int
    first_request: int  # global index of the first request (request ids are "r{index}")
    times_us: np.ndarray  # (R,) int64 request times
    users: np.ndarray  # (R,) user indices
    slates: np.ndarray  # (R, S') article indices in display order
    propensities: np.ndarray  # (R, S') marginal inclusion probabilities pi_i
    click_rows: np.ndarray  # (C,) request row of each click (within the window)
    click_positions: np.ndarray  # (C,)
    click_us: np.ndarray  # (C,) int64
    dwell_seconds: np.ndarray  # (C,)
    dropped: int  # requests without any live article (not logged)
    # world v2 only (None for v1)
    devices: np.ndarray | None = None  # (R,) int8 1 = mobile, 0 = desktop
    dismiss_rows: np.ndarray | None = None  # (D,) request row of each dismissal
    dismiss_positions: np.ndarray | None = None  # (D,)
    dismiss_us: np.ndarray | None = None  # (D,) int64

    @property
    def n_requests(self) -> int:
        return int(self.times_us.shape[0])


class TrafficSimulator:
    """Generates the logged traffic of a world window by window, carrying the logger state."""

    def __init__(self, world: World) -> None:
        cfg = world.config
        self.world = world
        self.window_s = cfg.window_minutes * 60.0
        self.starts, self.counts = _window_counts(
            rng_for(cfg, TRAFFIC), cfg.n_impressions, cfg.start_unix, cfg.end_unix,
            self.window_s, cfg.traffic_peak_hour, cfg.diurnal_amplitude)
        self.popularity = np.zeros(world.n_articles)  # decayed logged clicks at _pop_time
        self._pop_time = cfg.start_unix
        self._next_request = 0

    @property
    def n_windows(self) -> int:
        return int(self.starts.size)

    def windows(self) -> Iterator[WindowLog]:
        for w in range(self.n_windows):
            yield self.run_window(w)

    def _decay_popularity(self, t: float) -> None:
        half = self.world.config.popularity_half_life_hours * 3600.0
        self.popularity *= np.exp2(-(t - self._pop_time) / half)
        self._pop_time = t

    def run_window(self, w: int) -> WindowLog:
        """Generate window `w`; windows must be run in order (the logger learns from clicks)."""
        world, cfg = self.world, self.world.config
        ws = float(self.starts[w])
        we = min(ws + self.window_s, cfg.end_unix)
        rng = rng_for(cfg, TRAFFIC, w)
        n = int(self.counts[w])

        hi = int(np.searchsorted(world.article_published, ws, side="right"))
        candidates = np.flatnonzero(world.article_expires[:hi] >= we)
        if candidates.size == 0 or n == 0:
            empty = np.zeros(0, dtype=np.int64)
            return WindowLog(w, self._next_request, empty, empty, np.zeros((0, 0), np.int64),
                             np.zeros((0, 0)), empty, empty, empty, np.zeros(0), n)

        times_us = np.round((ws + np.sort(rng.random(n)) * (we - ws)) * 1e6).astype(np.int64)
        t = times_us / 1e6
        users = world.sample_users(n, rng)

        self._decay_popularity(ws)
        weights = logging_weights(
            ws - world.article_published[candidates], self.popularity[candidates],
            policy_half_life_s=cfg.policy_half_life_hours * 3600.0,
            popularity_power=cfg.popularity_power)
        pi = inclusion_probabilities(weights, cfg.slate_size, cfg.policy_epsilon)
        local = systematic_sample(pi, n, rng)
        slates = candidates[local]
        propensities = pi[local]

        v2: dict[str, np.ndarray] = {}
        if isinstance(world, WorldV2):
            devices = (rng.random(n) < world.user_mobile[users]).astype(np.int8)
            pos = np.arange(slates.shape[1])
            p = world.click_probability(users[:, None], slates, t[:, None], pos,
                                        devices[:, None])
            pd = world.dismiss_probability(users[:, None], slates, t[:, None], pos,
                                           devices[:, None])
            draw = rng.random(p.shape)
            rows, positions = np.nonzero(draw < p)
            d_rows, d_pos = np.nonzero((draw >= p) & (draw < p + pd))
            d_delay = CLICK_DELAY_MIN_S + rng.exponential(
                CLICK_DELAY_MEAN_S - CLICK_DELAY_MIN_S, size=d_rows.size)
            v2 = {"devices": devices, "dismiss_rows": d_rows, "dismiss_positions": d_pos,
                  "dismiss_us": times_us[d_rows] + np.round(d_delay * 1e6).astype(np.int64)}
        else:
            p = world.click_probability(users[:, None], slates, t[:, None],
                                        np.arange(slates.shape[1]))
            rows, positions = np.nonzero(rng.random(p.shape) < p)
        delay = CLICK_DELAY_MIN_S + rng.exponential(CLICK_DELAY_MEAN_S - CLICK_DELAY_MIN_S,
                                                    size=rows.size)
        click_us = times_us[rows] + np.round(delay * 1e6).astype(np.int64)
        dwell = world.sample_dwell(users[rows], slates[rows, positions], rng)

        # the logger sees this window's clicks from the next refresh on
        self._decay_popularity(we)
        self.popularity += np.bincount(slates[rows, positions], minlength=world.n_articles)

        log = WindowLog(w, self._next_request, times_us, users, slates, propensities,
                        rows, positions, click_us, dwell, 0, **v2)
        self._next_request += n
        return log
