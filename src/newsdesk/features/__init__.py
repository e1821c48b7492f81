"""Features: offline feature jobs and the online store.

Online store backends are chosen by a short URL and imported lazily::

    open_online_store("memory://")                      # in-process
    open_online_store("memory:///var/lib/nd/state.db")  # in-process, snapshotted to SQLite
    open_online_store("redis://127.0.0.1:6379/0")        # shared by several replicas
"""

from __future__ import annotations

from typing import Any

from newsdesk.errors import ConfigError
from newsdesk.features.online_store import ArticleStats, Click, OnlineStore, decay_factor

__all__ = ["ArticleStats", "Click", "OnlineStore", "decay_factor", "open_online_store"]


def open_online_store(url: str, **options: Any) -> OnlineStore:
    """Open the online store named by `url`; `options` go to the backend's constructor
    (half_life_hours, max_user_clicks, ...)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"online store url {url!r}: expected 'memory://' or 'redis://...'")
    if scheme == "memory":
        from newsdesk.features.memory_store import MemoryOnlineStore

        path = rest[1:] if rest.startswith("/") else rest  # memory:///rel.db, memory:////abs.db
        return MemoryOnlineStore(persist_path=path or None, **options)
    if scheme in ("redis", "rediss", "unix"):
        from newsdesk.features.redis_store import RedisOnlineStore

        return RedisOnlineStore(url, **options)
    raise ConfigError(
        f"online store url {url!r}: unknown scheme {scheme!r}; expected 'memory' or 'redis'"
    )
