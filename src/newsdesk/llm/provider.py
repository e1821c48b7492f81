"""The LLM provider interface: one chat-completion call, behind which any model sits.

    feature (enrichment, explanations, ...)
        │  complete(messages, max_tokens=, temperature=, timeout_s=, json_schema=, task=)
        ▼
    GuardedProvider (llm/operations.py): switch, budgets, cache, concurrency, retries, breaker,
        │                                metrics; the factory returns providers wrapped in it
        ▼
    LLMProvider implementation: OpenAICompatibleProvider (httpx; hosted APIs, vLLM, Ollama,
                                llama.cpp server, `newsdesk llm serve`) or LocalProvider (a
                                small GGUF model on the CPU, in-process)

Features depend on this module only (and on `newsdesk.errors`); which model answers is a
setting. Every failure reaches the caller as an `LLMError` subclass, so a feature needs one
`except LLMError` to fall back to its non-LLM path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict


class Message(TypedDict):
    """One chat message, as in the OpenAI chat-completions protocol."""

    role: Literal["system", "user", "assistant"]
    content: str


JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class Completion:
    """What a provider answered, with the figures the operations layer meters.

    `prompt_tokens` / `completion_tokens` are the model's own token counts (0 when a remote
    server does not report them); `latency_s` is the wall time of the call that produced the
    text (for a cached answer: of the original call); `finish_reason` is "stop" or "length"
    (cut by max_tokens).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    model: str
    provider: str = ""
    finish_reason: str = "stop"
    cached: bool = False


def system(content: str) -> Message:
    return {"role": "system", "content": content}


def user(content: str) -> Message:
    return {"role": "user", "content": content}


def assistant(content: str) -> Message:
    return {"role": "assistant", "content": content}


class LLMProvider(ABC):
    """A chat-completion model. The contract every implementation keeps:

    - `complete` sends `messages` (non-empty; roles system / user / assistant) and returns the
      assistant's answer as a `Completion`. It never returns partial text on failure.
    - `max_tokens` bounds the completion's tokens; a cut answer has finish_reason "length".
    - `temperature` 0 is greedy decoding: the local provider is then deterministic for the
      same messages and model.
    - `timeout_s` bounds the wall time of this one call; past it the call raises
      `LLMTimeout` (the local provider stops generating; the HTTP client aborts the request).
    - `json_schema` (a JSON Schema object) asks for a JSON answer of that shape. Providers
      whose `supports_json_schema` is True constrain decoding to it (a GBNF grammar for the
      local model, `response_format` for servers that accept it); the others only add it to
      the prompt. Either way the caller validates the text (see `llm/structured.py`).
    - `task` is a short name ("enrich", "explain", ...) for metrics, budgets and the cache;
      it does not change what the model is asked.
    - Backend failures raise `LLMUnavailable` (cannot reach, 5xx, 429), `LLMTimeout`, or
      `LLMInvalidOutput` (an answer that is not a chat completion); never a raw httpx/OS error.
    - `complete` is safe to call from several threads; an implementation that cannot run calls
      in parallel serialises them itself.
    - `close` releases sockets / model memory; the provider is unusable afterwards.
    """

    #: short backend name used in metrics and settings ("local", "openai", ...)
    name: str = "provider"
    #: True when json_schema constrains decoding rather than only being described in the prompt
    supports_json_schema: bool = False

    @property
    @abstractmethod
    def model(self) -> str:
        """The model's name as reported in completions and cache keys."""

    @abstractmethod
    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        """Answer the conversation; see the class docstring for the contract."""

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release sockets or model memory."""

    def __enter__(self) -> LLMProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def validate_messages(messages: Sequence[Message]) -> None:
    """Refuse what no provider can send: no messages, unknown roles, non-text content."""
    from newsdesk.errors import InvalidInput

    if not messages:
        raise InvalidInput("messages: at least one message is needed", field="messages")
    for i, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant"):
            raise InvalidInput(f"messages[{i}].role: must be system, user or assistant, "
                               f"got {message.get('role')!r}", field="messages")
        if not isinstance(message.get("content"), str):
            raise InvalidInput(f"messages[{i}].content: must be a string", field="messages")
