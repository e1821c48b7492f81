"""Settings travel to worker processes as NEWSDESK_* variables; unsafe combinations refused."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsdesk.errors import ConfigError
from newsdesk.serving.settings import ServeSettings
from newsdesk.serving.workers import _check, default_workers, settings_env


def test_settings_round_trip_through_the_environment(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    original = ServeSettings(
        bundles_dir=tmp_path / "bundles", dataset_dir=tmp_path / "data", port=8123,
        admin_api_key="a-long-enough-admin-key", clock_start=datetime(2026, 1, 8, tzinfo=UTC),
        inline_model=True, budget_ms=140.0, workers=3, online_store_url="redis://127.0.0.1:1/0")
    env = settings_env(original)
    assert env["NEWSDESK_WORKERS"] == "3" and env["NEWSDESK_INLINE_MODEL"] == "true"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    rebuilt = ServeSettings()  # type: ignore[call-arg]  # what a worker does
    for name in ("port", "clock_start", "inline_model", "budget_ms", "workers",
                 "online_store_url"):
        assert getattr(rebuilt, name) == getattr(original, name), name
    assert rebuilt.bundles_dir == original.bundles_dir.resolve()
    assert rebuilt.admin_api_key is not None
    assert rebuilt.admin_api_key.get_secret_value() == "a-long-enough-admin-key"


def test_per_process_stores_are_refused_with_several_workers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="online_store_url"):
        _check(ServeSettings(bundles_dir=tmp_path, online_store_url="memory://", workers=2))
    with pytest.raises(ConfigError, match="event_log_url"):
        _check(ServeSettings(bundles_dir=tmp_path, event_log_url="memory://", workers=2))
    _check(ServeSettings(bundles_dir=tmp_path, workers=2))  # the defaults are fine


def test_default_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("NEWSDESK_WORKERS", "three")
    with pytest.raises(ConfigError, match="workers"):
        default_workers()
    monkeypatch.delenv("NEWSDESK_WORKERS")
    import os

    assert default_workers() == max(1, (os.cpu_count() or 1) // 2)
    with pytest.raises(ValueError, match="workers"):
        ServeSettings(bundles_dir=Path("."), workers=0)


def test_a_port_already_in_use_is_refused_before_any_worker_starts(tmp_path: Path) -> None:
    import socket

    from newsdesk.serving.workers import run_workers

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        settings = ServeSettings(bundles_dir=tmp_path, port=port, workers=2,
                                 online_store_url="redis://127.0.0.1:1/0",
                                 state_dir=tmp_path / "state")
        with pytest.raises(ConfigError, match="setting 'port'"):
            run_workers(settings, 2)


def test_shared_sqlite_files_exist_in_wal_mode_before_workers_start(tmp_path: Path) -> None:
    import sqlite3

    from newsdesk.serving.workers import _create_sqlite_files

    state = tmp_path / "state"
    _create_sqlite_files(ServeSettings(bundles_dir=tmp_path, state_dir=state, workers=2))
    with sqlite3.connect(state / "events.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert (state / "experiments.db").exists()
