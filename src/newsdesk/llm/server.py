"""`newsdesk llm serve`: one provider (the local model by default) over the OpenAI protocol.

    GET  /v1/models             {"object": "list", "data": [{"id": model, ...}]}
    POST /v1/chat/completions   OpenAI request -> OpenAI chat.completion (no streaming);
                                response_format {"type": "json_schema", "json_schema":
                                {"schema": ...}} constrains decoding to the schema
    GET  /healthz

So the same HTTP client serves hosted APIs and this machine, and the client is tested against a
real model answering over a real socket. Calls run in the server's thread pool; the local
provider serialises them on its one context. Provider errors become OpenAI-style error bodies:
a timeout is 504, an unavailable provider 503, anything else 500; a bad request is 400/422.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from newsdesk.errors import InvalidInput, LLMError, LLMTimeout, LLMUnavailable
from newsdesk.llm.provider import LLMProvider


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    response_format: dict[str, Any] | None = None
    stream: bool = False


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def create_llm_app(provider: LLMProvider, *, timeout_s: float = 60.0) -> FastAPI:
    """The app serving `provider`; it closes the provider on shutdown."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        provider.close()

    app = FastAPI(title="newsdesk LLM server", version="1", lifespan=lifespan)
    created = int(time.time())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "model": provider.model}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": provider.model, "object": "model",
                                            "created": created, "owned_by": "newsdesk"}]}

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> Any:
        if request.stream:
            raise HTTPException(400, "stream=true is not supported")
        if request.model not in (None, provider.model):
            return _error(404, f"model {request.model!r} not served here; "
                               f"this server has {provider.model!r}", "model_not_found")
        try:
            completion = provider.complete(
                [m.model_dump() for m in request.messages],  # type: ignore[misc]
                max_tokens=request.max_tokens, temperature=request.temperature,
                timeout_s=timeout_s, json_schema=_schema_of(request.response_format),
                task="serve")
        except LLMTimeout as exc:
            return _error(504, str(exc), "timeout")
        except LLMUnavailable as exc:
            return _error(503, str(exc), "unavailable")
        except InvalidInput as exc:
            return _error(400, str(exc), "invalid_request_error")
        except LLMError as exc:
            return _error(500, str(exc), "server_error")
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion",
            "created": int(time.time()), "model": completion.model,
            "choices": [{"index": 0, "finish_reason": completion.finish_reason,
                         "message": {"role": "assistant", "content": completion.text}}],
            "usage": {"prompt_tokens": completion.prompt_tokens,
                      "completion_tokens": completion.completion_tokens,
                      "total_tokens": completion.prompt_tokens + completion.completion_tokens},
        }

    return app


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=status,
                        content={"error": {"message": message, "type": kind}})
