"""Settings refuse unsafe values, naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.errors import ConfigError
from newsdesk.serving.settings import load_settings


@pytest.mark.parametrize(("values", "field"), [
    ({"admin_api_key": "short"}, "admin_api_key"),
    ({"budget_ms": 10, "personalised_timeout_ms": 50}, "personalised_timeout_ms"),
    ({"host": "0.0.0.0"}, "host"),
    ({"max_body_bytes": 10}, "max_body_bytes"),
    ({"port": 70000}, "port"),
    ({"log_level": "chatty"}, "log_level"),
    ({"bogus": 1}, "bogus"),
    ({"event_claim_idle_s": 0}, "event_claim_idle_s"),
    ({"psi_threshold": 0}, "psi_threshold"),
    ({"drift_window_rows": 10}, "drift_window_rows"),
    ({"drift_sample_every": 0}, "drift_sample_every"),
    ({"monitor_interval_s": 0}, "monitor_interval_s"),
])
def test_unsafe_settings_are_refused(tmp_path: Path, values: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_settings(bundles_dir=tmp_path, **values)


def test_admin_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSDESK_ADMIN_API_KEY", "k" * 20)
    settings = load_settings(bundles_dir=tmp_path)
    assert settings.admin_enabled
    assert "k" * 20 not in repr(settings)  # a secret never lands in logs
    monkeypatch.delenv("NEWSDESK_ADMIN_API_KEY")
    assert not load_settings(bundles_dir=tmp_path).admin_enabled


def test_public_bind_needs_explicit_opt_in(tmp_path: Path) -> None:
    s = load_settings(bundles_dir=tmp_path, host="0.0.0.0", allow_public_bind=True)
    assert s.host == "0.0.0.0"


def test_the_periodic_store_snapshot_is_off_unless_set_to_10_s_or_more(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from newsdesk.serving.settings import ServeSettings

    assert ServeSettings(bundles_dir=tmp_path).online_store_snapshot_s == 0
    assert ServeSettings(bundles_dir=tmp_path,
                         online_store_snapshot_s=600).online_store_snapshot_s == 600
    with pytest.raises(ValidationError, match="online_store_snapshot_s"):
        ServeSettings(bundles_dir=tmp_path, online_store_snapshot_s=5)
