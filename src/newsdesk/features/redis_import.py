"""Copy the embedded store's SQLite snapshot into a Redis online store, once.

`newsdesk serve` with one process keeps its online state in `state_dir/online.db` (the
`MemoryOnlineStore` snapshot). With several processes the state lives in Redis; this moves the
snapshot over on the first start, so switching `--workers` on an existing state dir keeps every
user's history and the article statistics. It writes the `RedisOnlineStore` key layout
directly (one pipelined round trip per chunk, not one Lua call per event) and marks the store
(`{prefix}meta` field `imported_snapshot`), so a second start does nothing.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from newsdesk.errors import StoreUnavailable
from newsdesk.features.online_store import decay_factor
from newsdesk.features.redis_store import RedisOnlineStore

_CHUNK = 2000  # rows per pipeline round trip
MARKER = "imported_snapshot"


def import_memory_snapshot(path: Path, store: RedisOnlineStore) -> dict[str, int]:
    """Load `path` (a MemoryOnlineStore snapshot) into an empty-of-it `store`.

    Returns counts {"articles", "users", "clicks"}; all zero when the store already holds an
    import or other state (its trending epoch is set), or when `path` does not exist.
    """
    client = store._client  # noqa: SLF001 - same package, same key layout
    meta = f"{store.prefix}meta"
    counts = {"articles": 0, "users": 0, "clicks": 0}
    if not path.exists():
        return counts
    with store._errors("import_memory_snapshot"):  # noqa: SLF001
        if client.hget(meta, MARKER) is not None or client.hget(meta, "epoch") is not None:
            return counts
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot read online store snapshot {path}: {exc}") from exc
    try:
        saved = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        epoch = None if saved.get("epoch", "None") == "None" else float(saved["epoch"])
        hl = store.half_life_hours
        with store._errors("import_memory_snapshot"):  # noqa: SLF001
            pipe = client.pipeline(transaction=False)
            pending = 0
            for (article_id, imp, clk, iv, ir, cv, cr, last) in conn.execute(
                    "SELECT * FROM articles"):
                fields: dict[str, str | int] = {"imp": int(imp), "clk": int(clk)}
                if iv:
                    fields.update(iv=repr(float(iv)), ir=repr(float(ir)))
                if cv:
                    fields.update(cv=repr(float(cv)), cr=repr(float(cr)))
                if last is not None:
                    fields["last"] = repr(float(last))
                key = f"{store.prefix}a:{article_id}"
                pipe.hset(key, mapping=fields)
                if store.article_ttl_s > 0:
                    pipe.expire(key, store.article_ttl_s)
                if cv and epoch is not None:  # the zset holds clicks scaled to the epoch
                    pipe.zadd(f"{store.prefix}trending",
                              {article_id: float(cv) * decay_factor(epoch - float(cr), hl)})
                counts["articles"] += 1
                pending += 1
                if pending >= _CHUNK:
                    pipe.execute()
                    pending = 0
            user, items = None, []

            def flush_user() -> None:
                key = f"{store.prefix}u:{user}"
                pipe.delete(key)
                pipe.rpush(key, *items[: store.max_user_clicks])
                if store.user_ttl_s > 0:
                    pipe.expire(key, store.user_ttl_s)
                counts["users"] += 1
                counts["clicks"] += min(len(items), store.max_user_clicks)

            for user_id, article_id, ts in conn.execute(
                    "SELECT user_id, article_id, ts FROM user_clicks ORDER BY user_id, pos"):
                if user_id != user:
                    if items:
                        flush_user()
                        pending += 1
                        if pending >= _CHUNK:
                            pipe.execute()
                            pending = 0
                    user, items = user_id, []
                items.append(f"{float(ts)!r}\t{article_id}")
            if items:
                flush_user()
            if epoch is not None:
                pipe.hset(meta, "epoch", repr(epoch))
            pipe.hset(meta, MARKER, str(path))
            pipe.execute()
    finally:
        conn.close()
    return counts
