"""The provider seam: settings refuse bad values, structured answers validate or fail whole."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from newsdesk.errors import ConfigError, InvalidInput, LLMError, LLMInvalidOutput
from newsdesk.llm import complete_json, load_llm_settings, user
from newsdesk.llm.fake import FakeProvider


class Answer(BaseModel):
    label: str
    score: float


def test_settings_refuse_openai_without_base_url():
    with pytest.raises(ConfigError, match="base_url"):
        load_llm_settings(provider="openai", model="m")


def test_settings_refuse_key_over_plain_http_to_remote_host():
    with pytest.raises(ConfigError, match="plain http"):
        load_llm_settings(provider="openai", model="m", base_url="http://example.org/v1",
                          api_key="secret")
    ok = load_llm_settings(provider="openai", model="m", base_url="http://127.0.0.1:1/v1",
                           api_key="secret")
    assert ok.base_url == "http://127.0.0.1:1/v1"


def test_settings_per_task_token_caps_keep_a_default():
    settings = load_llm_settings(max_tokens={"enrich": 100})
    assert settings.max_tokens_for("enrich") == 100
    assert settings.max_tokens_for("explain") == 256
    with pytest.raises(ConfigError, match="max_tokens"):
        load_llm_settings(max_tokens={"enrich": 0})


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("NEWSDESK_LLM_ENABLED", "false")
    monkeypatch.setenv("NEWSDESK_LLM_TIMEOUT_S", "2.5")
    settings = load_llm_settings()
    assert settings.enabled is False and settings.timeout_s == 2.5


def test_complete_json_parses_answer_inside_prose():
    provider = FakeProvider('Sure! ```json\n{"label": "sports", "score": 0.9}\n```')
    answer, completion = complete_json(provider, [user("classify")], Answer, task="t")
    assert answer == Answer(label="sports", score=0.9)
    assert completion.provider == "fake"


def test_complete_json_retries_with_the_error_then_succeeds():
    answers = iter(['{"label": "x"}', '{"label": "x", "score": 1}'])
    seen: list[int] = []

    def respond(messages):
        seen.append(len(messages))
        return next(answers)

    answer, _ = complete_json(FakeProvider(respond), [user("q")], Answer, task="t", retries=1)
    assert answer.score == 1.0
    assert seen == [1, 3]  # the retry carries the bad answer and the reason


def test_complete_json_gives_up_without_partial_result():
    provider = FakeProvider('{"label": "x", "score": "high"}')
    with pytest.raises(LLMInvalidOutput) as info:
        complete_json(provider, [user("q")], Answer, task="t", retries=1)
    assert isinstance(info.value, LLMError)
    assert info.value.text == '{"label": "x", "score": "high"}'
    assert provider.calls == 2


def test_messages_are_validated():
    with pytest.raises(InvalidInput, match="role"):
        FakeProvider().complete([{"role": "tool", "content": "x"}])  # type: ignore[list-item]
    with pytest.raises(InvalidInput, match="at least one"):
        FakeProvider().complete([])
