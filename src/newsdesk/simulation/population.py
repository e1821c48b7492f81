"""Draw the latent population of a world: users, articles (with text) and pre-log histories.

Random streams are split from one `SeedSequence(config.seed)` by purpose, so changing e.g. the
traffic volume does not change the users or the catalog.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from newsdesk.data.schema import ARTICLES, HISTORIES
from newsdesk.simulation.config import SimulationConfig
from newsdesk.simulation.vocab import (
    BRAND_DE,
    BRANDS_EN,
    CATEGORIES,
    article_text,
    subcategory_names,
)
from newsdesk.simulation.world import World, diurnal

# stream ids of `rng_for`; traffic windows use (TRAFFIC, window_index)
USERS, ARTICLES_STREAM, TEXT, HISTORY, TRAFFIC = range(5)
HOUR = 3600.0


def rng_for(config: SimulationConfig, *key: int) -> np.random.Generator:
    """A generator for one purpose (`key`), independent of every other purpose."""
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _window_counts(rng: np.random.Generator, total: int, t0: float, t1: float, window_s: float,
                   peak_hour: float, amplitude: float) -> tuple[np.ndarray, np.ndarray]:
    """Window starts and a multinomial split of `total` events by diurnal rate x length."""
    starts = np.arange(t0, t1, window_s)
    lengths = np.minimum(starts + window_s, t1) - starts
    weights = diurnal(starts + lengths / 2, peak_hour, amplitude) * lengths
    return starts, rng.multinomial(total, weights / weights.sum())


def _to_us(t: np.ndarray) -> np.ndarray:
    return np.round(t * 1e6).astype(np.int64)


def build_world(config: SimulationConfig) -> World:
    """Users and articles of the world (no traffic); deterministic for the config.

    A `world="v2"` config builds a `WorldV2` (`population_v2.build_world_v2`)."""
    if config.world == "v2":
        from newsdesk.simulation.population_v2 import build_world_v2
        return build_world_v2(config)
    k = config.n_topics
    rng = rng_for(config, USERS)
    theta = rng.dirichlet(np.full(k, config.interest_concentration), size=config.n_users)
    theta = theta.astype(np.float32)
    sigma = config.activity_sigma
    activity = rng.lognormal(-sigma**2 / 2, sigma, size=config.n_users)

    rng = rng_for(config, ARTICLES_STREAM)
    t0 = config.start_unix - config.backlog_days * 86_400.0
    starts, counts = _window_counts(rng, config.n_articles, t0, config.end_unix,
                                    config.window_minutes * 60.0, config.publishing_peak_hour,
                                    config.diurnal_amplitude)
    lengths = np.minimum(starts + config.window_minutes * 60.0, config.end_unix) - starts
    win = np.repeat(np.arange(starts.size), counts)
    published = np.sort(starts[win] + rng.random(win.size) * lengths[win])
    published = _to_us(published) / 1e6
    cat_w = np.array([c.weight for c in CATEGORIES[:k]])
    topic = rng.choice(k, size=published.size, p=cat_w / cat_w.sum()).astype(np.int16)
    subtopic = rng.integers(0, 3, size=published.size).astype(np.int16)
    quality = rng.standard_normal(published.size)
    half_life = np.clip(
        config.half_life_median_hours * np.exp(config.half_life_sigma
                                               * rng.standard_normal(published.size)),
        1.0, 72.0) * HOUR
    expires = _to_us(published + config.live_half_lives * half_life) / 1e6
    return World(config, user_theta=theta, user_activity=activity, article_topic=topic,
                 article_subtopic=subtopic, article_quality=quality,
                 article_half_life=half_life, article_published=published,
                 article_expires=expires)


def articles_table(world: World) -> pa.Table:
    """The `articles` table of the world, with titles/abstracts from topic vocabularies."""
    if world.config.world == "v2":
        from newsdesk.simulation.population_v2 import articles_table_v2
        return articles_table_v2(world)  # type: ignore[arg-type]
    cfg = world.config
    n = world.n_articles
    rng = rng_for(cfg, TEXT)
    draws = rng.integers(0, 1 << 30, size=(n, 12))
    german = rng.random(n) < cfg.german_share
    brand_pick = rng.integers(0, len(BRANDS_EN), size=n)
    titles, abstracts, entities, cats, subs, langs, brands, urls = ([] for _ in range(8))
    for j in range(n):  # ~10 us per article; the catalog is small next to the traffic
        t, s = int(world.article_topic[j]), int(world.article_subtopic[j])
        lang = "de" if german[j] else "en"
        title, abstract, entity = article_text(t, s, lang, draws[j])
        cat, sub = CATEGORIES[t].name, subcategory_names(t)[s]
        brand = BRAND_DE if german[j] else BRANDS_EN[brand_pick[j]]
        titles.append(title)
        abstracts.append(abstract)
        entities.append([entity])
        cats.append(cat)
        subs.append(sub)
        langs.append(lang)
        brands.append(brand)
        urls.append(f"https://{brand}.example/{cat}/{sub}/a{j}")
    return articles_arrow(world, titles, abstracts, entities, cats, subs, langs, brands, urls)


def articles_arrow(world: World, titles: list[str], abstracts: list[str],
                   entities: list[list[str]], cats: list[str], subs: list[str],
                   langs: list[str], brands: list[str], urls: list[str]) -> pa.Table:
    """The `articles` table from per-article text columns and the world's times (v1 and v2)."""
    n = world.n_articles
    ts = pa.timestamp("us", tz="UTC")
    cols = {
        "article_id": pa.array([f"a{j}" for j in range(n)]),
        "title": pa.array(titles),
        "abstract": pa.array(abstracts),
        "body": pa.nulls(n, pa.string()),
        "category": pa.array(cats),
        "subcategory": pa.array(subs),
        "entities": pa.array(entities, pa.list_(pa.string())),
        "language": pa.array(langs),
        "url": pa.array(urls),
        "published_at": pa.array(_to_us(world.article_published), ts),
        "updated_at": pa.nulls(n, ts),
        "expires_at": pa.array(_to_us(world.article_expires), ts),
        "brand": pa.array(brands),
        "tags": pa.array([[c, s] for c, s in zip(cats, subs, strict=True)],
                         pa.list_(pa.string())),
    }
    return pa.table(cols, schema=ARTICLES)


def histories_table(world: World, max_per_user: int = 50) -> pa.Table:
    """Clicks before `start`: warm users get Poisson(history_mean * activity) articles of the
    backlog, topics drawn from their interests; `cold_share` of users get none (no row).
    A v2 world draws them by attraction (`population_v2.histories_table_v2`)."""
    if world.config.world == "v2":
        from newsdesk.simulation.population_v2 import histories_table_v2
        return histories_table_v2(world, max_per_user)  # type: ignore[arg-type]
    cfg = world.config
    rng = rng_for(cfg, HISTORY)
    n_users = world.n_users
    start = cfg.start_unix
    n_hist = np.minimum(rng.poisson(cfg.history_mean * world.user_activity), max_per_user)
    n_hist[rng.random(n_users) < cfg.cold_share] = 0
    backlog = np.flatnonzero(world.article_published < start)
    if backlog.size == 0:
        n_hist[:] = 0
    by_topic = backlog[np.argsort(world.article_topic[backlog], kind="stable")]
    per_topic = np.bincount(world.article_topic[backlog], minlength=world.n_topics)
    topic_start = np.concatenate([[0], np.cumsum(per_topic)[:-1]])
    users = np.repeat(np.arange(n_users), n_hist)
    picked = np.empty(users.size, dtype=np.int64)
    for lo in range(0, users.size, 1_000_000):  # bounded memory: (chunk, K) cumsum
        u = users[lo:lo + 1_000_000]
        cum = np.cumsum(world.user_theta[u].astype(np.float64), axis=1)
        topic = (rng.random(u.size)[:, None] * cum[:, -1:] > cum).sum(axis=1)
        topic = np.minimum(topic, world.n_topics - 1)
        # a topic without backlog articles falls back to any backlog article
        empty = per_topic[topic] == 0
        offs = (rng.random(u.size) * np.maximum(per_topic[topic], 1)).astype(np.int64)
        art = by_topic[np.minimum(topic_start[topic] + offs, max(backlog.size - 1, 0))]
        if empty.any():
            art[empty] = backlog[rng.integers(0, backlog.size, size=int(empty.sum()))]
        picked[lo:lo + u.size] = art
    return histories_arrow(world, users, picked)


def histories_arrow(world: World, users: np.ndarray, picked: np.ndarray) -> pa.Table:
    """The `histories` table of (user, article) index pairs: one entry per distinct pair, in
    publication order (article indices are chronological); readers without any get no row."""
    n_users = world.n_users
    start = world.config.start_unix
    key = np.unique(users.astype(np.int64) * world.n_articles + picked)
    users, picked = key // world.n_articles, key % world.n_articles
    n_hist = np.bincount(users, minlength=n_users)
    warm = np.flatnonzero(n_hist > 0)
    offsets = np.concatenate([[0], np.cumsum(n_hist[warm])]).astype(np.int32)
    values = ids("a", picked)
    user_ids = ids("u", warm)
    ts = pa.timestamp("us", tz="UTC")
    return pa.table({
        "user_id": user_ids,
        "article_ids": pa.ListArray.from_arrays(pa.array(offsets), values),
        "as_of": pa.array(np.full(warm.size, int(round(start * 1e6)), dtype=np.int64), ts),
    }, schema=HISTORIES)


def ids(prefix: str, idx: np.ndarray) -> pa.Array:
    """Vectorised string ids: prefix + decimal index (e.g. "u123") as an Arrow string array."""
    import pyarrow.compute as pc

    digits = pc.cast(pa.array(np.asarray(idx, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), digits, pa.scalar(""))
