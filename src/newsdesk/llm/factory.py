"""Build the configured provider from settings: a short backend name, imported lazily.

`make_provider()` is what features call: it returns the backend wrapped in the operations
layer (switch, budgets, cache, concurrency, retries, breaker, metrics; llm/operations.py), so
no feature talks to a bare backend. `make_backend()` is the bare backend, for the server that
exposes the local model and for tests of a backend itself.
"""

from __future__ import annotations

from newsdesk.llm.provider import LLMProvider
from newsdesk.llm.settings import LLMSettings, load_llm_settings


def make_backend(settings: LLMSettings | None = None, *, serving: bool = False) -> LLMProvider:
    """The bare backend named by `settings.provider` (heavy imports only for the one chosen).
    `serving`: for a serving process, where the local model runs in a child process when
    `local_process` is on (llm/local_process.py)."""
    settings = settings or load_llm_settings()
    if settings.provider == "openai":
        from newsdesk.llm.openai_compat import OpenAICompatibleProvider

        return OpenAICompatibleProvider.from_settings(settings)
    if serving and settings.local_process:
        from newsdesk.llm.local_process import LocalProcessProvider

        return LocalProcessProvider.from_settings(settings)
    from newsdesk.llm.local import LocalProvider

    return LocalProvider.from_settings(settings)


def make_provider(settings: LLMSettings | None = None, *,
                  backend: LLMProvider | None = None) -> LLMProvider:
    """The configured backend (or `backend`, e.g. a test fake) behind the operations layer."""
    from newsdesk.llm.operations import GuardedProvider

    settings = settings or load_llm_settings()
    return GuardedProvider(backend if backend is not None else make_backend(settings), settings)
