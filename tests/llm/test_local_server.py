"""End to end with the real model: the httpx client against `newsdesk llm serve` (a real process
running SmolLM2-135M-Instruct on the CPU). Nothing here is canned: the answers come from the model.
"""

from __future__ import annotations

import json

import pytest

from newsdesk.errors import LLMError, LLMTimeout, LLMUnavailable
from newsdesk.llm import user
from newsdesk.llm.openai_compat import OpenAICompatibleProvider


@pytest.fixture
def client(llm_server):
    provider = OpenAICompatibleProvider(llm_server, "smollm2-135m")
    yield provider
    provider.close()


def test_models_lists_the_served_model(client):
    assert client.list_models() == ["smollm2-135m"]


def test_real_model_answers_a_factual_question(client):
    completion = client.complete([user("What is the capital of France? Answer in one word.")],
                                 max_tokens=8, task="e2e")
    assert "paris" in completion.text.lower()
    assert completion.prompt_tokens > 5 and 0 < completion.completion_tokens <= 8
    assert completion.model == "smollm2-135m" and completion.provider == "openai"


def test_json_schema_constrains_the_real_model(client):
    schema = {"type": "object", "properties": {
        "category": {"type": "string", "enum": ["sports", "politics", "finance"]}},
        "required": ["category"], "additionalProperties": False}
    completion = client.complete(
        [user("Bayern Munich beat Dortmund 3-1 in the Bundesliga. Give the category as JSON.")],
        max_tokens=30, json_schema=schema, task="e2e")
    answer = json.loads(completion.text)
    assert set(answer) == {"category"} and answer["category"] in {"sports", "politics", "finance"}


def test_max_tokens_cuts_the_answer(client):
    completion = client.complete([user("Write a long story about a newsroom.")], max_tokens=3,
                                 task="e2e")
    assert completion.completion_tokens == 3 and completion.finish_reason == "length"


def test_client_timeout_raises_llm_timeout(client):
    with pytest.raises(LLMTimeout):
        client.complete([user("Write a long story about a newsroom.")], max_tokens=200,
                        timeout_s=0.05, task="e2e")


def test_unknown_model_is_a_client_error_not_retried(llm_server):
    with (OpenAICompatibleProvider(llm_server, "gpt-99") as other,
          pytest.raises(LLMError, match="404") as info):
        other.complete([user("hi")], max_tokens=2)
    assert not isinstance(info.value, LLMUnavailable)


def test_unreachable_server_is_unavailable():
    from tests.llm.conftest import _free_port

    with (OpenAICompatibleProvider(f"http://127.0.0.1:{_free_port()}/v1", "m") as down,
          pytest.raises(LLMUnavailable)):
        down.complete([user("hi")], max_tokens=2, timeout_s=2)
