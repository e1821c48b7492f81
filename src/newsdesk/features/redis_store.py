"""The online store in Redis, shared by several serving replicas.

Keys (all under `prefix`, default "nd:"):

    {p}meta            hash: epoch (the trending reference time, Unix s)
    {p}a:{article_id}  hash: imp, clk (raw counts); iv, ir / cv, cr (decayed impressions / clicks
                       as value at reference time); last (latest event ts). Expires after
                       `article_ttl_s` without events.
    {p}trending        sorted set: article_id -> clicks scaled to the epoch (see below)
    {p}u:{user_id}     list: "ts<TAB>article_id", newest first, capped (LPUSH + LTRIM)
    {p}markers         hash: the store's markers (bulk loads record what they loaded)
    {p}co:{article_id} sorted set: neighbour id -> co-clicks scaled to the row's epoch, kept in
                       {p}a:{article_id} field coe (features.covisitation); expires after
                       `covisit.ttl_s` without a co-click

Decayed updates run in one Lua script, so concurrent replicas never lose an increment.

Trending order without rewriting scores: a click at t is stored in the zset as
2**((t - epoch) / half_life) instead of 1. The decayed clicks of an article at `now` are
sum 2**(-(now - t_i) / half_life) = score * 2**(-(now - epoch) / half_life): the same factor
for every member, so the zset's order *is* the order by decayed clicks at any `now`, and
ZINCRBY keeps it valid with no periodic rewrite. Scores grow by 2x per half-life; before they
near a double's range (512 half-lives) the script re-bases every score to a new epoch.

Every redis error (refused, timeout, broken connection) becomes StoreUnavailable; sockets time
out after 50 ms and redis-py's retries are off, so a dead server fails fast instead of hanging
the request path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from newsdesk.data.schema import Impression, Interaction, InteractionType
from newsdesk.deps import require
from newsdesk.errors import ConfigError, StoreUnavailable
from newsdesk.features.covisitation import CoVisitParams
from newsdesk.features.dismissals import apply_dismissals
from newsdesk.features.online_store import (
    ArticleCounts,
    ArticleStats,
    Click,
    OnlineStore,
    decay_factor,
)

# KEYS: meta, trending, article keys...; ARGV: kind ('i'|'c'), half_life_s, ttl_s, then one
# (article_id, ts) pair per article key, so a whole batch of events is one script call.
_RECORD_LUA = """
local kind, hl, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local function fmt(x) return string.format('%.17g', x) end
local function decay(dt)
  local e = -dt / hl
  if e > 1000 then e = 1000 elseif e < -1000 then e = -1000 end
  return 2 ^ e
end
local cnt, vf, rf = 'imp', 'iv', 'ir'
local epoch = nil
if kind == 'c' then
  cnt, vf, rf = 'clk', 'cv', 'cr'
  epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
end
for i = 3, #KEYS do
  local id, ts_s = ARGV[2 * i - 2], ARGV[2 * i - 1]
  local ts = tonumber(ts_s)
  if kind == 'c' then
    if not epoch then
      epoch = ts
      redis.call('HSET', KEYS[1], 'epoch', ts_s)
    elseif (ts - epoch) / hl > 512 then
      local shift = decay(ts - epoch)
      local all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
      for j = 1, #all, 2 do
        redis.call('ZADD', KEYS[2], fmt(tonumber(all[j + 1]) * shift), all[j])
      end
      epoch = ts
      redis.call('HSET', KEYS[1], 'epoch', ts_s)
    end
  end
  local st = redis.call('HMGET', KEYS[i], vf, rf, 'last')
  local v, r, last = tonumber(st[1]), tonumber(st[2]), tonumber(st[3])
  if not v or v == 0 then v, r = 1, ts
  elseif ts >= r then v, r = v * decay(ts - r) + 1, ts
  else v = v + decay(r - ts) end
  if not last or ts > last then last = ts end
  redis.call('HINCRBY', KEYS[i], cnt, 1)
  redis.call('HSET', KEYS[i], vf, fmt(v), rf, fmt(r), 'last', fmt(last))
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  if kind == 'c' then
    redis.call('ZINCRBY', KEYS[2], fmt(2 ^ ((ts - epoch) / hl)), id)
  end
end
return #KEYS - 2
"""

# KEYS: trending, meta; ARGV: n. Top n plus every member tied with the n-th (ties -> by id).
_TOP_LUA = """
local top = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if #top == 0 or not epoch then return {{}, {}, '0'} end
local last = top[#top]
return {top, redis.call('ZRANGEBYSCORE', KEYS[1], last, last), epoch}
"""

# KEYS: article keys; ARGV: now, half_life_s. One call for a request's few hundred candidates
# (a pipeline of HMGETs costs ~20 us of redis-py per key: 6 ms at 300 candidates, more than the
# model). Decayed to `now` in the script with `decay_factor`'s clamp; the reply is one string
# "dc,di,clk,imp,..." (Lua numbers would come back truncated to integers).
_STATS_LUA = """
local now, hl = tonumber(ARGV[1]), tonumber(ARGV[2])
local out = {}
for i = 1, #KEYS do
  local st = redis.call('HMGET', KEYS[i], 'cv', 'cr', 'iv', 'ir', 'clk', 'imp')
  local dc, di = 0, 0
  local cv, iv = tonumber(st[1]), tonumber(st[3])
  if cv then
    local e = -(now - tonumber(st[2])) / hl
    if e > 1000 then e = 1000 elseif e < -1000 then e = -1000 end
    dc = cv * 2 ^ e
  end
  if iv then
    local e = -(now - tonumber(st[4])) / hl
    if e > 1000 then e = 1000 elseif e < -1000 then e = -1000 end
    di = iv * 2 ^ e
  end
  out[#out + 1] = string.format('%.17g,%.17g,%s,%s', dc, di, st[5] or '0', st[6] or '0')
end
return table.concat(out, ',')
"""

# Bulk merge of pre-aggregated article counts. KEYS: meta, trending, article keys...; ARGV:
# half_life_s, ttl_s, then 8 values per article key: id, imp, clk, iv, ir, cv, cr, last
# (value 0 / last 'nan' = none). Same arithmetic as the memory store's merge_decayed.
_MERGE_LUA = """
local hl, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local function fmt(x) return string.format('%.17g', x) end
local function decay(dt)
  local e = -dt / hl
  if e > 1000 then e = 1000 elseif e < -1000 then e = -1000 end
  return 2 ^ e
end
local function merge(v1, r1, v2, r2)
  if not v1 or v1 == 0 then return v2, r2 end
  if v2 == 0 then return v1, r1 end
  local r = math.max(r1, r2)
  return v1 * decay(r - r1) + v2 * decay(r - r2), r
end
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
for i = 3, #KEYS do
  local b = 2 + (i - 3) * 8
  local id = ARGV[b + 1]
  local imp, clk = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local iv, ir, cv, cr = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5]),
                         tonumber(ARGV[b + 6]), tonumber(ARGV[b + 7])
  local last = ARGV[b + 8]
  local st = redis.call('HMGET', KEYS[i], 'iv', 'ir', 'cv', 'cr', 'last')
  local niv, nir = merge(tonumber(st[1]), tonumber(st[2]), iv, ir)
  local ncv, ncr = merge(tonumber(st[3]), tonumber(st[4]), cv, cr)
  local old_last = tonumber(st[5])
  if last ~= 'nan' then
    local l = tonumber(last)
    if not old_last or l > old_last then old_last = l end
  end
  if imp > 0 then redis.call('HINCRBY', KEYS[i], 'imp', imp) end
  if clk > 0 then redis.call('HINCRBY', KEYS[i], 'clk', clk) end
  if niv ~= 0 then redis.call('HSET', KEYS[i], 'iv', fmt(niv), 'ir', fmt(nir)) end
  if ncv ~= 0 then redis.call('HSET', KEYS[i], 'cv', fmt(ncv), 'cr', fmt(ncr)) end
  if old_last then redis.call('HSET', KEYS[i], 'last', fmt(old_last)) end
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  if clk > 0 and cv > 0 then
    if not epoch then
      epoch = cr
      redis.call('HSET', KEYS[1], 'epoch', fmt(cr))
    end
    redis.call('ZINCRBY', KEYS[2], fmt(cv * 2 ^ ((cr - epoch) / hl)), id)
  end
end
return #KEYS - 2
"""

# Merge users' click lists by time. KEYS: user keys...; ARGV: cap, ttl_s, then per key the
# count n of new entries followed by n "ts<TAB>article_id" entries, newest first.
_MERGE_USERS_LUA = """
local cap, ttl = tonumber(ARGV[1]), tonumber(ARGV[2])
local a = 3
for i = 1, #KEYS do
  local n = tonumber(ARGV[a])
  local new = {}
  for j = 1, n do new[j] = ARGV[a + j] end
  a = a + n + 1
  local old = redis.call('LRANGE', KEYS[i], 0, cap - 1)
  local out, x, y = {}, 1, 1
  local function ts(e) return tonumber(string.match(e, '^[^\t]+')) end
  while #out < cap and (x <= #new or y <= #old) do
    if y > #old or (x <= #new and ts(new[x]) >= ts(old[y])) then
      out[#out + 1] = new[x]; x = x + 1
    else
      out[#out + 1] = old[y]; y = y + 1
    end
  end
  redis.call('DEL', KEYS[i])
  if #out > 0 then redis.call('RPUSH', KEYS[i], unpack(out)) end
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
end
return #KEYS
"""

# One co-click (a, b) at ts, one direction (features.covisitation: per-row epoch in the
# article hash's field coe, re-based past 2**64, cut back to top_k past 2 * top_k). Shared by
# the two scripts below; they build the keys of partner articles from the prefix (keys read
# from the user's list cannot be declared up front: fine on one server, not on a cluster).
_COVISIT_ADD = """
local function fmt(x) return string.format('%.17g', x) end
local function add(prefix, hl, k, ttl, ttl_a, a, b, ts)
  local key, hkey = prefix .. 'co:' .. a, prefix .. 'a:' .. a
  local card = redis.call('ZCARD', key)
  local epoch = tonumber(redis.call('HGET', hkey, 'coe'))
  if card == 0 or not epoch then
    epoch = ts
    redis.call('HSET', hkey, 'coe', fmt(ts))
    if ttl_a > 0 and redis.call('TTL', hkey) < 0 then redis.call('EXPIRE', hkey, ttl_a) end
  elseif (ts - epoch) / hl > 64 then
    local e = -(ts - epoch) / hl
    if e < -1000 then e = -1000 end
    local shift = 2 ^ e
    local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    for j = 1, #all, 2 do
      redis.call('ZADD', key, fmt(tonumber(all[j + 1]) * shift), all[j])
    end
    epoch = ts
    redis.call('HSET', hkey, 'coe', fmt(ts))
  end
  local e = (ts - epoch) / hl
  if e > 1000 then e = 1000 elseif e < -1000 then e = -1000 end
  redis.call('ZINCRBY', key, fmt(2 ^ e), b)
  if redis.call('ZCARD', key) > 2 * k then redis.call('ZREMRANGEBYRANK', key, 0, -(k + 1)) end
  redis.call('EXPIRE', key, ttl)
end
"""

# A click of b at ts by the reader of KEYS[1], run before the click is pushed to their list.
# ARGV: prefix, b, ts, half_life_s, session_gap_s, window, top_k, ttl_s, article_ttl_s.
_COVISIT_CLICK_LUA = _COVISIT_ADD + """
local prefix, b, ts = ARGV[1], ARGV[2], tonumber(ARGV[3])
local hl, gap, window = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local k, ttl, ttl_a = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
if string.byte(b, 1) == 0 then return 0 end
local prev = redis.call('LRANGE', KEYS[1], 0, window - 1)
local t, n = ts, 0
for i = 1, #prev do
  local tab = string.find(prev[i], '\t', 1, true)
  local pts, a = tonumber(string.sub(prev[i], 1, tab - 1)), string.sub(prev[i], tab + 1)
  if t - pts > gap then break end
  if a ~= b and string.byte(a, 1) ~= 0 then
    add(prefix, hl, k, ttl, ttl_a, a, b, ts)
    add(prefix, hl, k, ttl, ttl_a, b, a, ts)
    n = n + 1
  end
  t = pts
end
return n
"""

# Pre-computed co-clicks. ARGV: prefix, half_life_s, top_k, ttl_s, article_ttl_s, then
# (a, b, ts) triples.
_COVISIT_MERGE_LUA = _COVISIT_ADD + """
local prefix, hl, k = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local ttl, ttl_a = tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 6, #ARGV, 3 do
  local a, b, ts = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  add(prefix, hl, k, ttl, ttl_a, a, b, ts)
  add(prefix, hl, k, ttl, ttl_a, b, a, ts)
end
return (#ARGV - 5) / 3
"""

# KEYS: co keys..., then the same articles' hash keys; ARGV: limit. Per article: {epoch or
# '', member, score, ...} best first (decayed to the read time by the caller).
_COVISIT_READ_LUA = """
local n, limit = #KEYS / 2, tonumber(ARGV[1])
local out = {}
for i = 1, n do
  local row = redis.call('ZREVRANGE', KEYS[i], 0, limit - 1, 'WITHSCORES')
  table.insert(row, 1, redis.call('HGET', KEYS[n + i], 'coe') or '')
  out[i] = row
end
return out
"""

def _parse_clicks(items: Iterable[str]) -> list[Click]:
    """A user's click list as stored ("ts<TAB>article_id", newest first)."""
    clicks = []
    for item in items:
        ts, _, article_id = item.partition("\t")
        clicks.append(Click(article_id, float(ts)))
    return clicks


_SCRIPT_CHUNK = 1000  # article updates per script call
_CO_READ_CHUNK = 200  # co-visitation rows per script call (each up to `limit` pairs)
_FIELDS = ("imp", "clk", "iv", "ir", "cv", "cr", "last")


class RedisOnlineStore(OnlineStore):
    """OnlineStore over a Redis server (needs the [redis] extra).

    Args:
        url: redis://host:port/db.
        socket_timeout_s: per-command socket timeout; short, so a dead server fails fast.
        ready_timeout_s: the patience of `ready` (readiness): a server that answers within it
            is up, however slow for the request path.
        article_ttl_s / user_ttl_s: idle keys expire (0 = never).
        covisit: online co-visitation parameters (`features.covisitation`).
    """

    covisit: CoVisitParams  # always set: these backends count online co-visitation

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, half_life_hours: float = 6.0,
                 max_user_clicks: int = 50, max_user_exposures: int = 0, prefix: str = "nd:",
                 socket_timeout_s: float = 0.05, connect_timeout_s: float = 0.1,
                 ready_timeout_s: float = 0.5,
                 article_ttl_s: int = 30 * 86_400, user_ttl_s: int = 90 * 86_400,
                 covisit: CoVisitParams | None = None) -> None:
        if half_life_hours <= 0:
            raise ConfigError(f"half_life_hours must be > 0, got {half_life_hours}")
        if max_user_clicks < 1:
            raise ConfigError(f"max_user_clicks must be >= 1, got {max_user_clicks}")
        if max_user_exposures < 0:
            raise ConfigError(f"max_user_exposures must be >= 0, got {max_user_exposures}")
        if ready_timeout_s <= 0:
            raise ConfigError(f"ready_timeout_s must be > 0, got {ready_timeout_s}")
        redis = require("redis", "redis")
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.half_life_hours = half_life_hours
        self.max_user_clicks = max_user_clicks
        self.max_user_exposures = max_user_exposures
        self.prefix = prefix
        self.article_ttl_s = article_ttl_s
        self.user_ttl_s = user_ttl_s
        self.covisit = covisit or CoVisitParams()
        self._redis_error: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._client = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=connect_timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, decode_responses=True,
        )
        self._record = self._client.register_script(_RECORD_LUA)
        self._top = self._client.register_script(_TOP_LUA)
        self._stats = self._client.register_script(_STATS_LUA)
        self._co_click = self._client.register_script(_COVISIT_CLICK_LUA)
        self._co_read = self._client.register_script(_COVISIT_READ_LUA)
        # bulk loads run off the request path and may take longer than its 50 ms timeouts
        self._bulk_client = redis.Redis.from_url(
            url, socket_timeout=60.0, socket_connect_timeout=5.0, decode_responses=True)
        # readiness waits longer than requests, never as long as bulk loads (a paused server
        # must still be reported down within a readiness probe's budget)
        self._ready_client = redis.Redis.from_url(
            url, socket_timeout=ready_timeout_s, socket_connect_timeout=ready_timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, decode_responses=True)
        self._merge = self._bulk_client.register_script(_MERGE_LUA)
        self._merge_users = self._bulk_client.register_script(_MERGE_USERS_LUA)
        self._co_merge = self._bulk_client.register_script(_COVISIT_MERGE_LUA)
        self._meta, self._trending = f"{prefix}meta", f"{prefix}trending"
        self._markers = f"{prefix}markers"
        self._hl_s = repr(half_life_hours * 3600.0)

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._redis_error as exc:
            raise StoreUnavailable(f"redis online store {self.url}: {what} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc

    def _akey(self, article_id: str) -> str:
        return f"{self.prefix}a:{article_id}"

    def _ukey(self, user_id: str) -> str:
        return f"{self.prefix}u:{user_id}"

    def _xkey(self, user_id: str) -> str:
        """The reader's exposure list (articles shown, newest first), entries as clicks'."""
        return f"{self.prefix}x:{user_id}"

    # -- writes ----------------------------------------------------------------------------

    def _queue_record(self, client: Any, kind: str, pairs: Sequence[tuple[str, float]]) -> None:
        """Script calls counting an impression / click for each (article_id, ts); chunked so
        that one call never blocks the (single-threaded) server for long."""
        for start in range(0, len(pairs), _SCRIPT_CHUNK):
            chunk = pairs[start:start + _SCRIPT_CHUNK]
            args: list[Any] = [kind, self._hl_s, self.article_ttl_s]
            for article_id, ts in chunk:
                args += (article_id, repr(float(ts)))
            self._record(keys=[self._meta, self._trending, *(self._akey(a) for a, _ in chunk)],
                         args=args, client=client)

    def _queue_user(self, pipe: Any, user_id: str, article_ids: Sequence[str],
                    ts: float) -> None:
        key = self._ukey(user_id)
        pipe.lpush(key, *(f"{float(ts)!r}\t{a}" for a in article_ids))
        pipe.ltrim(key, 0, self.max_user_clicks - 1)
        if self.user_ttl_s > 0:
            pipe.expire(key, self.user_ttl_s)

    def _queue_exposures(self, pipe: Any, user_id: str, article_ids: Sequence[str],
                         ts: float) -> None:
        if self.max_user_exposures <= 0 or not article_ids:
            return
        key = self._xkey(user_id)
        pipe.lpush(key, *(f"{float(ts)!r}\t{a}" for a in article_ids))
        pipe.ltrim(key, 0, self.max_user_exposures - 1)
        if self.user_ttl_s > 0:
            pipe.expire(key, self.user_ttl_s)

    def record_exposures(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        if self.max_user_exposures <= 0 or not article_ids:
            return
        with self._errors("record_exposures"):
            pipe = self._client.pipeline(transaction=False)
            self._queue_exposures(pipe, user_id, article_ids, ts)
            pipe.execute()

    def record_impressions(self, article_ids: Sequence[str], ts: float) -> None:
        if not article_ids:
            return
        with self._errors("record_impressions"):
            self._queue_record(self._client, "i", [(a, ts) for a in article_ids])

    def record_clicks(self, user_id: str, article_ids: Sequence[str], ts: float) -> None:
        if not article_ids:
            return
        with self._errors("record_clicks"):
            pipe = self._client.pipeline(transaction=True)
            self._queue_record(pipe, "c", [(a, ts) for a in article_ids])
            for article_id in article_ids:  # each click pairs with the ones before it
                self._queue_covisit(pipe, user_id, article_id, ts)
                self._queue_user(pipe, user_id, [article_id], ts)
            pipe.execute()

    def record_events(self, events: Iterable[Impression | Interaction]) -> None:
        """The whole batch in one pipelined round trip: one script call for all impressions,
        one for all clicks (each atomic), then the users' click lists."""
        events = list(events)
        shown, clicked = self._split(events)
        if shown or clicked:
            with self._errors("record_events"):
                pipe = self._client.pipeline(transaction=False)
                self._queue_batch(pipe, shown, clicked)
                self._queue_slates(pipe, events)
                pipe.execute()
        with self._errors("record_events"):
            apply_dismissals(self, events)  # markers: a few readers, rarely in a batch

    def bulk_pipeline(self) -> Any:
        """A pipeline on the bulk client (long timeouts): for `queue_events` off the request
        path, such as a replay of the event log into an emptied store."""
        return self._bulk_client.pipeline(transaction=False)

    def queue_events(self, pipe: Any, events: Iterable[Impression | Interaction]) -> None:
        """Queue `record_events`'s commands on a caller's pipeline (of a client of the same
        server), so the caller can apply a batch inside its own MULTI/EXEC together with
        other commands (the event-log consumer's XACK: applied once)."""
        events = list(events)
        shown, clicked = self._split(events)
        self._queue_batch(pipe, shown, clicked)
        self._queue_slates(pipe, events)

    def _queue_slates(self, pipe: Any, events: Sequence[Impression | Interaction]) -> None:
        """Each impression's slate onto its reader's exposure list (when kept)."""
        if self.max_user_exposures <= 0:
            return
        for event in events:
            if isinstance(event, Impression):
                self._queue_exposures(pipe, event.user_id, event.article_ids,
                                      event.timestamp.timestamp())

    @staticmethod
    def _split(events: Iterable[Impression | Interaction]
               ) -> tuple[list[tuple[str, float]], list[tuple[str, str, float]]]:
        shown: list[tuple[str, float]] = []
        clicked: list[tuple[str, str, float]] = []
        for event in events:
            ts = event.timestamp.timestamp()
            if isinstance(event, Impression):
                shown += ((a, ts) for a in event.article_ids)
            elif event.type is InteractionType.CLICK:
                clicked.append((event.user_id, event.article_id, ts))
        return shown, clicked

    def _queue_batch(self, pipe: Any, shown: list[tuple[str, float]],
                     clicked: list[tuple[str, str, float]]) -> None:
        if shown:
            self._queue_record(pipe, "i", shown)
        if clicked:
            self._queue_record(pipe, "c", [(a, ts) for _, a, ts in clicked])
            for user_id, article_id, ts in clicked:
                self._queue_covisit(pipe, user_id, article_id, ts)
                self._queue_user(pipe, user_id, [article_id], ts)

    def _queue_covisit(self, pipe: Any, user_id: str, article_id: str, ts: float) -> None:
        """The co-clicks of one click, from the reader's list before the click is pushed."""
        c = self.covisit
        self._co_click(keys=[self._ukey(user_id)],
                       args=[self.prefix, article_id, repr(float(ts)),
                             repr(c.half_life_hours * 3600.0), repr(c.session_gap_s), c.window,
                             c.top_k, int(c.ttl_s), self.article_ttl_s], client=pipe)

    def same_server(self, client: Any) -> bool:
        """True when `client` (a redis-py client) talks to this store's server and database,
        so commands queued on its pipelines act on this store's keys."""
        def where(c: Any) -> tuple[Any, ...]:
            kw = c.connection_pool.connection_kwargs
            return (kw.get("host"), kw.get("port"), kw.get("path"), kw.get("db", 0))

        return where(client) == where(self._client)

    # -- bulk loading and markers -----------------------------------------------------------

    def merge_article_counts(self, counts: ArticleCounts) -> None:
        hl_s = float(self._hl_s)
        with self._errors("merge_article_counts"):
            for start in range(0, len(counts), _SCRIPT_CHUNK):
                stop = min(start + _SCRIPT_CHUNK, len(counts))
                ids = counts.ids[start:stop]
                args: list[Any] = [hl_s, self.article_ttl_s]
                cols = zip(ids, counts.impressions[start:stop].tolist(),
                           counts.clicks[start:stop].tolist(),
                           counts.imp_value[start:stop].tolist(),
                           counts.imp_ref[start:stop].tolist(),
                           counts.clk_value[start:stop].tolist(),
                           counts.clk_ref[start:stop].tolist(),
                           counts.last_ts[start:stop].tolist(), strict=True)
                for a, imp, clk, iv, ir, cv, cr, last in cols:
                    args += (a, imp, clk, repr(iv), repr(ir), repr(cv), repr(cr),
                             "nan" if last != last else repr(last))
                self._merge(keys=[self._meta, self._trending, *(self._akey(a) for a in ids)],
                            args=args)

    def merge_user_clicks(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        return self._merge_lists(users, self._ukey, self.max_user_clicks, "merge_user_clicks")

    def merge_user_exposures(self, users: Iterable[tuple[str, Sequence[Click]]]) -> int:
        if self.max_user_exposures <= 0:
            return sum(1 for _ in users)
        return self._merge_lists(users, self._xkey, self.max_user_exposures,
                                 "merge_user_exposures")

    def _merge_lists(self, users: Iterable[tuple[str, Sequence[Click]]],
                     key_of: Callable[[str], str], cap: int, what: str) -> int:
        n = 0
        keys: list[str] = []
        args: list[Any] = [cap, self.user_ttl_s]
        with self._errors(what):
            for user_id, clicks in users:
                keys.append(key_of(user_id))
                entries = [f"{float(c.ts)!r}\t{c.article_id}" for c in clicks[:cap]]
                args += (len(entries), *entries)
                n += 1
                if len(keys) >= _SCRIPT_CHUNK:
                    self._merge_users(keys=keys, args=args)
                    keys, args = [], [cap, self.user_ttl_s]
            if keys:
                self._merge_users(keys=keys, args=args)
        return n

    def merge_coclicks(self, pairs: Sequence[tuple[str, str, float]]) -> None:
        c = self.covisit
        head = [self.prefix, repr(c.half_life_hours * 3600.0), c.top_k, int(c.ttl_s),
                self.article_ttl_s]
        with self._errors("merge_coclicks"):
            for start in range(0, len(pairs), _SCRIPT_CHUNK):
                args: list[Any] = list(head)
                for a, b, ts in pairs[start:start + _SCRIPT_CHUNK]:
                    args += (a, b, repr(float(ts)))
                self._co_merge(keys=[], args=args)

    def read_marker(self, name: str) -> str | None:
        with self._errors("read_marker"):
            value = self._client.hget(self._markers, name)
        return None if value is None else str(value)

    def write_marker(self, name: str, value: str) -> None:
        with self._errors("write_marker"):
            self._client.hset(self._markers, name, value)

    def claim_marker(self, name: str, value: str) -> bool:
        with self._errors("claim_marker"):
            return bool(self._client.hsetnx(self._markers, name, value))

    def delete_marker(self, name: str) -> None:
        with self._errors("delete_marker"):
            self._client.hdel(self._markers, name)

    # -- reads -----------------------------------------------------------------------------

    def user_clicks(self, user_id: str, limit: int | None = None) -> list[Click]:
        count = self.max_user_clicks if limit is None else min(limit, self.max_user_clicks)
        if count <= 0:
            return []
        with self._errors("user_clicks"):
            items = self._client.lrange(self._ukey(user_id), 0, count - 1)
        return _parse_clicks(items)

    def user_exposures(self, user_id: str, limit: int | None = None) -> list[Click]:
        count = (self.max_user_exposures if limit is None
                 else min(limit, self.max_user_exposures))
        if count <= 0:
            return []
        with self._errors("user_exposures"):
            items = self._client.lrange(self._xkey(user_id), 0, count - 1)
        return _parse_clicks(items)

    def user_reads(self, user_id: str, limit: int | None, markers: Sequence[str]
                   ) -> tuple[list[Click], list[str | None]]:
        clicks, values, _ = self.user_reads_with_exposures(user_id, limit, markers, 0)
        return clicks, values

    def user_reads_with_exposures(self, user_id: str, limit: int | None,
                                  markers: Sequence[str], exposures: int
                                  ) -> tuple[list[Click], list[str | None], list[Click]]:
        count = self.max_user_clicks if limit is None else min(limit, self.max_user_clicks)
        shown = min(exposures, self.max_user_exposures)
        with self._errors("user_reads"):
            pipe = self._client.pipeline(transaction=False)
            pipe.lrange(self._ukey(user_id), 0, count - 1 if count > 0 else -1)
            if markers:
                pipe.hmget(self._markers, list(markers))
            if shown > 0:
                pipe.lrange(self._xkey(user_id), 0, shown - 1)
            got = pipe.execute()
        values = [None if v is None else str(v) for v in got[1]] if markers else []
        return (_parse_clicks(got[0] if count > 0 else []), values,
                _parse_clicks(got[-1]) if shown > 0 else [])

    def article_stats(self, article_ids: Sequence[str], now: float) -> list[ArticleStats]:
        if not article_ids:
            return []
        with self._errors("article_stats"):
            pipe = self._client.pipeline(transaction=False)
            for article_id in article_ids:
                pipe.hmget(self._akey(article_id), _FIELDS)
            rows = pipe.execute()
        hl = self.half_life_hours
        out = []
        for imp, clk, iv, ir, cv, cr, last in rows:
            if imp is None and clk is None:
                out.append(ArticleStats())
                continue
            out.append(ArticleStats(
                impressions=int(imp or 0),
                clicks=int(clk or 0),
                decayed_impressions=float(iv) * decay_factor(now - float(ir), hl) if iv else 0.0,
                decayed_clicks=float(cv) * decay_factor(now - float(cr), hl) if cv else 0.0,
                last_event_ts=float(last) if last is not None else None,
            ))
        return out

    def stats_matrix(self, article_ids: Sequence[str], now: float) -> np.ndarray:
        """One script call (see `_STATS_LUA`); chunked like the writes."""
        n = len(article_ids)
        out = np.zeros((n, 4), dtype=np.float64)
        with self._errors("stats_matrix"):
            for start in range(0, n, _SCRIPT_CHUNK):
                keys = [self._akey(a) for a in article_ids[start:start + _SCRIPT_CHUNK]]
                flat = self._stats(keys=keys, args=[repr(float(now)), self._hl_s])
                out[start:start + len(keys)] = np.array(flat.split(","),
                                                        dtype=np.float64).reshape(-1, 4)
        return out

    def coclick_neighbours(self, article_ids: Sequence[str], now: float, limit: int
                           ) -> list[list[tuple[str, float]]]:
        if not article_ids or limit <= 0:
            return [[] for _ in article_ids]
        rows: list[list[str]] = []
        with self._errors("coclick_neighbours"):
            # in chunks: CF's fold-in reads every fresh live article at once (thousands at
            # the full state), which in one script call outlasts the 50 ms socket timeout
            for start in range(0, len(article_ids), _CO_READ_CHUNK):
                part = article_ids[start:start + _CO_READ_CHUNK]
                keys = [f"{self.prefix}co:{a}" for a in part] + [self._akey(a) for a in part]
                rows.extend(self._co_read(keys=keys, args=[limit]))
        hl = self.covisit.half_life_hours
        out: list[list[tuple[str, float]]] = []
        for row in rows:
            if len(row) < 3 or not row[0]:
                out.append([])
                continue
            f = decay_factor(now - float(row[0]), hl)
            out.append([(row[i], float(row[i + 1]) * f) for i in range(1, len(row), 2)])
        return out

    def trending(self, n: int, now: float, *, candidates: Iterable[str] | None = None
                 ) -> list[tuple[str, float]]:
        if n <= 0:
            return []
        if candidates is not None:
            return self._trending_among(n, now, list(dict.fromkeys(candidates)))
        with self._errors("trending"):
            top, ties, epoch = self._top(keys=[self._trending, self._meta], args=[n])
        if not top:
            return []
        scores = {top[i]: float(top[i + 1]) for i in range(0, len(top), 2)}
        boundary = float(top[-1])
        for member in ties:  # members tied at the n-th score: order them by id, like memory
            scores[member] = boundary
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        factor = decay_factor(now - float(epoch), self.half_life_hours)
        return [(a, s * factor) for a, s in ranked if s * factor > 0.0]

    def _trending_among(self, n: int, now: float, ids: list[str]) -> list[tuple[str, float]]:
        if not ids:
            return []
        with self._errors("trending"):
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(self._meta, "epoch")
            pipe.zmscore(self._trending, ids)
            epoch, scores = pipe.execute()
        if epoch is None:
            return []
        factor = decay_factor(now - float(epoch), self.half_life_hours)
        scored = [(a, float(s) * factor) for a, s in zip(ids, scores, strict=True)
                  if s is not None and float(s) * factor > 0.0]
        return sorted(scored, key=lambda kv: (-kv[1], kv[0]))[:n]

    def prune(self, now: float, min_decayed_clicks: float = 1e-3) -> int:
        """Drop trending members whose decayed clicks fell below the floor; returns how many."""
        with self._errors("prune"):
            epoch = self._client.hget(self._meta, "epoch")
            if epoch is None:
                return 0
            floor = min_decayed_clicks / decay_factor(now - float(epoch), self.half_life_hours)
            return int(self._client.zremrangebyscore(self._trending, "-inf", f"({floor!r}"))

    def forget_user(self, user_id: str) -> bool:
        with self._errors("forget_user"):
            return bool(self._bulk_client.delete(self._ukey(user_id), self._xkey(user_id)))

    def patient(self) -> RedisOnlineStore:
        """A view over the same keys whose every command goes through the bulk client (60 s
        socket, 5 s connect): markers (the rebuild's lock and sentinel, the bootstrap's) went
        through the request path's 50 ms client, and on a loaded machine one late reply failed
        a rebuild -- or left its lock set by a claim whose reply came too late -- over and over
        (seen: a 823k-event rebuild that never finished). The view shares the clients: close
        the store, not the view."""
        view = copy.copy(self)
        view._client = self._bulk_client
        view._ready_client = self._bulk_client
        for name in ("_record", "_top", "_stats", "_co_click", "_co_read"):
            setattr(view, name, self._bulk_client.register_script(getattr(self, name).script))
        return view

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except self._redis_error:
            return False

    def ready(self) -> bool:
        try:
            return bool(self._ready_client.ping())
        except self._redis_error:
            return False

    def clear(self) -> None:
        """Delete every key under this store's prefix (tests, resets)."""
        with self._errors("clear"):
            keys = list(self._client.scan_iter(match=f"{self.prefix}*", count=1000))
            for start in range(0, len(keys), 1000):
                self._client.delete(*keys[start:start + 1000])

    def close(self) -> None:
        self._client.close()
        self._bulk_client.close()
        self._ready_client.close()
