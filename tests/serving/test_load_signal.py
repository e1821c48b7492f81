"""The recommend path's load signal that background work yields to (serving/load_signal.py)."""

from __future__ import annotations

from newsdesk.serving.load_signal import LoadSignal


class Fake:
    def __init__(self) -> None:
        self.now = 100.0
        self.seconds = 0.0

    def advance(self, wall_s: float, work_per_s: float) -> None:
        self.now += wall_s
        self.seconds += wall_s * work_per_s


def test_busy_follows_the_rate_of_stage_seconds_over_the_window() -> None:
    f = Fake()
    signal = LoadSignal(lambda: f.seconds, threshold=0.25, window_s=2.0,
                        clock=lambda: f.now)
    assert signal.busy()  # one sample: cannot tell yet, so background work waits
    f.advance(0.2, 0.0)
    assert signal.rate() is None and signal.busy()  # still under min_span_s
    f.advance(0.5, 0.1)
    assert not signal.busy()  # quiet: 0.05 s of work over 0.7 s
    for _ in range(6):
        f.advance(0.5, 0.8)
        signal.busy()
    assert signal.rate() > 0.6 and signal.busy()  # the window forgot the quiet start
    for _ in range(6):
        f.advance(0.5, 0.1)
        signal.busy()
    assert not signal.busy()


def test_threshold_zero_never_yields() -> None:
    f = Fake()
    signal = LoadSignal(lambda: f.seconds, threshold=0.0, clock=lambda: f.now)
    f.advance(1.0, 5.0)
    assert not signal.busy()
