"""Against a real `newsdesk serve` process: logs carry no reader id, article text or request
body, and a quick schemathesis run (benchmarks/fuzz_api.py) finds no 5xx, no response outside
the documented schema, and no 4xx without the error body naming the field.

One small world is simulated and trained for the module (about 30 s), one server serves both.
The full 10,000-case run is `python benchmarks/fuzz_api.py`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("schemathesis")

from benchmarks.fuzz_api import fuzz  # noqa: E402

from newsdesk.serving.privacy import Pseudonymiser, Redactor, load_key  # noqa: E402
from tests.serving.live_server import ADMIN_KEY, LiveServer, small_world  # noqa: E402

pytestmark = [pytest.mark.ml, pytest.mark.slow]
SECRET_USER = "reader-7c1e-secret"
SECRET_TITLE = "Zanzibar parliament votes on marmalade tariff"
SECRET_BODY = "body-fragment-9f3a"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("live-guard")
    world = small_world(root / "world")
    with LiveServer(world, root / "state", log_level="info",
                    extra_args=["--access-log"]) as server:  # uvicorn's lines too
        yield server
    assert server.returncode in (0, -15), server.log_text()[-2000:]


def test_logs_hold_pseudonyms_only_and_no_content(live: LiveServer) -> None:
    admin = {"X-API-Key": ADMIN_KEY}
    article = live.world.articles[0]
    with httpx.Client(base_url=live.base, timeout=30) as client:
        rec = client.post("/v1/recommendations", json={"user_id": SECRET_USER, "k": 5})
        assert rec.status_code == 200
        assert client.post("/v1/events", json={"events": [
            {"type": "click", "event_id": "secret-click-1", "user_id": SECRET_USER,
             "article_id": article, "request_id": rec.json()["request_id"]}]}
            ).status_code == 200
        assert client.put("/v1/articles", json={"articles": [
            {"article_id": "secret-article", "title": SECRET_TITLE, "category": "news",
             "abstract": SECRET_TITLE, "published_at": live.world.clock_start}]}
            ).status_code == 200
        bad = client.post("/v1/recommendations",
                          json={"user_id": SECRET_USER, "k": SECRET_BODY})
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "k"
        assert client.get(f"/v1/users/{SECRET_USER}/recent").status_code == 401
        assert client.get(f"/v1/users/{SECRET_USER}/recent", headers=admin).status_code == 200
        assert client.delete(f"/v1/users/{SECRET_USER}", headers=admin).status_code == 200
        assert client.get(f"/v1/users/{SECRET_USER}/recent", headers=admin
                          ).json()["clicks"] == []
    time.sleep(0.5)  # the log lines of the last requests
    text = live.log_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert sum(1 for e in lines if e.get("event") == "request") >= 8  # the requests were logged
    assert '"DELETE /v1/users/p_' in text  # uvicorn's access line, with the pseudonym
    for secret in (SECRET_USER, SECRET_TITLE, SECRET_BODY, ADMIN_KEY):
        assert secret not in text, secret
    pseudonym = Pseudonymiser(load_key(live.state_dir))(SECRET_USER)
    audits = [e for e in lines if e.get("event") == "admin_audit"]
    assert {(e["route"], e["status"]) for e in audits} >= {
        ("/v1/users/{user_id}/recent", 401), ("/v1/users/{user_id}", 200)}
    assert any(e.get("target") == pseudonym for e in audits)
    assert all(e["actor"].startswith(("key:p_", "addr:p_")) for e in audits)


def test_redactor_rules() -> None:
    redact = Redactor(Pseudonymiser(b"k" * 32))
    out = redact(None, "info", {"event": "x", "user_id": "alice", "title": "Secret",
                                "unit": "session:abc", "body": {"a": 1}, "count": 3})
    assert out["user_id"] == redact.pseudonymise("alice") and out["user_id"].startswith("p_")
    assert out["unit"].startswith("p_") and out["title"] == out["body"] == "[redacted]"
    assert out["count"] == 3 and out["event"] == "x"
    assert redact(None, "info", {"articles": 12})["articles"] == 12  # a count, not content
    assert redact.pseudonymise("alice") != Redactor(Pseudonymiser(b"j" * 32)).pseudonymise(
        "alice")  # another deployment's key, another pseudonym


def test_quick_fuzz_finds_no_server_error_and_no_schema_violation(live: LiveServer) -> None:
    result = fuzz(live.base, 200, ADMIN_KEY, seed=1)
    detail = json.dumps(result["examples"][:5], indent=1)[:3000]
    assert result["cases"] >= 200
    assert result["server_errors"] == 0, detail
    assert result["schema_violations"] == 0, detail
    assert result["error_body_violations"] == 0, detail
    assert set(result["by_operation"]) >= {"POST /v1/events", "DELETE /v1/users/{user_id}",
                                           "POST /v1/admin/bundles/{version}/promote"}
    assert all(v.get("cases", 0) > 0 for v in result["by_operation"].values())
    with httpx.Client(base_url=live.base, timeout=10) as client:
        assert client.get("/healthz").status_code == 200  # still serving afterwards
