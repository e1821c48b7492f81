"""Typed settings of the LLM layer (pydantic-settings; env prefix `NEWSDESK_LLM_`).

Kept apart from the serving settings: the batch commands (`newsdesk enrich`, the benchmark)
read them too, without a serving config. Unsafe or inconsistent values are refused at start
with an error that names the field: an OpenAI-compatible provider without a base URL or model,
an API key sent over plain HTTP to a host that is not this machine, a zero budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsdesk.errors import ConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LLMSettings(BaseSettings):
    """Everything the LLM layer reads; environment variables `NEWSDESK_LLM_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="NEWSDESK_LLM_", extra="forbid", frozen=True)

    # The one global switch: off, every LLM feature takes its non-LLM path. At runtime the
    # admin route flips it for every worker (llm/switch.py); this is the value at start.
    enabled: bool = True

    # Which backend answers: "local" (a GGUF model in-process on the CPU) or "openai" (any
    # OpenAI-compatible chat-completions server: hosted, vLLM, Ollama, `newsdesk llm serve`).
    provider: Literal["local", "openai"] = "local"
    base_url: str | None = None  # e.g. http://127.0.0.1:8081/v1 (openai provider)
    # openai: the server's model name; local: a packaged model ("smollm2-135m",
    # "gemma3-270m") or a path to a .gguf file. None: the local default.
    model: str | None = None
    api_key: SecretStr | None = None
    allow_insecure_key: bool = False  # send the key over plain HTTP to a non-loopback host

    # Local runtime: CPU threads and context length (tokens). One thread by default: llama.cpp's
    # threads spin-wait for each other, and on a busy 2-core machine 2 threads made the same
    # call 3-5x slower than 1 (docs/llm.md).
    local_threads: int = Field(default=1, ge=1, le=256)
    local_context: int = Field(default=2048, ge=256, le=131_072)
    # true: in a serving process the local model runs in a child process (its own GIL) at
    # this nice value, so it uses the CPU serving leaves idle (llm/local_process.py). Off by
    # default: better below saturation in an A-B, but past it 3 of 4 runs had multi-second
    # p99 against 0 of 2 in-process (docs/llm.md, session 6). Batch jobs and `newsdesk llm
    # serve` always run the model in-process.
    local_process: bool = False
    local_process_nice: int = Field(default=19, ge=0, le=19)

    # Per call: the timeout (s), and retries with exponential backoff and full jitter:
    # sleep uniform(0, min(backoff_max_s, backoff_base_s * 2**attempt)).
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=2, ge=0, le=10)
    backoff_base_s: float = Field(default=0.25, ge=0, le=60)
    backoff_max_s: float = Field(default=4.0, ge=0, le=600)

    # Calls in flight at once (per process); callers past it wait, up to their timeout.
    concurrency: int = Field(default=2, ge=1, le=1024)
    # Budgets: provider calls per UTC day (per process; cache hits are free; None: no limit)
    # and the max_tokens cap per task ("default" applies to tasks not named).
    requests_per_day: int | None = Field(default=100_000, ge=1)
    max_tokens: dict[str, int] = Field(default_factory=lambda: {"default": 256, "enrich": 320})

    # Circuit breaker around the provider: open after this many consecutive failures, try
    # again after reset_s.
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    breaker_reset_s: float = Field(default=30.0, gt=0, le=3600)

    # Response cache (SQLite) keyed by (content hash, prompt version, model); None: no cache.
    cache_path: Path | None = None

    # Enrichment of articles upserted through the API, by a background worker (llm/enrich_queue.py):
    # off by default (it loads the model and spends a core); the queue is bounded and drops,
    # with a metric, what does not fit.
    enrich_on_upsert: bool = False
    enrich_queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    # The worker thread's nice value (Linux, per thread). With `local_process` on, the model
    # itself runs in a child process and this thread mostly waits on it.
    enrich_nice: int = Field(default=10, ge=0, le=19)
    # Before each article (and, with the in-process model, each token) the worker waits
    # while the serving process's recommend path spends more than this many seconds per
    # second in its stages (serving/load_signal.py): the model uses the idle time and the
    # queue holds the backlog. 0: never wait.
    enrich_yield_above: float = Field(default=0.25, ge=0, le=64)

    # Prices for the cost estimate, in currency units per million tokens (0: free/local).
    price_prompt_per_mtok: float = Field(default=0.0, ge=0)
    price_completion_per_mtok: float = Field(default=0.0, ge=0)

    @field_validator("max_tokens")
    @classmethod
    def _positive_caps(cls, value: dict[str, int]) -> dict[str, int]:
        for task, cap in value.items():
            if cap < 1:
                raise ValueError(f"max_tokens[{task!r}] must be at least 1, got {cap}")
        return {"default": 256, **value}

    @model_validator(mode="after")
    def _consistent(self) -> LLMSettings:
        if self.provider == "openai":
            if not self.base_url:
                raise ValueError("provider 'openai' needs base_url (NEWSDESK_LLM_BASE_URL)")
            if not self.model:
                raise ValueError("provider 'openai' needs model (NEWSDESK_LLM_MODEL)")
        if self.base_url:
            url = urlparse(self.base_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ValueError(f"base_url must be an http(s) URL, got {self.base_url!r}")
            if (self.api_key is not None and url.scheme == "http"
                    and url.hostname not in LOOPBACK and not self.allow_insecure_key):
                raise ValueError("api_key would be sent over plain http to "
                                 f"{url.hostname!r}; use https or allow_insecure_key=true")
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) is below backoff_base_s "
                             f"({self.backoff_base_s})")
        return self

    def max_tokens_for(self, task: str) -> int:
        return self.max_tokens.get(task, self.max_tokens["default"])


def load_llm_settings(**values: object) -> LLMSettings:
    """Build settings, turning validation errors into a ConfigError that names the field."""
    try:
        return LLMSettings(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"setting 'llm.{name}': {first.get('msg')}") from exc
