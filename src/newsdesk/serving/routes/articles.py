"""Articles: batch upsert, delete, and related articles."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response

from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, render_items, request_id
from newsdesk.serving.schemas import (
    ArticleBatch,
    ArticlesAck,
    DeleteAck,
    ErrorBody,
    RelatedResponse,
)

router = APIRouter(prefix="/v1/articles", tags=["articles"])
ArticleId = Annotated[str, Path(min_length=1, max_length=256)]


@router.put(
    "", response_model=ArticlesAck, responses={422: {"model": ErrorBody}},
    summary="Add or update articles (batch)",
    description="Articles are embedded and recommendable when the call returns.",
)
async def upsert_articles(body: ArticleBatch, request: Request) -> Response:
    svc = services(request)
    limit = svc.settings.max_articles_per_batch
    if len(body.articles) > limit:
        raise HTTPException(413, f"field 'articles': at most {limit} articles per batch, "
                                 f"got {len(body.articles)}")
    loop = asyncio.get_running_loop()
    # the model first (embeds), then the serving catalog: an id is never live without vectors
    await loop.run_in_executor(svc.io_pool, svc.registry.upsert_articles, body.articles)
    svc.catalog.upsert(body.articles)
    svc.metrics.catalog_size.set(len(svc.catalog))
    if svc.cluster is not None:  # the other worker processes apply it within ~1 s
        await svc.cluster.published_upsert(body.articles)
    llm = getattr(request.app.state, "llm", None)
    if llm is not None and llm.enrich_queue is not None:  # LLM enrichment in the background:
        llm.enrich_queue.submit(body.articles)  # never blocks (bounded queue, drops counted)
    ids = [a.article_id for a in body.articles]
    return json_response({"request_id": request_id(request), "upserted": len(ids),
                          "article_ids": ids})


@router.delete("/{article_id}", response_model=DeleteAck, summary="Remove an article now",
               responses={404: {"model": ErrorBody}})
async def delete_article(article_id: ArticleId, request: Request) -> Response:
    svc = services(request)
    # the serving catalog first: from this line on no response contains the article
    known = svc.catalog.remove(article_id)
    loop = asyncio.get_running_loop()
    in_model = await loop.run_in_executor(svc.io_pool, svc.registry.remove_article, article_id)
    if not (known or in_model):
        raise HTTPException(404, f"article '{article_id}' is not in the catalog")
    if svc.cluster is not None:
        await svc.cluster.published_delete(article_id)
    svc.metrics.catalog_size.set(len(svc.catalog))
    return json_response({"request_id": request_id(request), "article_id": article_id,
                          "deleted": True})


@router.get("/{article_id}/related", response_model=RelatedResponse,
            summary="Articles related to one article",
            responses={404: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def related(article_id: ArticleId, request: Request,
                  k: Annotated[int, Query(ge=1, le=100)] = 10) -> Response:
    svc = services(request)
    if article_id not in svc.catalog:
        raise HTTPException(404, f"article '{article_id}' is not in the catalog")
    result = await svc.pipeline.related(article_id, k, svc.clock())
    if result.degraded:
        svc.metrics.degraded.labels("related").inc()
    return json_response({"request_id": request_id(request), "article_id": article_id,
                          "model_version": result.model_version, "degraded": result.degraded,
                          "items": render_items(result.items)})
