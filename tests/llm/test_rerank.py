"""LLM re-ranking: the model's order when valid and in time; otherwise the ranker's order."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import pytest

from newsdesk.errors import LLMUnavailable
from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.provider import Message
from newsdesk.llm.rerank import LLMReranker

TITLES = ["Parliament passes the budget bill", "Striker scores twice in the derby",
          "Markets rally as bond yields fall", "New vaccine trial shows promise",
          "Chef opens a new bistro downtown", "Storm hits the coast"]
READ = ["Goalkeeper saves a late penalty", "Coach praises the team after the title win"]
ITEMS = [f"a{i}" for i in range(len(TITLES))]


def order(*numbers: int) -> str:
    return json.dumps({"order": list(numbers)})


def test_valid_answer_reorders_the_top_n_only() -> None:
    fake = FakeProvider(order(2, 1, 3, 5, 4))
    out, res = LLMReranker(fake, top_n=5, budget_s=5).apply(ITEMS, TITLES, READ)
    assert res.applied and res.reason == "ok"
    assert out == ["a1", "a0", "a2", "a4", "a3", "a5"]
    sent = fake.calls
    assert sent == 1


@pytest.mark.parametrize(("answer", "reason"), [
    (order(1, 1, 2, 3, 4), "invalid"),  # not a permutation
    (order(1, 2, 3), "invalid"),  # too short
    ("the second one", "invalid"),  # not JSON
])
def test_invalid_answers_keep_the_ranker_order(answer: str, reason: str) -> None:
    out, res = LLMReranker(FakeProvider(answer), top_n=5, budget_s=5).apply(ITEMS, TITLES, READ)
    assert out == ITEMS and not res.applied and res.reason == reason


def test_timeout_keeps_the_order_within_the_budget() -> None:
    slow = FakeProvider(order(2, 1, 3, 4, 5), delay_s=3.0)
    began = time.perf_counter()
    out, res = LLMReranker(slow, top_n=5, budget_s=0.3).apply(ITEMS, TITLES, READ)
    assert out == ITEMS and res.reason == "timeout"
    assert time.perf_counter() - began < 1.5


def test_a_provider_that_ignores_its_timeout_cannot_exceed_the_budget() -> None:
    def stubborn(_m: Sequence[Message]) -> str:
        time.sleep(2.0)  # ignores timeout_s
        return order(2, 1, 3, 4, 5)

    began = time.perf_counter()
    out, res = LLMReranker(FakeProvider(stubborn), top_n=5, budget_s=0.3).apply(
        ITEMS, TITLES, READ)
    assert out == ITEMS and res.reason == "timeout"
    assert time.perf_counter() - began < 1.5


def test_provider_error_keeps_the_order() -> None:
    def down(_m: Sequence[Message]) -> str:
        raise LLMUnavailable("down", provider="fake", task="rerank")

    out, res = LLMReranker(FakeProvider(down), top_n=5, budget_s=5).apply(ITEMS, TITLES, READ)
    assert out == ITEMS and res.reason == "error"


def test_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="top_n"):
        LLMReranker(FakeProvider("x"), top_n=1)
    with pytest.raises(ValueError, match="budget_s"):
        LLMReranker(FakeProvider("x"), budget_s=0)


def test_real_local_model_keeps_every_item(local_provider) -> None:
    out, res = LLMReranker(local_provider, top_n=4, budget_s=120).apply(ITEMS, TITLES, READ)
    assert sorted(out) == sorted(ITEMS) and out[4:] == ITEMS[4:]
    assert res.reason in ("ok", "invalid")
    if res.applied:
        assert sorted(res.order[:4]) == [0, 1, 2, 3]
