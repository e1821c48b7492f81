"""Typed settings of the serving app (pydantic-settings; env prefix `NEWSDESK_`).

Values come from keyword arguments (the CLI), then environment variables such as
`NEWSDESK_ADMIN_API_KEY`, then the defaults below. Unsafe values are refused at start with an
error that names the field: a short admin key, a latency budget smaller than a stage timeout,
an unbounded request size, a public bind address with admin enabled over plain HTTP unless
explicitly allowed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsdesk.errors import ConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
MIN_ADMIN_KEY_CHARS = 16


class ServeSettings(BaseSettings):
    """Everything the serving app reads at start; see the module docstring for sources."""

    model_config = SettingsConfigDict(env_prefix="NEWSDESK_", extra="forbid", frozen=True)

    dataset_dir: Path | None = None  # initial article catalog (articles table)
    bundles_dir: Path
    bundle_version: str | None = None  # None: the newest bundle
    # bundles in object storage (s3://bucket/prefix?endpoint_override=...): each one served is
    # first copied into bundles_dir and verified file by file (models/bundle_remote.py)
    bundles_url: str | None = None
    state_dir: Path | None = None  # online store + event log files; default bundles_dir/../state
    online_store_url: str | None = None  # redis://... or a memory/sqlite url; default in state_dir
    event_log_url: str | None = None  # default: sqlite file in state_dir

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    allow_public_bind: bool = False
    admin_api_key: SecretStr | None = None
    log_level: str = "info"

    # Latency budget of one recommendation request and the per-stage timeouts inside it (ms).
    budget_ms: float = Field(default=150.0, gt=0, le=10_000)
    personalised_timeout_ms: float = Field(default=120.0, gt=0)
    trending_timeout_ms: float = Field(default=25.0, gt=0)
    # Run the model in a worker thread (timeouts enforceable) or inline on the event loop
    # (no thread hop; the budget is then checked after the fact).
    inline_model: bool = False
    # The model is mostly GIL-bound Python: a second model thread only steals the event loop's
    # time (measured with benchmarks/serve_load.py: 1 thread / 2 in flight gave p99 43 ms at
    # 200 req/s vs 66 ms to minutes with 2 / 4). Past max_inflight (running + queued) a request
    # is shed to the fallbacks at once.
    model_threads: int = Field(default=1, ge=1, le=64)
    max_inflight_model_calls: int = Field(default=2, ge=1, le=10_000)
    # Move the loaded state out of the garbage collector's reach (gc.freeze) once it is loaded:
    # a full collection over a million readers' state holds the GIL ~1.3 s (serving/heap.py).
    gc_freeze: bool = True
    # GIL switch interval of the server process (ms; Python's default is 5): the event loop
    # thread waits up to this long for the GIL held by a model thread, on every wake-up.
    gil_switch_interval_ms: float = Field(default=1.0, gt=0, le=100)

    # Circuit breaker around the online store.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=2.0, gt=0)
    # How often the store is pinged off the request path while the circuit is open (s); a
    # passing ping closes it (serving/resilience.py BreakerProbe).
    breaker_probe_s: float = Field(default=0.25, gt=0, le=60)
    # The online store is reported slow on /readyz (still ready) when the median of its last
    # three health pings takes longer (ms): a request makes several store calls, so a few ms
    # per round trip already pushes answers past the personalised timeout (serving/state_keeper.py).
    slow_store_ms: float = Field(default=10.0, gt=0, le=10_000)

    # Request limits.
    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1_048_576)
    max_events_per_batch: int = Field(default=1000, ge=1, le=100_000)
    max_articles_per_batch: int = Field(default=500, ge=1, le=10_000)
    exposure_queue_size: int = Field(default=10_000, ge=1, le=1_000_000)

    # The service clock: wall time by default; set to an instant to serve a simulated or
    # replayed world "as of" then (the clock starts there and advances in real time).
    clock_start: datetime | None = None

    # Snapshot period of the embedded online store (s; 0 = never, the default). close()
    # always snapshots, and that is the snapshot a restart uses: a periodic one is written
    # while the process runs, so after a crash it is marked unclean and the state is rebuilt
    # from the dataset and the event log anyway (serving/state_keeper.py). Meanwhile it stalls
    # the service: measured at the full serve_load state (577k readers), 19 s per snapshot,
    # with store reads blocked up to 4.1 s (the copy holds the store's lock).
    online_store_snapshot_s: float = Field(default=0.0, ge=0)
    # Articles shown kept per reader in the online store (0 = none, the default): a bundle
    # trained with the opt-in story_exposures feature needs its features.recent_exposures
    # (100) here, or it refuses to load.
    online_store_exposures: int = Field(default=0, ge=0, le=1000)

    @field_validator("online_store_snapshot_s")
    @classmethod
    def _snapshot_period(cls, value: float) -> float:
        if 0 < value < 10:
            raise ValueError(f"online_store_snapshot_s must be 0 (never) or >= 10, got {value}")
        return value

    # Serving processes of `newsdesk serve` (the CLI defaults to the number of cores); above 1
    # the workers share their runtime changes (serving/cluster.py) and an online store in Redis.
    workers: int = Field(default=1, ge=1, le=64)
    # With several workers: how long a worker reuses article statistics read from the shared
    # store (s; 0 = read every time). See features/stats_cache.py for why 5 s.
    stats_cache_ttl_s: float = Field(default=5.0, ge=0, le=60)
    # With several workers: close a keep-alive connection after about this many responses, so
    # clients with few connections spread over the workers (serving/rebalance.py; 0 = never).
    connection_rebalance_requests: int = Field(default=100, ge=0, le=1_000_000)
    # How long the server keeps an idle keep-alive connection open (s): longer than clients'
    # pool expiry (httpx 5 s, load balancers 60 s), so the client closes first and never sends
    # on a connection the server is closing (serving/http_server.py says what that race did).
    keep_alive_s: float = Field(default=75.0, gt=0, le=3600)
    # How often the server process gives glibc's free heap pages back to the OS (s; 0 = never,
    # the default): measured worth ~1% of RSS in the soak, and each call walks the heap under
    # its locks (one took 50 ms at the full state), a stall on the request path for 1%
    # (serving/malloc_trim.py).
    malloc_trim_s: float = Field(default=0.0, ge=0, le=3600)
    # glibc's mmap threshold, pinned (KiB; 0 = glibc's dynamic threshold): larger blocks get a
    # mapping of their own, returned when freed, instead of leaving holes in the heap
    # (serving/malloc_trim.py).
    malloc_mmap_threshold_kib: int = Field(default=1024, ge=0, le=32 * 1024)

    # Shared Redis Stream event log: a consumer's pending events idle this long (s) are taken
    # over by another replica's consumer (the first one is presumed dead).
    event_claim_idle_s: float = Field(default=5.0, gt=0, le=3600)

    # Load the online store from dataset_dir at start (in the background, idempotent: a
    # marker in the store says what is already loaded). Off: readers start cold.
    bootstrap_store: bool = True

    # Catalog liveness: an article older than this (hours) is not live even without expires_at.
    live_max_age_hours: float | None = Field(default=None, gt=0)

    # Model and data monitoring (newsdesk.monitoring.drift): PSI above psi_threshold raises
    # the drift alarm; every drift_sample_every-th scored request puts its rows into a window
    # of drift_window_rows rows; PSI and the other gauges are refreshed every monitor_interval_s.
    psi_threshold: float = Field(default=0.2, gt=0, le=10)
    drift_window_rows: int = Field(default=5000, ge=100, le=1_000_000)
    drift_sample_every: int = Field(default=10, ge=1, le=100_000)
    monitor_interval_s: float = Field(default=15.0, ge=0.05, le=3600)

    # The ranker's trees (models.compiled_ranker): compiled by lleaves with plain LightGBM as
    # the logged fallback (auto), compiled or fail (compiled), or plain (lightgbm). Compiled
    # code is cached per host in this directory (default: .compiled-trees/ beside the bundles).
    ranker: Literal["auto", "compiled", "lightgbm"] = "auto"
    compiled_ranker_cache_dir: Path | None = None

    # The in-service rollout controller (serving/rollout_autopilot.py): the leader evaluates
    # every staged rollout this often (s; 0 = off). The leader holds a lease of this ttl (s) in
    # lease_url (default: the online store's Redis when it is one, else in-process).
    autopilot_interval_s: float = Field(default=5.0, ge=0, le=3600)
    leader_lease_ttl_s: float = Field(default=10.0, ge=0.5, le=3600)
    lease_url: str | None = None
    # Bandit experiments: how often each process re-reads the event log to update the
    # Thompson-sampling allocation (s).
    bandit_update_s: float = Field(default=1.0, ge=0.05, le=3600)

    # Exploration (serving/exploration.py): this share of each surface's requests, chosen by a
    # seeded hash of the request id, gets a Plackett-Luce slate over the ranker's scores at this
    # temperature, drawn from k + exploration_pool items, logged with exact propensities. 0 = off.
    # exploration_surfaces overrides per surface, JSON: {"front_page": {"share": 0.05,
    # "temperature": 0.5, "pool": 10}}.
    exploration_share: float = Field(default=0.0, ge=0.0, le=1.0)
    exploration_temperature: float = Field(default=1.0, gt=0.0, le=1000.0)
    exploration_pool: int = Field(default=10, ge=1, le=500)
    exploration_seed: int = Field(default=0, ge=0)
    exploration_surfaces: dict[str, dict[str, float]] | None = None
    # Poll period (s) of the bundles directory's ACTIVE pointer, which `newsdesk pipeline run`
    # rewrites on promotion; a change hot-swaps the model (serving/bundle_watcher.py). 0: off.
    watch_active_s: float = Field(default=2.0, ge=0, le=3600)

    # OpenTelemetry tracing of requests (extra [otel]): off | console | otlp.
    tracing: Literal["off", "console", "otlp"] = "off"

    # Security and privacy (serving/rate_limit.py, serving/privacy.py; docs/security.md).
    # Per-client token bucket over /v1 (client = API key, else address): rate_limit_per_s
    # tokens a second, bursts of rate_limit_burst; 0 turns it off. Shared across workers and
    # replicas through the online store's Redis when there is one.
    rate_limit_per_s: float = Field(default=0.0, ge=0, le=1_000_000)
    rate_limit_burst: int = Field(default=100, ge=1, le=10_000_000)
    # Redis round-trip timeout of the shared limit (connecting: twice that); past it the
    # request is let through and newsdesk_rate_limit_errors_total counts it (fail open).
    rate_limit_timeout_ms: float = Field(default=50.0, gt=0, le=10_000)
    # API keys of the public /v1 routes (comma-separated, each >= 16 characters); unset: open.
    api_keys: SecretStr | None = None
    # Key of the keyed hash that pseudonymises user ids in logs and the audit trail; unset: a
    # random key kept in the state dir (pseudonyms stable across restarts and workers).
    pseudonym_key: SecretStr | None = None
    # Retention of events (days) for `newsdesk retention apply`; unset: kept forever.
    retention_days: float | None = Field(default=None, gt=0, le=36_500)

    @field_validator("admin_api_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        if len(value.get_secret_value()) < MIN_ADMIN_KEY_CHARS:
            raise ValueError(f"must have at least {MIN_ADMIN_KEY_CHARS} characters")
        return value

    @field_validator("exploration_surfaces")
    @classmethod
    def _exploration_surfaces(cls, value: dict[str, dict[str, float]] | None
                              ) -> dict[str, dict[str, float]] | None:
        from newsdesk.serving.exploration import SurfaceExploration

        for name, spec in (value or {}).items():
            try:
                SurfaceExploration(**spec)
            except ValueError as exc:
                raise ValueError(f"surface {name!r}: {exc}") from exc
        return value

    @field_validator("api_keys")
    @classmethod
    def _strong_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        for i, key in enumerate(value.get_secret_value().split(",")):
            if len(key.strip()) < MIN_ADMIN_KEY_CHARS:
                raise ValueError(f"key {i} must have at least {MIN_ADMIN_KEY_CHARS} characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        allowed = {"debug", "info", "warning", "error"}
        if value.lower() not in allowed:
            raise ValueError(f"must be one of {sorted(allowed)}, got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _consistent(self) -> ServeSettings:
        for name in ("personalised_timeout_ms", "trending_timeout_ms"):
            if getattr(self, name) > self.budget_ms:
                raise ValueError(f"{name} ({getattr(self, name)}) exceeds budget_ms "
                                 f"({self.budget_ms})")
        if self.host not in LOOPBACK and not self.allow_public_bind:
            raise ValueError(f"host {self.host!r} is not loopback; set allow_public_bind=true "
                             "to listen on other interfaces (put TLS in front)")
        return self

    @property
    def resolved_state_dir(self) -> Path:
        return self.state_dir or (self.bundles_dir.parent / "serve-state")

    @property
    def admin_enabled(self) -> bool:
        return self.admin_api_key is not None

    @property
    def api_key_list(self) -> list[str]:
        """The public API keys (empty: the public routes are open)."""
        if self.api_keys is None:
            return []
        return [k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip()]


def load_settings(**values: object) -> ServeSettings:
    """Build settings, turning validation errors into a ConfigError that names the field."""
    try:
        return ServeSettings(**{k: v for k, v in values.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first.get("loc", ())) or "settings"
        raise ConfigError(f"setting '{name}': {first.get('msg')}") from exc
