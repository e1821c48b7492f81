"""The operations layer around any provider: what makes an LLM call safe to make in production.

    complete(messages, ..., task)
      1. switch off?                      -> LLMDisabled            (no call)
      2. max_tokens capped by the task's budget (settings.max_tokens)
      3. cache hit (temperature 0)?       -> the cached Completion  (no call, no budget)
      4. for each attempt (1 + max_retries):
           requests/day budget            -> LLMBudgetExceeded      (no call)
           concurrency slot, waited for at most the call's timeout -> LLMTimeout
           circuit breaker admits?        -> LLMCircuitOpen         (no call)
           provider.complete(timeout_s)   ok -> metrics, cache, return
                                          LLMTimeout / LLMUnavailable -> backoff, retry
                                          LLMInvalidOutput / other LLMError -> raise
         sleep uniform(0, min(backoff_max_s, backoff_base_s * 2**attempt))   (full jitter)

Every outcome is counted (newsdesk_llm_* metrics, per provider and task); tokens and the
estimated cost of the day come from the provider's own counts and the prices in settings.
Budgets and the concurrency limit are per process. The breaker is the serving layer's
`CircuitBreaker` (same states and semantics as the one around the online store).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from newsdesk.errors import (
    LLMBudgetExceeded,
    LLMCircuitOpen,
    LLMDisabled,
    LLMError,
    LLMInvalidOutput,
    LLMTimeout,
    LLMUnavailable,
)
from newsdesk.llm.cache import ResponseCache, content_hash
from newsdesk.llm.metrics import LLMMetrics
from newsdesk.llm.provider import Completion, JsonSchema, LLMProvider, Message, validate_messages
from newsdesk.llm.settings import LLMSettings
from newsdesk.llm.switch import LLMSwitch
from newsdesk.serving.resilience import OPEN, CircuitBreaker, CircuitOpen


class ProviderBreaker(CircuitBreaker):
    """The serving CircuitBreaker with a context-manager guard for any exception type."""

    @contextmanager
    def guard(self, counts_as_failure: Callable[[BaseException], bool]) -> Iterator[None]:
        self._admit()  # CircuitOpen when open (or half-open with its trial in flight)
        try:
            yield
        except BaseException as exc:
            if counts_as_failure(exc):
                self._failure()
            else:
                self._success()  # the backend answered; the request itself was wrong
            raise
        self._success()


class DailyBudget:
    """Provider calls and estimated cost of the current UTC day (per process)."""

    def __init__(self, requests_per_day: int | None, *,
                 today: Callable[[], str] = lambda: datetime.now(UTC).date().isoformat()) -> None:
        self.requests_per_day = requests_per_day
        self._today = today
        self._lock = threading.Lock()
        self._day = today()
        self.requests = 0
        self.cost = 0.0

    def _roll(self) -> None:
        day = self._today()
        if day != self._day:
            self._day, self.requests, self.cost = day, 0, 0.0

    def take(self) -> bool:
        """Count one call; False (nothing counted) when today's budget is spent."""
        with self._lock:
            self._roll()
            if self.requests_per_day is not None and self.requests >= self.requests_per_day:
                return False
            self.requests += 1
            return True

    def add_cost(self, amount: float) -> float:
        with self._lock:
            self._roll()
            self.cost += amount
            return self.cost


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, LLMCircuitOpen):
        return "circuit_open"
    if isinstance(exc, LLMTimeout):
        return "timeout"
    if isinstance(exc, LLMUnavailable):
        return "unavailable"
    if isinstance(exc, LLMInvalidOutput):
        return "invalid_output"
    return "error"


def _backend_failure(exc: BaseException) -> bool:
    # what says "the backend is unhealthy": not a 4xx for our own bad request
    return isinstance(exc, LLMTimeout | LLMUnavailable | LLMInvalidOutput)


class GuardedProvider(LLMProvider):
    """A provider behind the switch, budgets, cache, concurrency limit, retries and breaker."""

    supports_json_schema = False  # set from the inner provider in __init__

    def __init__(self, inner: LLMProvider, settings: LLMSettings, *,
                 metrics: LLMMetrics | None = None, switch: LLMSwitch | None = None,
                 cache: ResponseCache | None = None, budget: DailyBudget | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.settings = settings
        self.name = inner.name
        self.supports_json_schema = inner.supports_json_schema
        self.metrics = metrics or LLMMetrics()
        self.switch = switch or LLMSwitch(settings.enabled)
        self.cache = cache if cache is not None else (
            ResponseCache(settings.cache_path) if settings.cache_path else None)
        self.budget = budget or DailyBudget(settings.requests_per_day)
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self._slots = threading.BoundedSemaphore(settings.concurrency)
        self.breaker = ProviderBreaker(
            f"llm:{inner.name}", failure_threshold=settings.breaker_failure_threshold,
            reset_s=settings.breaker_reset_s, clock=clock,
            on_change=lambda _name, state: self.metrics.breaker_open.labels(self.name).set(
                1.0 if state == OPEN else 0.0))
        self.metrics.enabled.set(1.0 if self.switch.enabled else 0.0)

    @property
    def model(self) -> str:
        return self.inner.model

    @property
    def enabled(self) -> bool:
        on = self.switch.enabled
        self.metrics.enabled.set(1.0 if on else 0.0)
        return on

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        validate_messages(messages)
        m = self.metrics
        if not self.enabled:
            m.calls.labels(self.name, task, "disabled").inc()
            raise LLMDisabled("LLM features are switched off", provider=self.name, task=task)
        max_tokens = min(max_tokens, self.settings.max_tokens_for(task))
        timeout_s = min(timeout_s, self.settings.timeout_s)
        key = None
        if self.cache is not None and temperature == 0.0:
            key = content_hash({"messages": list(messages), "max_tokens": max_tokens,
                                "schema": json_schema})
            hit = self.cache.get(key, task, self.model)
            if hit is not None:
                m.calls.labels(self.name, task, "cached").inc()
                return hit
        attempts = self.settings.max_retries + 1
        for attempt in range(attempts):
            try:
                completion = self._attempt(messages, max_tokens, temperature, timeout_s,
                                           json_schema, task)
            except (LLMTimeout, LLMUnavailable) as exc:
                m.errors.labels(self.name, task, _error_kind(exc)).inc()
                if isinstance(exc, LLMCircuitOpen) or attempt == attempts - 1:
                    m.calls.labels(self.name, task, "error").inc()
                    raise
                m.retries.labels(self.name, task).inc()
                cap = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2 ** attempt)
                self._sleep(self._rng.uniform(0, cap))
                continue
            except LLMBudgetExceeded:
                m.calls.labels(self.name, task, "budget").inc()
                raise
            except LLMError as exc:
                m.errors.labels(self.name, task, _error_kind(exc)).inc()
                m.calls.labels(self.name, task, "error").inc()
                raise
            self._account(completion, task)
            if key is not None and self.cache is not None:
                self.cache.put(key, task, completion)
            return completion
        raise AssertionError("unreachable")  # the loop returns or raises

    def _attempt(self, messages: Sequence[Message], max_tokens: int, temperature: float,
                 timeout_s: float, json_schema: JsonSchema | None, task: str) -> Completion:
        if not self.budget.take():
            raise LLMBudgetExceeded(f"the budget of {self.settings.requests_per_day} LLM "
                                    "calls per day is spent", provider=self.name, task=task)
        self.metrics.requests_today.labels(self.name).set(self.budget.requests)
        start = time.monotonic()
        if not self._slots.acquire(timeout=timeout_s):
            raise LLMTimeout(f"no free LLM slot within {timeout_s} s (concurrency "
                             f"{self.settings.concurrency})", provider=self.name, task=task)
        try:
            remaining = max(0.001, timeout_s - (time.monotonic() - start))
            try:
                with self.breaker.guard(_backend_failure):
                    return self.inner.complete(messages, max_tokens=max_tokens,
                                               temperature=temperature, timeout_s=remaining,
                                               json_schema=json_schema, task=task)
            except CircuitOpen as exc:
                raise LLMCircuitOpen(f"{self.name}: {exc}", provider=self.name,
                                     task=task) from exc
            finally:
                self.metrics.latency.labels(self.name, task).observe(time.monotonic() - start)
        finally:
            self._slots.release()

    def _account(self, completion: Completion, task: str) -> None:
        m, s = self.metrics, self.settings
        m.calls.labels(self.name, task, "ok").inc()
        m.tokens.labels(self.name, task, "prompt").inc(completion.prompt_tokens)
        m.tokens.labels(self.name, task, "completion").inc(completion.completion_tokens)
        cost = (completion.prompt_tokens * s.price_prompt_per_mtok
                + completion.completion_tokens * s.price_completion_per_mtok) / 1e6
        m.cost_today.labels(self.name).set(self.budget.add_cost(cost))

    def close(self) -> None:
        self.inner.close()
        if self.cache is not None:
            self.cache.close()
