"""`newsdesk serve --workers 2`: two real serving processes behind one port.

A small simulated world and a trained bundle (the session fixture of test_bundle_serving), the
real command as a subprocess on 127.0.0.1, and clients pinned to one worker each (one
keep-alive connection per client: a connection stays with the process that accepted it). Run
twice: with the private redis-server the parent starts (the embedded default) and with an
external one (`--redis-url`). Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")

from tests.serving.conftest import ADMIN_KEY  # noqa: E402
from tests.serving.test_bundle_serving import (  # noqa: E402, F401 - the session fixture
    NEWSDESK,
    Trained,
    _free_port,
    trained,
)

pytestmark = [pytest.mark.ml, pytest.mark.slow, pytest.mark.redis]
ADMIN = {"X-API-Key": ADMIN_KEY}
OLD = "v-older-copy"


@dataclass
class Cluster:
    proc: subprocess.Popen[bytes]
    base: str
    log: Path
    state: Path
    trained: Trained
    bundles: Path

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                             text=True)
        return [int(p) for p in out.stdout.split()]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout_s} s: {what}"
        time.sleep(0.05)


def _copy_bundles(t: Trained, dest: Path) -> Path:
    """The trained bundle plus an older copy under another version (promote / rollback)."""
    shutil.copytree(t.bundles, dest)
    src = dest / next(p.name for p in dest.iterdir() if (p / "manifest.json").exists())
    shutil.copytree(src, dest / OLD)
    manifest = json.loads((dest / OLD / "manifest.json").read_text())
    manifest.update(version=OLD, created_at="2000-01-01T00:00:00+00:00")
    (dest / OLD / "manifest.json").write_text(json.dumps(manifest))
    return dest


@pytest.fixture(scope="module", params=["private-redis", "external-redis"])
def cluster(request: pytest.FixtureRequest, trained: Trained,  # noqa: F811
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("redis-server") is None:  # the private store needs the binary
        reason = "redis-server binary not found; install it with 'apt-get install redis-server'"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    root = tmp_path_factory.mktemp(f"workers-{request.param}")
    bundles = _copy_bundles(trained, root / "bundles")
    port = _free_port()
    log = root / "server.log"
    cmd = [*NEWSDESK, "serve", "--workers", "2", "--dataset", str(trained.dataset),
           "--bundles", str(bundles), "--port", str(port), "--state-dir", str(root / "state"),
           "--clock-start", trained.clock_start.isoformat(), "--log-level", "info"]
    if request.param == "external-redis":
        cmd += ["--redis-url", request.getfixturevalue("redis_server")]
    # clients stay pinned to one worker (no Connection: close to move them: rebalance.py)
    env = {**os.environ, "NEWSDESK_ADMIN_API_KEY": ADMIN_KEY, "HF_HUB_OFFLINE": "1",
           "NEWSDESK_CONNECTION_REBALANCE_REQUESTS": "0"}
    with log.open("wb") as stderr:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    c = Cluster(proc, f"http://127.0.0.1:{port}", log, root / "state", trained, bundles)
    try:
        _wait_ready(proc, c.base, log)
        yield c
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], base: str, log: Path) -> None:
    def ready() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(base + "/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    _wait(ready, 120, "readyz")


def _pinned_clients(c: Cluster, n: int = 2, timeout_s: float = 60) -> dict[int, httpx.Client]:
    """One keep-alive client per worker pid (new connections until every worker answered).

    Collected quickly and checked again: uvicorn closes a connection idle for 5 s, and the
    client's next connection may land on another worker; then start over."""
    deadline = time.monotonic() + timeout_s
    while True:
        clients: dict[int, httpx.Client] = {}
        for _ in range(50):
            client = httpx.Client(base_url=c.base, timeout=10,
                                  limits=httpx.Limits(max_connections=1))
            body = client.get("/readyz").json()
            if body.get("status") == "ready" and body["pid"] not in clients:
                clients[body["pid"]] = client
            else:
                client.close()
            if len(clients) == n:
                break
        if len(clients) == n and all(cl.get("/healthz").json()["pid"] == pid
                                     for pid, cl in clients.items() for _ in range(3)):
            return clients
        for client in clients.values():
            client.close()
        assert time.monotonic() < deadline, f"could not pin a client to each of {n} workers"
        time.sleep(0.5)


@pytest.fixture
def workers(cluster: Cluster) -> Iterator[list[httpx.Client]]:
    clients = _pinned_clients(cluster)
    yield list(clients.values())
    for client in clients.values():
        client.close()


def _recommend(client: httpx.Client, user: str, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/recommendations", json={"user_id": user, "k": 10, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_requests_reach_both_workers_and_they_are_children(cluster: Cluster,
                                                           workers: list[httpx.Client]) -> None:
    pids = {w.get("/healthz").json()["pid"] for w in workers}
    assert len(pids) == 2 and cluster.proc.pid not in pids
    assert pids <= set(cluster.children())
    for w in workers:
        rec = _recommend(w, cluster.trained.users[0])
        assert rec["degraded"] is False and len(rec["items"]) == 10


def test_article_put_through_one_worker_is_recommendable_from_the_other(
        cluster: Cluster, workers: list[httpx.Client]) -> None:
    a, b = workers
    user = cluster.trained.users[1]
    now = cluster.trained.clock_start.timestamp()
    fresh = {"article_id": f"breaking-{a.get('/healthz').json()['pid']}",
             "title": "Brand new story on quantum batteries", "abstract": "A battery.",
             "category": "zz-new", "published_at": datetime.fromtimestamp(now, UTC).isoformat()}
    start = time.monotonic()
    assert a.put("/v1/articles", json={"articles": [fresh]}).status_code == 200

    def seen() -> bool:
        rec = _recommend(b, user, filters={"category": ["zz-new"]})
        return [it["article_id"] for it in rec["items"]] == [fresh["article_id"]]

    _wait(seen, 2.0, "the article upserted through worker A recommended by worker B")
    assert time.monotonic() - start < 2.0
    assert b.get(f"/v1/articles/{fresh['article_id']}/related").status_code == 200

    # and a delete through B removes it from A's answers
    assert b.delete(f"/v1/articles/{fresh['article_id']}").status_code == 200
    _wait(lambda: a.get(f"/v1/articles/{fresh['article_id']}/related").status_code == 404, 2.0,
          "the article deleted through worker B gone from worker A")


def test_a_click_through_one_worker_changes_the_next_answer_of_the_other(
        cluster: Cluster, workers: list[httpx.Client]) -> None:
    a, b = workers
    user = cluster.trained.users[2]
    first = _recommend(b, user)
    clicked = first["items"][0]["article_id"]
    ack = a.post("/v1/events", json={"events": [
        {"type": "click", "event_id": f"wk-click-{user}", "user_id": user,
         "article_id": clicked, "request_id": first["request_id"]}]})
    assert ack.status_code == 200 and ack.json()["applied"] is True
    second = _recommend(b, user)  # the other process, at once: the store is shared
    assert [it["article_id"] for it in second["items"]] != [
        it["article_id"] for it in first["items"]]


def test_promote_and_rollback_through_one_worker_reach_every_worker(
        cluster: Cluster, workers: list[httpx.Client]) -> None:
    a, b = workers
    current = a.get("/readyz").json()["model_version"]
    assert b.get("/readyz").json()["model_version"] == current != OLD

    r = a.post(f"/v1/admin/bundles/{OLD}/promote", headers=ADMIN)
    assert r.status_code == 200, r.text
    swapped = time.monotonic()
    _wait(lambda: b.get("/readyz").json()["model_version"] == OLD, 2.0, "promote reaches B")
    assert time.monotonic() - swapped < 2.0
    assert _recommend(b, cluster.trained.users[0])["model_version"] == OLD

    r = b.post("/v1/admin/rollback", headers=ADMIN)
    assert r.status_code == 200 and r.json()["active"] == current
    _wait(lambda: a.get("/readyz").json()["model_version"] == current, 2.0,
          "rollback reaches A")
    assert _recommend(a, cluster.trained.users[0])["model_version"] == current


def test_a_killed_worker_is_replaced_and_catches_up(cluster: Cluster,
                                                    workers: list[httpx.Client]) -> None:
    a, b = workers
    # a change made before the crash must reach the replacement too
    now = cluster.trained.clock_start.timestamp()
    fresh = {"article_id": "before-crash", "title": "Story filed before the crash",
             "category": "zz-crash", "published_at": datetime.fromtimestamp(now, UTC).isoformat()}
    assert a.put("/v1/articles", json={"articles": [fresh]}).status_code == 200
    victim = b.get("/healthz").json()["pid"]
    before = set(cluster.children())
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: not _pid_alive(victim), 10, "the killed worker gone")
    replacements = _wait(lambda: set(cluster.children()) - before, 30,
                         "a replacement worker started")
    clients = _pinned_clients(cluster, timeout_s=120)
    assert victim not in clients and set(clients) & replacements
    new = clients[next(iter(set(clients) & replacements))]
    rec = _recommend(new, cluster.trained.users[0], filters={"category": ["zz-crash"]})
    assert [it["article_id"] for it in rec["items"]] == ["before-crash"]
    for client in clients.values():
        client.close()


def test_sigterm_stops_every_worker(cluster: Cluster, workers: list[httpx.Client]) -> None:
    pids = [w.get("/healthz").json()["pid"] for w in workers]
    children = cluster.children()  # workers (and the private redis-server)
    assert set(pids) <= set(children)
    for w in workers:
        w.close()
    cluster.proc.send_signal(signal.SIGTERM)
    cluster.proc.wait(timeout=60)
    assert cluster.proc.returncode in (0, -signal.SIGTERM), cluster.log.read_text()[-3000:]
    _wait(lambda: not any(_pid_alive(p) for p in children), 10, "every child stopped")
    assert not (cluster.state / "redis" / "redis.sock").exists()


def test_without_redis_server_the_embedded_default_falls_back_to_one_process(
        tmp_path: Path, trained: Trained) -> None:  # noqa: F811
    import sys

    port = _free_port()
    bin_dir = tmp_path / "bin"  # a PATH with python but no redis-server
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir), "HF_HUB_OFFLINE": "1"}
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*NEWSDESK, "serve", "--workers", "2", "--dataset", str(trained.dataset),
             "--bundles", str(trained.bundles), "--port", str(port), "--state-dir",
             str(tmp_path / "state"), "--clock-start", trained.clock_start.isoformat(),
             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(base + "/readyz", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        _wait(ready, 120, "readyz")
        assert "serving with one process" in log.read_text()
        # one process: the app runs in the parent itself
        pids = {httpx.get(base + "/healthz").json()["pid"] for _ in range(10)}
        assert pids == {proc.pid}
        rec = httpx.post(base + "/v1/recommendations",
                         json={"user_id": trained.users[0], "k": 5}).json()
        assert rec["degraded"] is False and len(rec["items"]) == 5
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def test_sigkill_of_the_parent_stops_the_workers(tmp_path: Path, trained: Trained,  # noqa: F811
                                                 redis_server: str) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [*NEWSDESK, "serve", "--workers", "2", "--dataset", str(trained.dataset),
             "--bundles", str(trained.bundles), "--port", str(port), "--state-dir",
             str(tmp_path / "state"), "--clock-start", trained.clock_start.isoformat(),
             "--redis-url", redis_server, "--log-level", "warning"],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=stderr)
    c = Cluster(proc, f"http://127.0.0.1:{port}", log, tmp_path / "state", trained,
                trained.bundles)
    try:
        _wait_ready(proc, c.base, log)
        clients = _pinned_clients(c, timeout_s=120)
        children = c.children()
        assert set(clients) <= set(children)
        for client in clients.values():
            client.close()
        proc.kill()  # a crash of the parent: the workers go with it, like one process
        proc.wait(timeout=10)
        _wait(lambda: not any(_pid_alive(p) for p in children), 30, "orphaned workers stopped")
        with pytest.raises(httpx.TransportError):
            httpx.get(c.base + "/healthz", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
