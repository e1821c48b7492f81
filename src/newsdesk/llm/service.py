"""The LLM layer as one long-lived service of the serving app (or of a batch job).

Holds the settings, the global switch, the metrics and the guarded provider, built lazily on
first use so that a serving process starts (and answers) without waiting for a model load,
and one that never uses the LLM never loads it. Features get the provider from here; the
admin routes read and flip the switch here. The enrichment worker (llm/enrich_queue.py)
attaches itself as `enrich_queue`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from newsdesk.llm.factory import make_backend
from newsdesk.llm.metrics import LLMMetrics
from newsdesk.llm.operations import GuardedProvider
from newsdesk.llm.provider import LLMProvider
from newsdesk.llm.settings import LLMSettings, load_llm_settings
from newsdesk.llm.switch import LLMSwitch


class LLMService:
    """Switch + metrics + a lazily built guarded provider (see the module docstring)."""

    def __init__(self, settings: LLMSettings | None = None, *, state_dir: Path | None = None,
                 registry: CollectorRegistry | None = None,
                 backend: LLMProvider | None = None, serving: bool = False) -> None:
        self.settings = settings or load_llm_settings()
        self.metrics = LLMMetrics(registry)
        self.switch = (LLMSwitch.in_state_dir(self.settings.enabled, state_dir)
                       if state_dir is not None else LLMSwitch(self.settings.enabled))
        self._backend = backend
        self._serving = serving  # a serving process: the local model in a child process
        self._provider: GuardedProvider | None = None
        self._lock = threading.Lock()
        self.enrich_queue: Any = None  # set by EnrichQueue.attach
        self.metrics.enabled.set(1.0 if self.switch.enabled else 0.0)

    @property
    def enabled(self) -> bool:
        on = self.switch.enabled
        self.metrics.enabled.set(1.0 if on else 0.0)
        return on

    def set_enabled(self, enabled: bool, *, by: str = "admin") -> bool:
        on = self.switch.set(enabled, by=by)
        self.metrics.enabled.set(1.0 if on else 0.0)
        return on

    def provider(self) -> GuardedProvider:
        """The guarded provider (loads the model on first call: seconds for the local one)."""
        with self._lock:
            if self._provider is None:
                backend = self._backend if self._backend is not None else make_backend(
                    self.settings, serving=self._serving)
                self._provider = GuardedProvider(backend, self.settings, metrics=self.metrics,
                                                 switch=self.switch)
            return self._provider

    def status(self) -> dict[str, Any]:
        p = self._provider
        return {
            "enabled": self.enabled, "setting": self.settings.enabled,
            "runtime_flag": self.switch.runtime_flag(),
            "provider": self.settings.provider,
            "model": p.model if p is not None else self.settings.model,
            "loaded": p is not None,
            "breaker": p.breaker.state if p is not None else "closed",
            "requests_today": p.budget.requests if p is not None else 0,
            "cost_today": p.budget.cost if p is not None else 0.0,
            "enrich_queue": self.enrich_queue.status() if self.enrich_queue is not None
            else None,
        }

    def close(self) -> None:
        if self.enrich_queue is not None:
            self.enrich_queue.stop()
        with self._lock:
            if self._provider is not None:
                self._provider.close()
                self._provider = None
        self.switch.close()
