"""POST /v1/events: impressions, clicks and dwell, acknowledged once durable."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from newsdesk.serving.app import services
from newsdesk.serving.routes._common import json_response, request_id
from newsdesk.serving.routes.headlines import on_clicks as headline_clicks
from newsdesk.serving.schemas import ErrorBody, EventBatch, EventsAck

router = APIRouter(prefix="/v1", tags=["events"])


@router.post(
    "/events", response_model=EventsAck,
    responses={413: {"model": ErrorBody}, 422: {"model": ErrorBody},
               503: {"model": ErrorBody}},
    summary="Log a batch of events",
    description="Idempotent by event_id (clicks, dwell) and request_id (impressions). The "
                "answer comes once the batch is durable in the event log; the online state "
                "(user clicks, article statistics) is updated before answering, so the next "
                "recommendation reflects the batch.",
)
async def post_events(body: EventBatch, request: Request) -> Response:
    svc = services(request)
    limit = svc.settings.max_events_per_batch
    if len(body.events) > limit:
        request.app.state.monitor.data.record_rejected("batch_too_large", len(body.events))
        raise HTTPException(413, f"field 'events': at most {limit} events per batch, "
                                 f"got {len(body.events)}")
    erasures = request.app.state.erasures.users()  # erased readers' events are discarded
    events = [e for e in body.events if e.user_id not in erasures] if erasures else body.events
    if not events:
        return json_response({"request_id": request_id(request), "accepted": 0,
                              "duplicates": 0, "applied": True, "erased": len(body.events)})
    result, applied = await svc.ingestor.ingest(events)
    headline_clicks(events, request.app)  # credit the headline variant that was shown
    request.app.state.monitor.on_events(events, svc.catalog, svc.clock())
    ack = {"request_id": request_id(request), "accepted": result.accepted,
           "duplicates": result.duplicates, "applied": applied}
    if len(events) < len(body.events):  # the field is there only when it is not 0
        ack["erased"] = len(body.events) - len(events)
    return json_response(ack)
