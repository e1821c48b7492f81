"""Fixtures of the LLM tests: the real local model (in-process) and `newsdesk llm serve` as a
real process on a free port. Both skip with the install hint when the [llm] extra or the model
package is missing, and fail instead under CI (which installs them: a skip would hide a gap).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from newsdesk.errors import MissingDependency
from tests.llm.world import llm_log, llm_world, serve_time, warmed  # noqa: F401 - fixtures
from tests.serving.conftest import frozen_clock  # noqa: F401 - fixture


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def local_provider():
    """SmolLM2-135M-Instruct in this process (loaded once per session)."""
    from newsdesk.llm.local import LocalProvider

    try:
        provider = LocalProvider("smollm2-135m")
    except MissingDependency as exc:
        _skip_or_fail(str(exc))
    yield provider
    provider.close()


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`newsdesk llm serve` as a child process; yields its base URL (…/v1)."""
    from newsdesk.llm.local import resolve_model_path

    try:
        resolve_model_path("smollm2-135m")
        import cyllama  # noqa: F401
    except (MissingDependency, ImportError) as exc:
        _skip_or_fail(str(exc))
    port = _free_port()
    log = tmp_path_factory.mktemp("llm-serve") / "stderr.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "newsdesk.cli.main", "llm", "serve", "--port", str(port),
             "--model", "smollm2-135m"], stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llm serve exited with {process.returncode}: "
                                   f"{log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llm serve did not become healthy within 60 s")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
