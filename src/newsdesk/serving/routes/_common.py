"""Small helpers shared by the routers: request id, JSON responses, item rendering."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from newsdesk.models.base import ScoredArticle


def request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    # orjson straight to bytes: the response model documents the shape, and skipping the
    # second validation pass keeps the hot path lean.
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def render_items(items: list[ScoredArticle]) -> list[dict[str, Any]]:
    return [{"article_id": it.article_id, "score": float(it.score), "rank": i + 1,
             "reason": it.reason, "source": it.source} for i, it in enumerate(items)]
