"""PUT / DELETE /v1/users/{user_id}/interests: semantic cold start (see models/cold_start.py).

A reader (or an anonymous session: user id `session:<id>`, as the recommendations route names
it) states interests in free text and/or names the article they arrived from. The text is
embedded with the active bundle's content embedder off the event loop and the seed is written
to the online store, where every worker reads it; it shapes recommendations only until the
reader's first click.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from newsdesk.errors import BundleError
from newsdesk.features.interest_seeds import delete_seed, write_seed
from newsdesk.models.cold_start import MAX_TEXT_CHARS, seed_profile
from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.schemas import ErrorBody

router = APIRouter(prefix="/v1/users", tags=["users"])
UserId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]


class InterestsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT_CHARS,
                             description='stated interests, e.g. "Bundesliga, Klima, tech"')
    article_id: str | None = Field(default=None, min_length=1, max_length=256,
                                   description="the article the reader arrived from")


class InterestsAck(BaseModel):
    request_id: str
    user_id: str
    source: str
    categories: dict[str, float] = Field(description="the seed's top category shares")


@router.put("/{user_id}/interests", response_model=InterestsAck,
            responses={422: {"model": ErrorBody}, 409: {"model": ErrorBody},
                       503: {"model": ErrorBody}},
            summary="Seed a new reader's profile from stated interests or a referring article")
async def put_interests(user_id: UserId, body: InterestsIn, request: Request) -> Response:
    svc = services(request)
    model = svc.registry.active if svc.registry.ready else None
    ws = getattr(model, "ws", None)
    if ws is None:
        raise BundleError("the active model has no content profile to seed")
    now = svc.clock()

    def seed_and_store():  # noqa: ANN202 - embeds (CPU) and writes (I/O): off the loop
        seed = seed_profile(ws, getattr(model, "embedder", None), now, text=body.text,
                            article_id=body.article_id)
        write_seed(svc.store, user_id, seed)
        return seed

    seed = await asyncio.get_running_loop().run_in_executor(svc.io_pool, seed_and_store)
    top = dict(sorted(seed.categories.items(), key=lambda kv: -kv[1])[:5])
    return json_response({"request_id": request_id(request), "user_id": user_id,
                          "source": seed.source, "categories": top})


@router.delete("/{user_id}/interests", responses={503: {"model": ErrorBody}},
               summary="Forget a reader's stated interests")
async def delete_interests(user_id: UserId, request: Request) -> Response:
    svc = services(request)
    await asyncio.get_running_loop().run_in_executor(svc.io_pool, delete_seed, svc.store,
                                                     user_id)
    return json_response({"request_id": request_id(request), "user_id": user_id})
