"""`newsdesk serve --workers N`: N serving processes behind one port.

    parent (uvicorn's process manager)
      ├─ private redis-server  (unless --redis-url; unix socket + AOF in the state dir)
      ├─ worker 1  ─┐  each: the whole app (event loop + model thread), its own GIL
      ├─ worker 2  ─┤  accept() on the one listening socket the parent bound
      └─ ...       ─┘  shared: online store (Redis), event log (SQLite WAL / Redis Streams),
                       experiments (SQLite + rollout file), catalog and model changes
                       (`SharedState` log, applied by `ClusterSync`)

Why processes and not threads: the recommend path is mostly GIL-bound Python, so in one
process the event loop and the model thread take turns (at 200 req/s a third to two thirds of
answers fell back to trending). Why uvicorn's own process manager and not a front process
feeding a pool of model processes over pipes: every request would then pay two extra
serialisations and a hop, and the front process would still parse HTTP under one GIL; with
uvicorn workers the kernel spreads connections over processes that each do everything, and
uvicorn restarts a dead worker and drains all of them on SIGTERM. (gunicorn would add a
dependency for the same thing.)

One change to uvicorn's scheme: each worker binds its own listening socket with SO_REUSEPORT
(`ReusePortProcess`) instead of sharing one the parent bound. With one shared socket every
worker's event loop races for accept() and the busy one keeps winning (its loop is awake):
measured with serve_load's keep-alive client at 100 req/s, one of two workers used 13.6 s of
CPU and the other 0.1 s. With SO_REUSEPORT the kernel assigns each new connection to a worker
by a hash of its addresses.

Settings reach every worker as `NEWSDESK_*` environment variables (`ServeSettings` reads them),
so each worker builds the same app with `create_worker_app`, the factory uvicorn imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Process

from newsdesk.errors import ConfigError, MissingDependency
from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.settings import ServeSettings

log = get_logger("newsdesk.serving.workers")
FACTORY = "newsdesk.serving.workers:create_worker_app"


def default_workers() -> int:
    """NEWSDESK_WORKERS when set, else half the cores (at least one).

    Measured on 2 cores (benchmarks/serve_load.py --quick, results/serve_load_quick_w*.json):
    two workers over the private redis-server cost ~40% more CPU per request than one process
    (9.7 vs 7.0 ms at 100 req/s: Redis round trips and redis-server itself) and, with the
    load generator on the same cores, collapsed at 200 req/s where one process shed to
    trending; at 100 req/s one process had p99 14.7 ms against 36 ms. A worker's GIL caps it
    near one core, so half the cores leaves the rest to redis-server, the event-log writer and
    the OS; `--workers N` overrides it on machines where more pays.
    """
    raw = os.environ.get("NEWSDESK_WORKERS")
    if raw:
        try:
            return max(1, int(raw))
        except ValueError as exc:
            raise ConfigError(f"setting 'workers': NEWSDESK_WORKERS must be an integer, got "
                              f"{raw!r}") from exc
    return max(1, (os.cpu_count() or 1) // 2)


def settings_env(settings: ServeSettings) -> dict[str, str]:
    """The `NEWSDESK_*` variables that rebuild `settings` in a worker process."""
    env = {}
    for name in settings.model_fields_set:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            text = value.get_secret_value()
        elif isinstance(value, datetime):
            text = value.isoformat()
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, Path):
            text = str(value.resolve())
        else:
            text = str(value)
        env[f"NEWSDESK_{name.upper()}"] = text
    return env


def create_worker_app() -> Any:
    """The app of one worker: settings from the environment (see `run_workers`)."""
    from newsdesk.serving.app import create_app
    from newsdesk.serving.malloc_trim import tune_heap
    from newsdesk.serving.rebalance import RebalanceConnections

    settings = ServeSettings()  # type: ignore[call-arg]  # NEWSDESK_* set by the parent
    sys.setswitchinterval(settings.gil_switch_interval_ms / 1000)
    tune_heap(settings.malloc_trim_s, settings.malloc_mmap_threshold_kib)  # this process
    app = create_app(settings, store_factory=shared_store)
    if settings.connection_rebalance_requests == 0:
        return app
    # keep-alive clients move between workers now and then (see serving/rebalance.py)
    return RebalanceConnections(app, mean_requests=settings.connection_rebalance_requests)


def shared_store(settings: ServeSettings) -> Any:
    """The shared online store, behind a per-process article-stats cache (`stats_cache`)."""
    from newsdesk.features import open_online_store
    from newsdesk.features.stats_cache import StatsCachingStore

    if settings.online_store_url is None:
        raise ConfigError("setting 'online_store_url': a worker needs the shared store's URL")
    store = open_online_store(settings.online_store_url,
                              max_user_exposures=settings.online_store_exposures)
    if settings.stats_cache_ttl_s > 0:
        return StatsCachingStore(store, ttl_s=settings.stats_cache_ttl_s)
    return store


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port with SO_REUSEPORT (not listening yet: asyncio does)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class ReusePortProcess(Process):
    """A uvicorn worker listening on its own SO_REUSEPORT socket (see the module docstring)."""

    def __init__(self, config: Any, sockets: list[socket.socket]) -> None:
        self.parent_pid = os.getpid()  # runs in the parent (then pickled into the child)
        super().__init__(config, sockets)

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        from newsdesk.serving.managed_redis import die_with_parent

        # a SIGKILLed parent must not leave workers serving the port on their own; they die
        # with it as one process would (SIGTERM to the parent drains them instead)
        die_with_parent(signal.SIGKILL)
        if os.getppid() != self.parent_pid:  # it died before the line above
            sys.exit(0)
        try:
            sock = reuseport_socket(self.config.host, self.config.port)
        except OSError as exc:  # port taken: the parent stops instead of restarting us
            print(f"cannot listen on {self.config.host}:{self.config.port}: {exc}",
                  file=sys.stderr)
            sys.exit(STARTUP_FAILURE)
        super().target([sock])


@contextlib.contextmanager
def _reuseport_workers() -> Iterator[None]:
    """uvicorn's Multiprocess builds its workers from its module's `Process`; point it at
    ReusePortProcess while the supervisor runs (restarts included), in this process only."""
    from uvicorn.supervisors import multiprocess

    original = multiprocess.Process
    multiprocess.Process = ReusePortProcess  # type: ignore[misc]
    try:
        yield
    finally:
        multiprocess.Process = original  # type: ignore[misc]


def _serve(settings: ServeSettings, workers: int, access_log: bool) -> None:
    """uvicorn's process manager with per-worker SO_REUSEPORT sockets (nothing bound here)."""
    import uvicorn
    from uvicorn.supervisors.multiprocess import Multiprocess

    from newsdesk.serving.http_server import uvicorn_options

    config = uvicorn.Config(FACTORY, factory=True, workers=workers, access_log=access_log,
                            lifespan="on", **uvicorn_options(settings))
    with _reuseport_workers():
        Multiprocess(config, sockets=[]).run()


def _create_sqlite_files(settings: ServeSettings) -> None:
    """Create the SQLite files the workers share before they start. N workers opening a new
    database at once race on `PRAGMA journal_mode=WAL`, which fails with "database is locked"
    without waiting for the busy timeout (seen: a worker failed to start, so the parent
    stopped); on an existing WAL database it is a no-op."""
    from newsdesk.experiments.registry import SqliteExperimentRegistry
    from newsdesk.serving.app import default_event_log

    if settings.event_log_url is None or settings.event_log_url.startswith("sqlite"):
        default_event_log(settings).close()
    SqliteExperimentRegistry(settings.resolved_state_dir / "experiments.db").close()


def _check(settings: ServeSettings) -> None:
    url = settings.online_store_url
    if url is not None and url.startswith("memory"):
        raise ConfigError(f"setting 'online_store_url': {url!r} lives inside one process; "
                          f"with --workers > 1 leave it unset (a private redis-server is "
                          f"started) or pass --redis-url")
    if settings.event_log_url is not None and settings.event_log_url.startswith("memory"):
        raise ConfigError(f"setting 'event_log_url': {settings.event_log_url!r} lives inside "
                          f"one process; with --workers > 1 use sqlite:/// or redis://")


def run_workers(settings: ServeSettings, workers: int, *, access_log: bool = False) -> bool:
    """Run `workers` processes until SIGINT/SIGTERM; returns False (nothing run) when the
    private redis-server is needed and missing, so the caller can fall back to one process."""
    from newsdesk.serving.cluster import shared_state_path
    from newsdesk.serving.managed_redis import ManagedRedis
    from newsdesk.serving.shared_state import SharedState

    _check(settings)
    # Every worker binds the port itself with SO_REUSEPORT, which would also let it share the
    # port with a server already listening there (same user): check with a plain bind first.
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.host, settings.port))
        except OSError as exc:
            raise ConfigError(f"setting 'port': cannot listen on {settings.host}:"
                              f"{settings.port}: {exc.strerror}") from exc
        if settings.port == 0:  # choose it once, here, for every worker
            settings = settings.model_copy(update={"port": probe.getsockname()[1]})
    state_dir = settings.resolved_state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    env = settings_env(settings)
    env["NEWSDESK_WORKERS"] = str(workers)
    env["NEWSDESK_STATE_DIR"] = str(state_dir)
    managed = None
    if settings.online_store_url is None:
        managed = ManagedRedis(state_dir / "redis")
        try:
            managed.start()
        except MissingDependency as exc:
            log.warning("workers_fallback_to_one", reason=str(exc))
            print(f"warning: {exc}; serving with one process", file=sys.stderr)
            return False
        env["NEWSDESK_ONLINE_STORE_URL"] = managed.url
    try:
        shared = SharedState(shared_state_path(state_dir))
        shared.reset()  # a new service generation starts from its dataset and bundles
        shared.close()
        _create_sqlite_files(settings.model_copy(update={"state_dir": state_dir}))
        os.environ.update(env)  # spawned workers inherit it
        _serve(settings, workers, access_log)
    finally:
        if managed is not None:
            managed.stop()
    return True

