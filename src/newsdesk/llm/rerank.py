"""LLM re-ranking: an optional stage that re-orders the ranker's top N within a hard budget.

    ranked slate ──top N titles + the reader's recent titles──> prompt rerank.v1
                 ──LLM (JSON schema: {"order": [...]}) within budget_s──> a permutation?
                 yes: top N in the model's order, the rest unchanged
                 no (timeout, error, switch off, not a permutation): the ranker's order

The budget is hard: the call runs in a worker thread and the caller waits at most `budget_s`
(the provider's own timeout is set to the same value, so a well-behaved provider stops too; a
late answer is discarded). Whatever happens, `rerank` returns a slate with the same items, so
the stage can only change the order, never drop or add an item. Every outcome is counted by
reason (`RerankResult.reason`) for the caller's metrics.

Whether it helps is measured, not assumed: benchmarks/llm_rerank.py compares it with the ranker
alone on the simulator (true click model) and on the MIND sample.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, TypeVar

from pydantic import BaseModel, Field, WithJsonSchema, create_model

from newsdesk.errors import LLMError, LLMTimeout
from newsdesk.llm.prompts import load_prompt
from newsdesk.llm.provider import LLMProvider
from newsdesk.llm.structured import complete_json

T = TypeVar("T")
_POOL = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="llm-rerank")


class RerankOrder(BaseModel):
    order: list[int] = Field(min_length=1)


def order_schema(n: int) -> type[RerankOrder]:
    """Schema of exactly n numbers in 1..n (the grammar keeps a small model to the shape; the
    permutation itself is checked after)."""
    item = Annotated[int, WithJsonSchema({"type": "integer", "minimum": 1, "maximum": n})]
    return create_model(f"RerankOrder{n}", __base__=RerankOrder, order=(
        list[item], Field(min_length=1, json_schema_extra={"minItems": n, "maxItems": n})))


@dataclass(frozen=True)
class RerankResult:
    order: list[int]  # positions into the input, the new display order
    applied: bool  # False: the ranker's order stands
    reason: str  # ok, timeout, error, invalid, disabled, too_few
    latency_s: float


class LLMReranker:
    """Re-orders the top `top_n` items by an LLM's judgement (see the module docstring)."""

    def __init__(self, provider: LLMProvider, *, top_n: int = 5, budget_s: float = 1.0,
                 history: int = 5, max_tokens: int = 40) -> None:
        if top_n < 2:
            raise ValueError(f"top_n: must be >= 2, got {top_n}")
        if budget_s <= 0:
            raise ValueError(f"budget_s: must be > 0, got {budget_s}")
        self.provider = provider
        self.top_n = top_n
        self.budget_s = budget_s
        self.history = history
        self.max_tokens = max_tokens
        self.prompt = load_prompt("rerank")

    def rerank(self, titles: Sequence[str], read_titles: Sequence[str]) -> RerankResult:
        """New order of a slate given its items' titles (display order) and the reader's
        recent titles (newest first)."""
        start = time.perf_counter()
        n = min(self.top_n, len(titles))
        keep = list(range(len(titles)))
        if n < 2:
            return RerankResult(keep, False, "too_few", 0.0)
        messages = self.prompt.messages(
            history="\n".join(f"- {t}" for t in read_titles[: self.history]) or "- (nothing)",
            candidates="\n".join(f"{i + 1}. {t}" for i, t in enumerate(titles[:n])))
        future = _POOL.submit(complete_json, self.provider, messages, order_schema(n),
                              task="rerank", max_tokens=self.max_tokens, temperature=0.0,
                              timeout_s=self.budget_s, retries=0)
        try:
            answer, _ = future.result(timeout=self.budget_s)
        except (cf.TimeoutError, LLMTimeout):
            future.cancel()
            return RerankResult(keep, False, "timeout", time.perf_counter() - start)
        except LLMError as exc:
            reason = {"LLMInvalidOutput": "invalid", "LLMDisabled": "disabled"}.get(
                type(exc).__name__, "error")
            return RerankResult(keep, False, reason, time.perf_counter() - start)
        except Exception:  # a provider bug must not break the slate either
            return RerankResult(keep, False, "error", time.perf_counter() - start)
        order = [i - 1 for i in answer.order]
        if sorted(order) != list(range(n)):
            return RerankResult(keep, False, "invalid", time.perf_counter() - start)
        return RerankResult(order + keep[n:], True, "ok", time.perf_counter() - start)

    def apply(self, items: Sequence[T], titles: Sequence[str], read_titles: Sequence[str]
              ) -> tuple[list[T], RerankResult]:
        """`items` in the new order (the same items whatever happened) and the result."""
        result = self.rerank(titles, read_titles)
        return [items[i] for i in result.order], result
