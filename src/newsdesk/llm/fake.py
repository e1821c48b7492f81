"""A scripted provider: the official fake beside the provider seam (like httpx's MockTransport).

It answers with a function of the messages, optionally after a delay or by raising, so the
operations layer and the features can be tested for timeouts, invalid output and outages
without a model. It is never a stand-in for the real model in an end-to-end test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from newsdesk.errors import LLMTimeout
from newsdesk.llm.provider import Completion, JsonSchema, LLMProvider, Message, validate_messages

Responder = Callable[[Sequence[Message]], str]


class FakeProvider(LLMProvider):
    """Answers `respond(messages)`; `delay_s` simulates a slow model (honouring timeout_s).

    `respond` may raise any LLMError to simulate an outage. `calls` counts provider calls.
    """

    name = "fake"
    supports_json_schema = False

    def __init__(self, respond: Responder | str = "ok", *, delay_s: float = 0.0,
                 model: str = "fake-model") -> None:
        self._respond = respond if callable(respond) else (lambda _m, _t=respond: _t)
        self.delay_s = delay_s
        self._model = model
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def model(self) -> str:
        return self._model

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        validate_messages(messages)
        with self._lock:
            self.calls += 1
        start = time.perf_counter()
        if self.delay_s:
            time.sleep(min(self.delay_s, timeout_s))
            if self.delay_s > timeout_s:
                raise LLMTimeout(f"fake: no answer within {timeout_s} s", provider=self.name,
                                 task=task)
        text = self._respond(messages)
        words = text.split()
        finish = "length" if len(words) > max_tokens else "stop"
        text = " ".join(words[:max_tokens]) if finish == "length" else text
        prompt_tokens = sum(len(m["content"].split()) for m in messages)
        return Completion(text=text, prompt_tokens=prompt_tokens,
                          completion_tokens=min(len(words), max_tokens),
                          latency_s=time.perf_counter() - start, model=self._model,
                          provider=self.name, finish_reason=finish)
