"""GET /v1/users/{user_id}/recent: a reader's recent clicks from the online store (read-only).

The same state the ranker reads for personalisation, newest first, with each article's
category and language when the article is still in the serving catalog (None when it expired
or was deleted). Used by the dashboard's recommendation preview to show why a slate looks the
way it does.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.schemas import ErrorBody

router = APIRouter(prefix="/v1/users", tags=["users"])
UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


class RecentClick(BaseModel):
    article_id: str
    timestamp: float  # Unix seconds
    category: str | None
    language: str | None
    live: bool  # still in the serving catalog


class RecentClicks(BaseModel):
    request_id: str
    user_id: str
    clicks: list[RecentClick]


@router.get("/{user_id}/recent", response_model=RecentClicks,
            responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
            summary="A reader's most recent clicks (newest first), as the ranker sees them")
async def recent_clicks(user_id: UserId, request: Request,
                        limit: Annotated[int, Query(ge=1, le=200)] = 20) -> Response:
    svc = services(request)
    loop = asyncio.get_running_loop()
    clicks = await loop.run_in_executor(svc.io_pool, svc.store.user_clicks, user_id, limit)
    rows = []
    for c in clicks:  # newest first (the store's contract)
        entry = svc.catalog.get(c.article_id)
        rows.append({"article_id": c.article_id, "timestamp": c.ts,
                     "category": entry.category if entry else None,
                     "language": entry.language if entry else None,
                     "live": entry is not None})
    return json_response({"request_id": request_id(request), "user_id": user_id,
                          "clicks": rows})
