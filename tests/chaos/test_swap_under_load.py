"""Hot swap and roll back under load through a real `newsdesk serve`: the quick form of
`benchmarks/swap_under_load.py` (2 promote + roll back cycles at a fixed rate)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")

from benchmarks.chaos import World  # noqa: E402
from benchmarks.swap_under_load import OTHER, run_swaps  # noqa: E402

from tests.serving.test_bundle_serving import Trained, trained  # noqa: E402, F401

pytestmark = [pytest.mark.ml, pytest.mark.slow]


@pytest.mark.timeout(240)
def test_swaps_under_load_fail_no_request_and_serve_only_complete_bundles(
        tmp_path: Path, trained: Trained) -> None:  # noqa: F811
    world = World(trained.dataset, trained.bundles, trained.version, trained.clock_start,
                  trained.users)
    r = run_swaps(world, tmp_path, swaps=2, rate=10.0, sweep_steps=[10.0], sweep_s=1.0,
                  settle_s=0.5)
    assert r["swap_calls_ok"] == 4
    assert [s["active"] for s in r["swap_log"]] == [OTHER, trained.version] * 2
    assert r["requests"] >= 30 and r["failed_requests"] == 0
    assert r["half_loaded"] == 0
    # both versions served traffic, and each is a complete bundle on disk
    assert set(r["versions_seen"]) == {OTHER, trained.version}
    assert all(r["versions_complete"].values())
