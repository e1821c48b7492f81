"""The local model in a child process: what a serving process uses instead of `LocalProvider`.

Why: in the serving process the model's token loop shares the GIL with the request path.
Measured with every LLM feature on (`serve_load.py --quick --llm`, docs/llm.md): the
enrichment thread cost the request path its tail latency, and nicing the thread further made
it worse (the scheduler left the low-priority thread holding the GIL). A child process has
its own GIL; it runs at a low CPU priority (`nice`), so the model uses what serving leaves
idle, and the parent's calling thread only waits on a pipe.

    parent: complete() --(messages, options)--> pipe --> child: LocalProvider.complete()
            <------- Completion | (error kind, message) -------

One call at a time (the child holds one llama.cpp context). A child that dies is started
again on the next call; the call that saw it die raises `LLMUnavailable`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import threading
from collections.abc import Sequence
from typing import Any

from newsdesk.errors import LLMError, LLMInvalidOutput, LLMTimeout, LLMUnavailable
from newsdesk.llm.provider import Completion, JsonSchema, LLMProvider, Message, validate_messages
from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.llm.local_process")

_ERRORS: dict[str, type[LLMError]] = {
    "LLMTimeout": LLMTimeout, "LLMInvalidOutput": LLMInvalidOutput,
    "LLMUnavailable": LLMUnavailable, "LLMError": LLMError,
}
_START_TIMEOUT_S = 300.0  # spawn, import, load the weights


def _child(conn: Any, model: str, threads: int, context_tokens: int, nice: int) -> None:
    """The child's loop: load the model, then answer one request at a time until "close"."""
    with contextlib.suppress(OSError):  # not permitted here: run at the parent's priority
        os.nice(nice)
    try:
        from newsdesk.llm.local import LocalProvider

        provider = LocalProvider(model, threads=threads, context_tokens=context_tokens)
    except Exception as exc:  # the parent says why the model did not load
        conn.send(("error", "LLMUnavailable", f"local model did not load: "
                                              f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", provider.model))
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the parent is gone
            break
        if request is None:
            break
        messages, options = request
        try:
            conn.send(("ok", provider.complete(messages, **options)))
        except LLMError as exc:
            conn.send(("error", type(exc).__name__, str(exc)))
        except Exception as exc:  # noqa: BLE001 - the parent gets an LLMError, not a crash
            conn.send(("error", "LLMError", f"{type(exc).__name__}: {exc}"))
    provider.close()


class LocalProcessProvider(LLMProvider):
    """`LocalProvider` behind a pipe to a child process at nice `nice` (module docstring)."""

    name = "local"
    supports_json_schema = True

    def __init__(self, model: str, *, threads: int = 1, context_tokens: int = 2048,
                 nice: int = 19) -> None:
        self._spec = (model, threads, context_tokens, nice)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._proc: Any = None
        self._model = model
        self.starts = 0
        self._start()

    @classmethod
    def from_settings(cls, settings: Any) -> LocalProcessProvider:
        from newsdesk.llm.local import DEFAULT_MODEL

        return cls(settings.model or DEFAULT_MODEL, threads=settings.local_threads,
                   context_tokens=settings.local_context, nice=settings.local_process_nice)

    def _start(self) -> None:
        ctx = mp.get_context("spawn")  # never fork a process with threads
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(child, *self._spec), name="newsdesk-llm-local",
                           daemon=True)
        proc.start()
        child.close()
        if not parent.poll(_START_TIMEOUT_S):
            proc.kill()
            raise LLMUnavailable(f"local model process not ready in {_START_TIMEOUT_S:.0f} s",
                                 provider=self.name)
        kind, *rest = parent.recv()
        if kind != "ready":
            proc.join(5)
            raise _ERRORS.get(rest[0], LLMError)(rest[1], provider=self.name)
        self._conn, self._proc, self._model = parent, proc, rest[0]
        self.starts += 1
        log.info("llm_local_process_started", pid=proc.pid, model=self._model,
                 nice=self._spec[3])

    @property
    def model(self) -> str:
        return self._model

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        validate_messages(messages)
        options = {"max_tokens": max_tokens, "temperature": temperature, "timeout_s": timeout_s,
                   "json_schema": json_schema, "task": task}
        with self._lock:
            if self._proc is None or not self._proc.is_alive():
                self._start()
            try:
                self._conn.send((list(messages), options))
                # the child enforces timeout_s itself; the margin covers a stuck child
                if not self._conn.poll(timeout_s + 10.0):
                    self._kill()
                    raise LLMTimeout(f"local model process: no answer in {timeout_s + 10:.0f} s",
                                     provider=self.name, task=task)
                kind, *rest = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                self._kill()
                raise LLMUnavailable(f"local model process died: {type(exc).__name__}",
                                     provider=self.name, task=task) from exc
        if kind == "ok":
            completion: Completion = rest[0]
            return completion
        raise _ERRORS.get(rest[0], LLMError)(rest[1], provider=self.name, task=task)

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join(5)
        self._proc = None

    def close(self) -> None:
        with self._lock:
            if self._proc is None:
                return
            with contextlib.suppress(OSError):  # already gone
                self._conn.send(None)
            self._proc.join(10)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join(5)
            self._conn.close()
            self._proc = None
