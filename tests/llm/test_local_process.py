"""The local model in a child process (what a serving process uses): the real SmolLM2 model,
the same answers as in-process, a low CPU priority, timeouts and a child that dies."""

from __future__ import annotations

import os
import signal

import pytest

from newsdesk.errors import LLMTimeout, LLMUnavailable
from newsdesk.llm import user
from newsdesk.llm.local_process import LocalProcessProvider


@pytest.fixture(scope="module")
def child_provider(local_provider):  # local_provider: skips/fails when the model is missing
    provider = LocalProcessProvider("smollm2-135m", nice=19)
    yield provider
    provider.close()


def test_answers_like_the_in_process_model_from_a_niced_child(child_provider, local_provider):
    messages = [user("Name one German city.")]
    assert child_provider.complete(messages, max_tokens=6).text == \
        local_provider.complete(messages, max_tokens=6).text  # greedy: deterministic
    pid = child_provider.pid
    assert pid is not None and pid != os.getpid()
    assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    assert child_provider.model == local_provider.model


def test_timeout_in_the_child_reaches_the_caller(child_provider):
    with pytest.raises(LLMTimeout, match="within"):
        child_provider.complete([user("Write a long essay about journalism.")],
                                max_tokens=400, timeout_s=0.2)
    assert child_provider.complete([user("Say hi.")], max_tokens=3).completion_tokens > 0


def test_a_killed_child_is_started_again(child_provider):
    starts, pid = child_provider.starts, child_provider.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # the call that finds it dying says so (the operations layer retries it); the next one,
    # or this one when the death was already seen, runs on a new child
    try:
        child_provider.complete([user("Say hi.")], max_tokens=3)
    except LLMUnavailable as exc:
        assert "died" in str(exc)
    answer = child_provider.complete([user("Say hi.")], max_tokens=3)
    assert answer.completion_tokens > 0
    assert child_provider.starts == starts + 1 and child_provider.pid != pid


def test_close_stops_the_child(local_provider):
    provider = LocalProcessProvider("smollm2-135m")
    pid = provider.pid
    provider.close()
    assert provider.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]
