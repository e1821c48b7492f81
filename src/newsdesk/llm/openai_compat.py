"""An OpenAI-compatible chat-completions client (httpx): hosted APIs and self-hosted servers
(vLLM, Ollama, llama.cpp server, `newsdesk llm serve`).

    POST {base_url}/chat/completions  {"model", "messages", "max_tokens", "temperature",
                                       "response_format"?}  ->  {"choices": [{"message":
                                       {"content"}, "finish_reason"}], "usage": {...}}

Errors are mapped onto the LLM exception tree: a connect error, 5xx or 429 is
`LLMUnavailable` (the operations layer retries it), a read/connect timeout is `LLMTimeout`, an
answer that is not a chat completion is `LLMInvalidOutput`; 4xx other than 429 is a plain
`LLMError` (our request is wrong: retrying does not help). The key is sent as a bearer token and
never logged.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from newsdesk.errors import LLMError, LLMInvalidOutput, LLMTimeout, LLMUnavailable
from newsdesk.llm.provider import Completion, JsonSchema, LLMProvider, Message, validate_messages
from newsdesk.llm.settings import LLMSettings


class OpenAICompatibleProvider(LLMProvider):
    """Talks to `base_url` (ending in /v1) with a pooled httpx client."""

    name = "openai"
    supports_json_schema = True  # sent as response_format; servers that ignore it are fine

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None,
                 transport: httpx.BaseTransport | None = None,
                 max_connections: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self._model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport,
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections))

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> OpenAICompatibleProvider:
        assert settings.base_url and settings.model  # the settings validator guarantees both
        key = settings.api_key.get_secret_value() if settings.api_key else None
        return cls(settings.base_url, settings.model, api_key=key,
                   max_connections=settings.concurrency)

    @property
    def model(self) -> str:
        return self._model

    def list_models(self, timeout_s: float = 5.0) -> list[str]:
        """GET /models: the ids the server offers."""
        body = self._request("GET", "/models", None, timeout_s, "models")
        return [str(m.get("id")) for m in body.get("data", []) if isinstance(m, dict)]

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        validate_messages(messages)
        payload: dict[str, Any] = {"model": self._model, "messages": list(messages),
                                   "max_tokens": max_tokens, "temperature": temperature}
        if json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": task.replace(".", "_") or "answer",
                                "schema": json_schema, "strict": True}}
        start = time.perf_counter()
        body = self._request("POST", "/chat/completions", payload, timeout_s, task)
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMInvalidOutput(f"openai: not a chat completion ({exc})", text=str(body)[:500],
                                   provider=self.name, task=task) from exc
        usage = body.get("usage") or {}
        return Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          latency_s=time.perf_counter() - start,
                          model=str(body.get("model") or self._model), provider=self.name,
                          finish_reason=str(choice.get("finish_reason") or "stop"))

    def _request(self, method: str, path: str, payload: dict[str, Any] | None,
                 timeout_s: float, task: str) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=payload,
                                            timeout=httpx.Timeout(timeout_s))
        except httpx.TimeoutException as exc:
            raise LLMTimeout(f"openai: no answer from {self.base_url} within {timeout_s} s",
                             provider=self.name, task=task) from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailable(f"openai: {self.base_url}: {type(exc).__name__}: {exc}",
                                 provider=self.name, task=task) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise LLMUnavailable(f"openai: {self.base_url} answered {response.status_code}",
                                 provider=self.name, task=task)
        if response.status_code >= 400:
            raise LLMError(f"openai: {self.base_url}{path} answered {response.status_code}: "
                           f"{response.text[:200]}", provider=self.name, task=task)
        try:
            body = response.json()
        except ValueError as exc:
            raise LLMInvalidOutput("openai: the answer is not JSON", text=response.text[:500],
                                   provider=self.name, task=task) from exc
        if not isinstance(body, dict):
            raise LLMInvalidOutput("openai: the answer is not a JSON object",
                                   text=response.text[:500], provider=self.name, task=task)
        return body

    def close(self) -> None:
        self._client.close()
