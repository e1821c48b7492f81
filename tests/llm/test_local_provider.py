"""The local provider in-process with the real SmolLM2 model: the contract of LLMProvider."""

from __future__ import annotations

import json

import pytest

from newsdesk.errors import ConfigError, LLMTimeout
from newsdesk.llm import user
from newsdesk.llm.local import resolve_model_path


def test_greedy_decoding_is_deterministic(local_provider):
    messages = [user("Name one German city.")]
    first = local_provider.complete(messages, max_tokens=6)
    second = local_provider.complete(messages, max_tokens=6)
    assert first.text == second.text and first.text.strip()
    assert first.prompt_tokens == second.prompt_tokens > 0


def test_schema_grammar_yields_parseable_json_with_umlauts(local_provider):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
              "required": ["city"], "additionalProperties": False}
    completion = local_provider.complete(
        [user("Which city is the article about? 'Der Stadtrat von München beschließt...' "
              "Answer as JSON.")], max_tokens=24, json_schema=schema)
    assert list(json.loads(completion.text)) == ["city"]


def test_timeout_stops_generation(local_provider):
    with pytest.raises(LLMTimeout, match="within"):
        local_provider.complete([user("Write a long essay about journalism.")], max_tokens=400,
                                timeout_s=0.2)
    # the context is usable again right after an interrupted call
    assert local_provider.complete([user("Say hi.")], max_tokens=3).completion_tokens > 0


def test_unknown_model_name_is_refused():
    with pytest.raises(ConfigError, match="llm.model"):
        resolve_model_path("no-such-model")


def test_shared_prompt_prefix_is_reused_with_identical_answers(local_provider):
    from newsdesk.llm import system

    head = system("You are a newsroom assistant. " * 8)
    questions = [user("Name a German city."), user("Name a French city.")]
    before = local_provider.reused_tokens
    warm = [local_provider.complete([head, q], max_tokens=5).text for q in questions]
    assert local_provider.reused_tokens - before >= 40  # the system prompt was not re-read
    local_provider._cached = []  # a cold context must give the same greedy answers
    local_provider._ctx.kv_cache_clear()
    cold = []
    for q in questions:
        local_provider._cached = []
        local_provider._ctx.kv_cache_clear()
        cold.append(local_provider.complete([head, q], max_tokens=5).text)
    assert warm == cold


def test_compact_enrichment_prompt_with_the_real_model(local_provider):
    # enrich.v2 (the default) through the real model: its grammar keeps the shorter lists, and
    # the answer validates as both the compact and the full schema (one stored shape)
    from datetime import UTC, datetime

    from newsdesk.data.schema import Article
    from newsdesk.llm.enrichment import CompactEnrichment, Enricher, Enrichment

    enricher = Enricher(local_provider, timeout_s=300)
    assert enricher.prompt.id == "enrich.v2" and enricher.schema is CompactEnrichment
    record = enricher.enrich(Article(
        article_id="m1", title="Bayern Munich beat Dortmund 3-1 in the Bundesliga",
        abstract="Harry Kane scored twice as Bayern Munich won the derby on Saturday.",
        category="sports", published_at=datetime.now(UTC)))
    e = record.enrichment
    assert record.prompt_version == "enrich.v2"
    assert len(e.topics) <= 2 and len(e.keywords) <= 4 and len(e.entities) <= 3
    assert Enrichment.model_validate(e.model_dump()) is not None


def test_background_calls_pause_token_by_token_while_serving_is_busy(local_provider):
    """Inside `yielding_to`, the token loop asks the signal before every token and sleeps
    while it says busy; the pause does not count against the call's timeout, and the answer
    is the same as without pausing. Outside, the signal is never asked."""
    import time

    from newsdesk.llm.yielding import yielding_to

    messages = [user("Name three German cities.")]
    t0 = time.monotonic()
    plain = local_provider.complete(messages, max_tokens=8)
    plain_s = time.monotonic() - t0
    asked = []
    busy_until = time.monotonic() + max(3.0, 3 * plain_s)

    def busy() -> bool:
        asked.append(time.monotonic())
        return time.monotonic() < busy_until

    with yielding_to(busy):
        t0 = time.monotonic()
        paused = local_provider.complete(messages, max_tokens=8,
                                         timeout_s=max(2.0, 2 * plain_s))
        waited = time.monotonic() - t0
    assert paused.text == plain.text
    assert waited >= busy_until - t0 - 0.5  # it slept through the busy spell
    assert len(asked) >= paused.completion_tokens  # asked before every token
    asked.clear()
    local_provider.complete(messages, max_tokens=4)
    assert asked == []  # an interactive call never pauses
