"""Draw a world-v2 population: stories, entities, readers who follow them, and the catalog.

Articles (exactly `config.n_articles`, numbered in publication order as in v1):
* a `story_share` of them belong to stories. Stories start uniformly over the period, have a
  topic (v1's volume weights), a subcategory, three entities of their topic, a lognormal
  duration (median `story_duration_median_hours`) and a lognormal weight; the story articles
  are split among the stories by a multinomial of those weights, and published front-loaded
  over the story's duration (start + D * U ** 1.5). A `breaking_share` of stories break: their
  weight is multiplied by `breaking_volume` and their articles fall within `burst_hours` of
  the start (start + burst_hours * U ** 2): a sudden burst of articles;
* the rest are standalone articles published like v1's (diurnal), mentioning one entity.
Readers: v1's topic interests and activity (the same draws as a v1 world of the same seed),
plus a language preference (German with probability `german_share`), a mobile share, a dismiss
rate, and 1..4 followed entities (topic from theta, entity by a Zipf popularity in the topic).
Histories: each warm reader's pre-log clicks are backlog articles drawn without replacement in
proportion to the v2 attraction one hour after publication (Gumbel top-k), so they carry the
story and entity signal too.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from newsdesk.simulation.config import SimulationConfig
from newsdesk.simulation.population import (
    ARTICLES_STREAM,
    HISTORY,
    HOUR,
    TEXT,
    USERS,
    _to_us,
    _window_counts,
    articles_arrow,
    histories_arrow,
    rng_for,
)
from newsdesk.simulation.vocab import BRAND_DE, BRANDS_EN, CATEGORIES, subcategory_names
from newsdesk.simulation.vocab_v2 import article_text_v2, story_name, topic_entities
from newsdesk.simulation.world_v2 import MAX_FOLLOWED_ENTITIES, STORY_ENTITIES, WorldV2

V2_USERS = 16  # stream ids beyond v1's, so that v1's streams stay untouched
ENTITY_ZIPF = 0.8


def _entity_table(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(entity_topic, entity_kind, first entity id of each topic, entities per topic)."""
    _, topic, kind = topic_entities(k)
    per_topic = np.bincount(topic, minlength=k)
    first = np.concatenate([[0], np.cumsum(per_topic)[:-1]])
    return topic, kind, first, per_topic


def _zipf_entities(rng: np.random.Generator, topics: np.ndarray, first: np.ndarray,
                   per_topic: np.ndarray) -> np.ndarray:
    """One entity id per entry of `topics`, Zipf-popular within the topic."""
    out = np.empty(topics.size, dtype=np.int32)
    r = rng.random(topics.size)
    for t in range(per_topic.size):
        sel = topics == t
        w = 1.0 / np.arange(1, per_topic[t] + 1) ** ENTITY_ZIPF
        cdf = np.cumsum(w) / w.sum()
        out[sel] = first[t] + np.minimum(np.searchsorted(cdf, r[sel], side="right"),
                                         per_topic[t] - 1)
    return out


def _topics_from_theta(rng: np.random.Generator, theta: np.ndarray) -> np.ndarray:
    cum = np.cumsum(theta.astype(np.float64), axis=1)
    u = np.asarray(rng.random(theta.shape[0]))
    picked: np.ndarray = (u[:, None] * cum[:, -1:] > cum).sum(axis=1)
    return np.minimum(picked, theta.shape[1] - 1)


def build_world_v2(config: SimulationConfig) -> WorldV2:
    """Users, stories, entities and articles of a v2 world (no traffic); deterministic."""
    k = config.n_topics
    rng = rng_for(config, USERS)  # identical to v1: same readers' topics and activity
    theta = rng.dirichlet(np.full(k, config.interest_concentration),
                          size=config.n_users).astype(np.float32)
    sigma = config.activity_sigma
    activity = rng.lognormal(-sigma**2 / 2, sigma, size=config.n_users)
    entity_topic, entity_kind, first, per_topic = _entity_table(k)

    rng = rng_for(config, V2_USERS)
    n_u = config.n_users
    user_lang = (rng.random(n_u) < config.german_share).astype(np.int8)
    m = config.mobile_share_mean
    user_mobile = rng.beta(4.0 * m, 4.0 * (1.0 - m), size=n_u)
    user_dismiss = np.where(rng.random(n_u) < config.dismisser_share, config.dismiss_rate, 0.0)
    n_follow = np.minimum(1 + rng.poisson(config.entities_followed_mean - 1.0, size=n_u),
                          MAX_FOLLOWED_ENTITIES)
    user_entities = np.full((n_u, MAX_FOLLOWED_ENTITIES), -1, dtype=np.int32)
    for slot in range(MAX_FOLLOWED_ENTITIES):
        ent = _zipf_entities(rng, _topics_from_theta(rng, theta), first, per_topic)
        dup = (user_entities[:, :slot] == ent[:, None]).any(axis=1)
        user_entities[:, slot] = np.where((slot < n_follow) & ~dup, ent, -1)

    rng = rng_for(config, ARTICLES_STREAM, 2)
    t0 = config.start_unix - config.backlog_days * 86_400.0
    t1 = config.end_unix
    n_total = config.n_articles
    n_story_articles = int(round(config.story_share * n_total))
    cat_w = np.array([c.weight for c in CATEGORIES[:k]])
    cat_p = cat_w / cat_w.sum()
    n_s = max(1, int(round(n_story_articles / config.story_mean_articles)))
    s_topic = rng.choice(k, size=n_s, p=cat_p).astype(np.int16)
    s_sub = rng.integers(0, 3, size=n_s).astype(np.int16)
    s_start = _to_us(t0 + rng.random(n_s) * max(t1 - t0 - 1800.0, 1.0)) / 1e6
    s_dur = np.clip(config.story_duration_median_hours * np.exp(0.7 * rng.standard_normal(n_s)),
                    3.0, 120.0) * HOUR
    s_breaking = rng.random(n_s) < config.breaking_share
    s_weight = rng.lognormal(0.0, 0.8, size=n_s) * np.where(s_breaking,
                                                            config.breaking_volume, 1.0)
    # three distinct entities of the story's topic (random keys, invalid slots sort last)
    keys = rng.random((n_s, int(per_topic.max())))
    keys[np.arange(keys.shape[1])[None, :] >= per_topic[s_topic][:, None]] = np.inf
    s_entities = (first[s_topic][:, None]
                  + np.argsort(keys, axis=1)[:, :STORY_ENTITIES]).astype(np.int32)
    s_codeword = rng.integers(0, 1 << 20, size=n_s).astype(np.int32)
    s_noun = rng.integers(0, 1 << 20, size=n_s).astype(np.int32)

    counts = rng.multinomial(n_story_articles, s_weight / s_weight.sum())
    story_of = np.repeat(np.arange(n_s), counts)
    span = np.where(s_breaking, config.burst_hours * HOUR, s_dur)[story_of]
    span = np.minimum(span, t1 - s_start[story_of] - 1.0)
    shape = np.where(s_breaking[story_of], 2.0, 1.5)
    story_times = s_start[story_of] + span * rng.random(story_of.size) ** shape

    n_alone = n_total - n_story_articles
    starts, wcounts = _window_counts(rng, n_alone, t0, t1, config.window_minutes * 60.0,
                                     config.publishing_peak_hour, config.diurnal_amplitude)
    lengths = np.minimum(starts + config.window_minutes * 60.0, t1) - starts
    win = np.repeat(np.arange(starts.size), wcounts)
    alone_times = starts[win] + rng.random(win.size) * lengths[win]

    times = np.concatenate([story_times, alone_times])
    story = np.concatenate([story_of, np.full(n_alone, -1)]).astype(np.int32)
    order = np.argsort(times, kind="stable")
    published = _to_us(times[order]) / 1e6
    story = story[order]
    is_story = story >= 0
    sc = np.where(is_story, story, 0)
    topic = np.where(is_story, s_topic[sc],
                     rng.choice(k, size=n_total, p=cat_p)).astype(np.int16)
    subtopic = np.where(is_story, s_sub[sc],
                        rng.integers(0, 3, size=n_total)).astype(np.int16)
    quality = rng.standard_normal(n_total)
    half_life = np.clip(
        config.half_life_median_hours * np.exp(config.half_life_sigma
                                               * rng.standard_normal(n_total)),
        1.0, 72.0) * HOUR
    expires = _to_us(published + config.live_half_lives * half_life) / 1e6
    article_entities = np.full((n_total, 2), -1, dtype=np.int32)
    second = s_entities[sc, 1 + rng.integers(0, STORY_ENTITIES - 1, size=n_total)]
    article_entities[:, 0] = np.where(is_story, s_entities[sc, 0],
                                      _zipf_entities(rng, topic, first, per_topic))
    article_entities[:, 1] = np.where(is_story, second, -1)
    article_lang = (rng.random(n_total) < config.german_share).astype(np.int8)

    return WorldV2(
        config, user_theta=theta, user_activity=activity, article_topic=topic,
        article_subtopic=subtopic, article_quality=quality, article_half_life=half_life,
        article_published=published, article_expires=expires,
        user_lang=user_lang, user_mobile=user_mobile, user_dismiss=user_dismiss,
        user_entities=user_entities, article_story=story, article_entities=article_entities,
        article_lang=article_lang, story_topic=s_topic, story_subtopic=s_sub,
        story_start=s_start, story_breaking=s_breaking, story_entities=s_entities,
        story_codeword=s_codeword, story_noun=s_noun, entity_topic=entity_topic,
        entity_kind=entity_kind)


def articles_table_v2(world: WorldV2) -> pa.Table:
    """The `articles` table of a v2 world: titles and abstracts carry story and entities."""
    cfg = world.config
    n = world.n_articles
    names, _, _ = topic_entities(world.n_topics)
    rng = rng_for(cfg, TEXT)
    draws = rng.integers(0, 1 << 30, size=(n, 10))
    brand_pick = rng.integers(0, len(BRANDS_EN), size=n)
    titles, abstracts, entities, cats, subs, langs, brands, urls = ([] for _ in range(8))
    for j in range(n):
        t, s = int(world.article_topic[j]), int(world.article_subtopic[j])
        st = int(world.article_story[j])
        german = bool(world.article_lang[j])
        lang = "de" if german else "en"
        story = None if st < 0 else story_name(t, s, int(world.story_codeword[st]),
                                                int(world.story_noun[st]))
        ents = [names[e] for e in world.article_entities[j] if e >= 0]
        title, abstract = article_text_v2(t, s, lang, story, ents, draws[j])
        cat, sub = CATEGORIES[t].name, subcategory_names(t)[s]
        brand = BRAND_DE if german else BRANDS_EN[brand_pick[j]]
        titles.append(title)
        abstracts.append(abstract)
        entities.append(ents)
        cats.append(cat)
        subs.append(sub)
        langs.append(lang)
        brands.append(brand)
        urls.append(f"https://{brand}.example/{cat}/{sub}/a{j}")
    return articles_arrow(world, titles, abstracts, entities, cats, subs, langs, brands, urls)


def histories_table_v2(world: WorldV2, max_per_user: int = 50) -> pa.Table:
    """Pre-log clicks: Poisson(history_mean * activity) backlog articles per warm reader,
    drawn without replacement in proportion to their v2 attraction 1 h after publication."""
    cfg = world.config
    rng = rng_for(cfg, HISTORY)
    n_users = world.n_users
    n_hist = np.minimum(rng.poisson(cfg.history_mean * world.user_activity), max_per_user)
    n_hist[rng.random(n_users) < cfg.cold_share] = 0
    backlog = np.flatnonzero(world.article_published < cfg.start_unix)
    if backlog.size == 0:
        n_hist[:] = 0
    n_hist = np.minimum(n_hist, backlog.size)
    t_seen = world.article_published[backlog] + HOUR
    users_out: list[np.ndarray] = []
    arts_out: list[np.ndarray] = []
    warm = np.flatnonzero(n_hist > 0)
    chunk = max(1, 4_000_000 // max(backlog.size, 1))  # bounded (chunk, backlog) matrices
    for lo in range(0, warm.size, chunk):
        u = warm[lo:lo + chunk]
        attr = world.attraction(u[:, None], backlog[None, :], t_seen[None, :])
        keys = np.log(np.maximum(attr, 1e-300)) + rng.gumbel(size=attr.shape)
        top = np.argsort(-keys, axis=1)[:, :int(n_hist[u].max())]
        take = np.arange(top.shape[1])[None, :] < n_hist[u][:, None]
        users_out.append(np.broadcast_to(u[:, None], top.shape)[take])
        arts_out.append(backlog[top][take])
    users = np.concatenate(users_out) if users_out else np.zeros(0, np.int64)
    picked = np.concatenate(arts_out) if arts_out else np.zeros(0, np.int64)
    return histories_arrow(world, users, picked)
