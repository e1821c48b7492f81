"""JSON answers validated by a pydantic model: parse, validate, retry once with the error, or
raise `LLMInvalidOutput`. Nothing half-parsed ever leaves this module.

The JSON Schema of the pydantic model goes to the provider as `json_schema`, so a provider that
constrains decoding (the local model's grammar) can only produce that shape; the validation
here still runs, because a remote server may ignore the schema and a cut answer
(finish_reason "length") is not valid JSON.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from newsdesk.errors import LLMInvalidOutput
from newsdesk.llm.provider import Completion, LLMProvider, Message, assistant, user

M = TypeVar("M", bound=BaseModel)


def extract_json(text: str) -> Any:
    """The JSON object in a model's answer (tolerates code fences and prose around it)."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the answer")
    return json.loads(text[start:end + 1])


def parse_as(schema: type[M], text: str) -> M:
    """Validate `text` as `schema`; ValueError (with pydantic's reason) when it does not fit."""
    try:
        return schema.model_validate(extract_json(text))
    except (ValueError, ValidationError) as exc:
        raise ValueError(str(exc).splitlines()[0][:300]) from exc


def complete_json(provider: LLMProvider, messages: Sequence[Message], schema: type[M], *,
                  task: str, max_tokens: int = 256, temperature: float = 0.0,
                  timeout_s: float = 30.0, retries: int = 1) -> tuple[M, Completion]:
    """Ask for a JSON answer of `schema`; retry with the validation error up to `retries` times.

    Returns (validated object, the completion that produced it). Raises LLMInvalidOutput
    (carrying the last text) when no answer fits; provider errors propagate unchanged.
    """
    json_schema = schema.model_json_schema()
    conversation = list(messages)
    reason = ""
    completion: Completion | None = None
    for _ in range(retries + 1):
        completion = provider.complete(conversation, max_tokens=max_tokens,
                                       temperature=temperature, timeout_s=timeout_s,
                                       json_schema=json_schema, task=task)
        try:
            return parse_as(schema, completion.text), completion
        except ValueError as exc:
            reason = str(exc)
        conversation = [*messages, assistant(completion.text),
                        user(f"That answer is not valid: {reason}. Answer again with only "
                             "the JSON object.")]
    raise LLMInvalidOutput(f"{task}: the model's answer does not fit {schema.__name__}: "
                           f"{reason}", text=completion.text if completion else "",
                           provider=provider.name, task=task)
