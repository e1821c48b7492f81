"""The operations layer: switch, budgets, cache, concurrency, retries with backoff, breaker.

The provider underneath is the scripted FakeProvider (injected, not patched): these tests are
about what the layer does when a model is slow, down or wrong, which a real model cannot be
made to do on demand. The real model's own timeout is covered in test_local_provider.py.
"""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import BaseModel

from newsdesk.errors import (
    LLMBudgetExceeded,
    LLMCircuitOpen,
    LLMDisabled,
    LLMInvalidOutput,
    LLMTimeout,
    LLMUnavailable,
)
from newsdesk.llm import complete_json, load_llm_settings, make_provider, user
from newsdesk.llm.cache import ResponseCache
from newsdesk.llm.fake import FakeProvider
from newsdesk.llm.operations import DailyBudget, GuardedProvider
from newsdesk.llm.switch import LLMSwitch

HELLO = [user("hello")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def guarded(fake, sleeps=None, **settings):
    options = {"max_retries": 2, "backoff_base_s": 0.5, "backoff_max_s": 1.0, **settings}
    return GuardedProvider(fake, load_llm_settings(**options),
                           sleep=(sleeps.append if sleeps is not None else lambda _s: None))


def value(metric, **labels) -> float:
    return metric.labels(**labels)._value.get()


def test_factory_wraps_the_backend_in_the_operations_layer():
    provider = make_provider(load_llm_settings(), backend=FakeProvider("hi"))
    assert isinstance(provider, GuardedProvider) and provider.complete(HELLO).text == "hi"


def test_switch_off_refuses_without_calling_the_provider():
    fake = FakeProvider("hi")
    provider = guarded(fake, enabled=False)
    with pytest.raises(LLMDisabled):
        provider.complete(HELLO, task="enrich")
    assert fake.calls == 0
    assert value(provider.metrics.calls, provider="fake", task="enrich", outcome="disabled") == 1
    # the setting is the hard off: the runtime flag cannot turn it on
    provider.switch.set(True)
    assert provider.enabled is False


def test_runtime_switch_reaches_another_process_view_of_the_state_dir(tmp_path):
    clock = Clock()
    worker_a = LLMSwitch.in_state_dir(True, tmp_path, refresh_s=0.5, clock=clock)
    worker_b = LLMSwitch.in_state_dir(True, tmp_path, refresh_s=0.5, clock=clock)
    assert worker_a.enabled and worker_b.enabled
    worker_a.set(False)
    assert worker_a.enabled is False
    assert worker_b.enabled is True  # read less than refresh_s ago
    clock.now += 0.5
    assert worker_b.enabled is False
    fake = FakeProvider("hi")
    provider = GuardedProvider(fake, load_llm_settings(), switch=worker_b)
    with pytest.raises(LLMDisabled):
        provider.complete(HELLO)
    worker_b.set(True)
    clock.now += 0.5
    assert worker_a.enabled and provider.complete(HELLO).text == "hi"
    # persisted: a worker started later sees the last flip
    worker_a.set(False)
    assert LLMSwitch.in_state_dir(True, tmp_path).enabled is False


def test_timeout_is_retried_with_capped_jittered_backoff_then_raised():
    sleeps: list[float] = []
    fake = FakeProvider("late", delay_s=0.2)
    provider = guarded(fake, sleeps, timeout_s=0.02)
    with pytest.raises(LLMTimeout):
        provider.complete(HELLO, task="t")
    assert fake.calls == 3  # 1 + max_retries
    assert len(sleeps) == 2
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0  # base*2**attempt, capped at max
    assert value(provider.metrics.errors, provider="fake", task="t", kind="timeout") == 3
    assert value(provider.metrics.retries, provider="fake", task="t") == 2


def test_transient_outage_recovers_within_the_retries():
    answers = iter([LLMUnavailable("503"), LLMUnavailable("503"), "fine"])

    def respond(_messages):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    provider = guarded(FakeProvider(respond))
    assert provider.complete(HELLO).text == "fine"


def test_breaker_opens_fails_fast_then_closes_after_a_good_trial():
    clock = Clock()
    healthy = threading.Event()

    def respond(_messages):
        if not healthy.is_set():
            raise LLMUnavailable("connection refused")
        return "back"

    fake = FakeProvider(respond)
    provider = GuardedProvider(fake, load_llm_settings(max_retries=0, breaker_failure_threshold=3,
                                                       breaker_reset_s=30),
                               sleep=lambda _s: None, clock=clock)
    for _ in range(3):
        with pytest.raises(LLMUnavailable):
            provider.complete(HELLO)
    assert provider.breaker.state == "open"
    assert value(provider.metrics.breaker_open, provider="fake") == 1
    with pytest.raises(LLMCircuitOpen):
        provider.complete(HELLO)
    assert fake.calls == 3  # failed fast: the provider was not called
    healthy.set()
    clock.now += 30  # reset_s later: half-open, one trial passes
    assert provider.complete(HELLO).text == "back"
    assert provider.breaker.state == "closed"
    assert value(provider.metrics.breaker_open, provider="fake") == 0


def test_breaker_reopens_when_the_trial_fails():
    clock = Clock()
    fake = FakeProvider(lambda _m: (_ for _ in ()).throw(LLMUnavailable("down")))
    provider = GuardedProvider(fake, load_llm_settings(max_retries=0, breaker_failure_threshold=1,
                                                       breaker_reset_s=5),
                               sleep=lambda _s: None, clock=clock)
    with pytest.raises(LLMUnavailable):
        provider.complete(HELLO)
    clock.now += 5
    with pytest.raises(LLMUnavailable) as info:
        provider.complete(HELLO)  # the trial reaches the provider and fails
    assert not isinstance(info.value, LLMCircuitOpen) and fake.calls == 2
    with pytest.raises(LLMCircuitOpen):
        provider.complete(HELLO)


class Label(BaseModel):
    label: str


def test_invalid_output_is_dropped_with_a_metric_not_retried_by_the_layer():
    fake = FakeProvider("I think it is sports.")
    provider = guarded(fake)
    with pytest.raises(LLMInvalidOutput):
        complete_json(provider, HELLO, Label, task="enrich", retries=1)
    assert fake.calls == 2  # complete_json's one retry; the layer does not retry bad output
    assert provider.breaker.state == "closed"


def test_requests_per_day_budget_and_the_day_roll():
    day = ["2026-01-01"]
    fake = FakeProvider("x")
    provider = GuardedProvider(fake, load_llm_settings(requests_per_day=2),
                               budget=DailyBudget(2, today=lambda: day[0]))
    provider.complete([user("a")])
    provider.complete([user("b")])
    with pytest.raises(LLMBudgetExceeded):
        provider.complete([user("c")])
    assert fake.calls == 2
    day[0] = "2026-01-02"
    assert provider.complete([user("c")]).text == "x"


def test_max_tokens_is_capped_per_task():
    provider = guarded(FakeProvider("one two three four five six"),
                       max_tokens={"default": 256, "title": 2})
    assert provider.complete(HELLO, max_tokens=100, task="title").completion_tokens == 2
    assert provider.complete(HELLO, max_tokens=100, task="other").completion_tokens == 6


def test_cache_answers_repeats_without_a_call_keyed_by_prompt_version_and_model(tmp_path):
    fake = FakeProvider("answer")
    cache = ResponseCache(tmp_path / "cache.db")
    provider = GuardedProvider(fake, load_llm_settings(), cache=cache)
    first = provider.complete(HELLO, task="enrich.v1")
    again = provider.complete(HELLO, task="enrich.v1")
    assert not first.cached and again.cached and again.text == "answer" and fake.calls == 1
    provider.complete(HELLO, task="enrich.v2")  # another prompt version: a miss
    provider.complete(HELLO, task="enrich.v1", temperature=0.7)  # sampled: never cached
    assert fake.calls == 3
    other_model = GuardedProvider(FakeProvider("other", model="m2"), load_llm_settings(),
                                  cache=cache)
    assert other_model.complete(HELLO, task="enrich.v1").text == "other"
    assert len(cache) == 3


def test_concurrency_limit_makes_waiters_time_out():
    fake = FakeProvider("slow", delay_s=0.5)
    provider = guarded(fake, concurrency=1, max_retries=0)
    worker = threading.Thread(target=provider.complete, args=(HELLO,))
    worker.start()
    time.sleep(0.1)
    with pytest.raises(LLMTimeout, match="slot"):
        provider.complete(HELLO, timeout_s=0.1)
    worker.join()
    assert fake.calls == 1


def test_tokens_and_cost_metrics():
    provider = guarded(FakeProvider("a b c"), price_prompt_per_mtok=1_000_000,
                       price_completion_per_mtok=2_000_000)
    provider.complete([user("one two")], task="enrich")
    m = provider.metrics
    assert value(m.tokens, provider="fake", task="enrich", kind="prompt") == 2
    assert value(m.tokens, provider="fake", task="enrich", kind="completion") == 3
    assert m.cost_today.labels("fake")._value.get() == pytest.approx(2 * 1 + 3 * 2)
