"""Per-client rate limits: a token bucket per client, in process or shared through Redis.

A client (its API key, else its address; the caller passes an opaque, already pseudonymised
name) owns a bucket of `burst` tokens refilled at `rate` tokens a second; a request takes one
token, or is refused with the seconds until one is available (the 429's Retry-After).

Backends, chosen by `make_rate_limiter` from the settings:

* `MemoryRateLimiter`: a dict of buckets in this process (one worker). Buckets idle long enough
  to be full again are dropped, so memory follows the active clients only.
* `RedisRateLimiter`: one small hash per client in the online store's Redis, updated by a Lua
  script that reads Redis's own clock (`TIME`), so every worker of `--workers N` (they share
  the private redis-server) and every replica on a shared Redis draws from the same bucket,
  atomically, with no clock skew between processes. One round trip per request (redis.asyncio:
  the event loop is not blocked). Keys expire once the bucket would be full again.

Failure policy: if Redis cannot be reached the request is *allowed* (and counted in the
`newsdesk_rate_limit_errors_total` metric): the limiter protects capacity, it must not take the
API down with the store; the circuit breaker and /readyz already report a store outage.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from typing import Any

from newsdesk.monitoring.logging import get_logger

log = get_logger("newsdesk.serving.rate_limit")


class RateLimiter(ABC):
    """Contract: `acquire(client)` takes one token from the client's bucket and returns 0.0,
    or takes nothing and returns the seconds (> 0) until a token is available. Buckets start
    full (`burst` tokens) and refill continuously at `rate` tokens/s up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 tokens/s, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = int(burst)

    @abstractmethod
    async def acquire(self, client: str) -> float:
        """0.0 when admitted, else the wait in seconds before retrying."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryRateLimiter(RateLimiter):
    """Buckets in this process (see the module docstring)."""

    def __init__(self, rate: float, burst: int, *, clock: Any = time.monotonic,
                 max_clients: int = 100_000) -> None:
        super().__init__(rate, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self._lock = threading.Lock()
        self._max_clients = max_clients

    def take(self, client: str) -> float:
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > self._max_clients:
                self._prune(now)
        return wait

    async def acquire(self, client: str) -> float:
        return self.take(client)

    def _prune(self, now: float) -> None:
        full_after = self.burst / self.rate
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full_after]:
            del self._buckets[key]


# KEYS[1]: the bucket; ARGV: rate, burst. Returns the wait in seconds as a string ("0": taken).
_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(v[1])
local at = tonumber(v[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter(RateLimiter):
    """Buckets in Redis, shared by every process using the same server and prefix."""

    def __init__(self, url: str, rate: float, burst: int, *, prefix: str = "nd:rl:",
                 on_error: Any = None, timeout_s: float = 0.05) -> None:
        super().__init__(rate, burst)
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:  # pragma: no cover - the [redis] extra
            from newsdesk.errors import ConfigError

            raise ConfigError("a shared rate limit needs the redis extra: "
                              "pip install 'newsdesk[redis]'") from exc
        self.prefix = prefix
        # short timeouts (setting rate_limit_timeout_ms, 50 ms): a slow Redis costs a request
        # at most that much here before it is let through
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout_s,
                                               socket_connect_timeout=2 * timeout_s)
        self._script = self._client.register_script(_BUCKET_LUA)
        self._on_error = on_error

    async def acquire(self, client: str) -> float:
        try:
            wait = await self._script(keys=[self.prefix + client],
                                      args=[self.rate, self.burst])
        except Exception as exc:  # fail open: see the module docstring
            if self._on_error is not None:
                self._on_error()
            log.warning("rate_limit_unavailable", error=f"{type(exc).__name__}: {exc}")
            return 0.0
        return float(wait)

    async def aclose(self) -> None:
        await self._client.aclose()


def retry_after_header(wait_s: float) -> str:
    """Retry-After is whole seconds (RFC 9110); never 0 for a refused request."""
    return str(max(1, math.ceil(wait_s)))


def make_rate_limiter(rate: float, burst: int, redis_url: str | None,
                      on_error: Any = None, timeout_s: float = 0.05) -> RateLimiter | None:
    """None when rate is 0 (off); shared through Redis when the online store is in Redis."""
    if rate <= 0:
        return None
    if redis_url is not None and redis_url.split("://", 1)[0] in ("redis", "rediss", "unix"):
        return RedisRateLimiter(redis_url, rate, burst, on_error=on_error, timeout_s=timeout_s)
    return MemoryRateLimiter(rate, burst)
