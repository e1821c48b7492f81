"""POST a `dismiss` event: the article never comes back to that reader, whatever answers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from tests.serving.conftest import ADMIN_KEY, running

pytestmark = pytest.mark.anyio


async def _ids(client, user: str, k: int = 5) -> list[str]:  # noqa: ANN001
    r = await client.post("/v1/recommendations", json={"user_id": user, "k": k})
    assert r.status_code == 200, r.text
    return [it["article_id"] for it in r.json()["items"]]


async def test_dismissed_article_leaves_the_slate_until_the_reader_is_erased(app: FastAPI
                                                                             ) -> None:
    async with running(app) as client:
        now = datetime.now(UTC).isoformat()
        target = "a030"
        clicks = [{"type": "click", "event_id": f"c{i}", "user_id": f"u{i}",
                   "article_id": target, "timestamp": now} for i in range(5)]
        assert (await client.post("/v1/events", json={"events": clicks})).status_code == 200
        assert (await _ids(client, "reader"))[0] == target  # popular: first for everyone
        dismiss = {"type": "dismiss", "event_id": "d1", "user_id": "reader",
                   "article_id": target, "reason": "not_interested", "timestamp": now}
        ack = await client.post("/v1/events", json={"events": [dismiss]})
        assert ack.status_code == 200 and ack.json()["accepted"] == 1
        assert target not in await _ids(client, "reader", k=40)  # not even far down
        assert (await _ids(client, "someone-else"))[0] == target  # only for that reader
        again = await client.post("/v1/events", json={"events": [dismiss]})
        assert again.json()["duplicates"] == 1  # logged once, like any event
        erased = await client.delete("/v1/users/reader", headers={"X-API-Key": ADMIN_KEY})
        assert erased.status_code == 200
        # erased: served as a stranger, and the dismissal went with the rest of the state
        assert (await _ids(client, "reader"))[0] == target


async def test_a_too_long_reason_is_refused_with_the_field_named(app: FastAPI) -> None:
    async with running(app) as client:
        bad = {"type": "dismiss", "event_id": "d2", "user_id": "reader",
               "article_id": "a001", "reason": "x" * 201}
        r = await client.post("/v1/events", json={"events": [bad]})
        assert r.status_code == 422
        assert any("reason" in f["field"] for f in r.json()["fields"])
