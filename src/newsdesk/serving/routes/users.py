"""A reader's data: their recent clicks (admin), and the right to erasure (admin).

    GET    /v1/users/{user_id}/recent   the same state the ranker reads for personalisation,
                                        newest first, with each article's category and language
                                        when the article is still in the serving catalog (None
                                        when it expired or was deleted). The dashboard's
                                        recommendation preview shows it, with the admin key:
                                        a reader's history is personal data.
    DELETE /v1/users/{user_id}          erasure: the reader goes on the durable erasure list
                                        first (data/erasure.py: exports, training sets and the
                                        store's start-up load drop them; their later events are
                                        discarded), then their online state is removed, so the
                                        very next recommendation uses no personal history.

Both need the admin `X-API-Key` and are audited (serving/access_guard.py).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from newsdesk.data.erasure import ErasureList
from newsdesk.features.dismissals import forget_dismissals
from newsdesk.features.interest_seeds import delete_seed
from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.routes.admin import require_admin
from newsdesk.serving.schemas import ErrorBody

router = APIRouter(prefix="/v1/users", tags=["users"], dependencies=[Depends(require_admin)],
                   responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
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


class ErasureAck(BaseModel):
    request_id: str
    user_id: str
    erased: bool  # always true: the reader is on the erasure list
    had_online_state: bool  # the online store held something about them


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


@router.delete("/{user_id}", response_model=ErasureAck,
               responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
               summary="Erase a reader: online state now, exports and training sets after")
async def erase_user(user_id: UserId, request: Request) -> Response:
    svc = services(request)
    loop = asyncio.get_running_loop()
    # the tombstone first: if the store fails below, a retry finds the reader listed and the
    # exports and training sets already drop them
    lists = [request.app.state.erasures]
    if svc.settings.dataset_dir is not None:  # the served dataset says it too (training)
        lists.append(ErasureList.in_dir(svc.settings.dataset_dir))
    for erasures in lists:
        await loop.run_in_executor(svc.io_pool, erasures.add, [user_id])
    had = await loop.run_in_executor(svc.io_pool, svc.store.forget_user, user_id)
    await loop.run_in_executor(svc.io_pool, _forget_markers, svc.store, user_id)
    return json_response({"request_id": request_id(request), "user_id": user_id,
                          "erased": True, "had_online_state": bool(had)})


def _forget_markers(store: Any, user_id: str) -> None:
    """The reader's per-user markers: stated interests and dismissals."""
    delete_seed(store, user_id)
    forget_dismissals(store, user_id)
