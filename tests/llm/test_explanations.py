"""Explanations name only signals that were present for the item, in English and German."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from newsdesk.features.interest_seeds import read_seed, write_seed
from newsdesk.features.training_log import LogArrays
from newsdesk.llm.explanations import (
    FRESH_MAX_HOURS,
    SIGNAL_CODES,
    SIMILAR_MIN_COSINE,
    TEMPLATES,
    TOPIC_MIN_CLICKS,
    TRENDING_TOP,
    Explainer,
    Signal,
    render,
    resolve_lang,
)
from newsdesk.models.base import RequestContext
from newsdesk.models.cold_start import seed_profile
from newsdesk.models.pipeline import NewsRecommender
from newsdesk.serving.app import create_app
from tests.serving.conftest import PATIENT, make_settings, running, settled


def _users(log: LogArrays, before: float, n: int) -> list[str]:
    ev = log.events
    counts = np.bincount(ev.click_user[ev.click_ts < before], minlength=len(ev.user_ids))
    order = np.argsort(-counts, kind="stable")
    # heavy readers, light readers and some without clicks
    picks = list(order[:n // 2]) + list(order[len(order) // 2: len(order) // 2 + n // 2])
    return [ev.user_ids[u] for u in picks] + ["nobody-1", "nobody-2"]


def _fixed_prefix(template: str) -> str:
    return template.split("{")[0]


def test_explanations_name_only_present_signals(warmed: NewsRecommender, llm_log: LogArrays,
                                                serve_time: float,
                                                llm_world: tuple[Path, Path]) -> None:
    store, cat = warmed.ws.store, warmed.ws.catalog
    published = dict(pl.read_parquet(llm_world[0] / "articles" / "*.parquet")
                     .select("article_id", "published_at").iter_rows())
    trending = {a for a, _ in store.trending(TRENDING_TOP, serve_time)}
    explainer = Explainer(store)
    seen_codes: set[str] = set()
    n_items = 0
    seeded = {"seeded-sports": "football striker, goalkeeper, penalty, Bundesliga",
              "seeded-politics": "election, parliament vote, coalition, Regierung"}
    for user, text in seeded.items():
        write_seed(store, user, seed_profile(warmed.ws, warmed.embedder, serve_time, text=text))
    for user in [*_users(llm_log, serve_time, 30), *seeded]:
        ctx = RequestContext(user_id=user, now=serve_time, k=10)
        items = warmed.recommend(ctx)
        clicks = [c.article_id for c in store.user_clicks(user)]
        click_idx = cat.lookup(clicks)
        recent = click_idx[click_idx >= 0][: warmed.ws.builder.sim_clicks]
        per_item = explainer.collect_signals(ctx, items, warmed)
        for lang in ("en", "de"):
            texts = [e.text for e in explainer.explain(ctx, items, warmed, lang)]
            for text, sigs in zip(texts, per_item, strict=True):
                assert text == render(sigs, lang)
                assert text and "{" not in text
                named = {s.code for s in sigs[:2]}
                for code in SIGNAL_CODES - named:  # no phrase of an absent signal
                    prefix = _fixed_prefix(TEMPLATES[lang][code])
                    if len(prefix) > 4:
                        assert prefix not in text, (code, text)
        for item, sigs in zip(items, per_item, strict=True):
            n_items += 1
            i = int(cat.lookup([item.article_id])[0])
            for s in sigs:
                seen_codes.add(s.code)
                _check_evidence(s, user, item.source, item.article_id, i, warmed, recent,
                                click_idx, published, trending, serve_time)
    assert n_items >= 250
    # the property covered several kinds of evidence, not just the trivial ones
    assert {"topic", "trending", "fresh", "interest"} <= seen_codes
    assert seen_codes & {"read_similar", "coclick"}


def _check_evidence(s: Signal, user: str, source: str, aid: str, i: int,
                    model: NewsRecommender,
                    recent: np.ndarray, click_idx: np.ndarray, published: dict,
                    trending: set[str], now: float) -> None:
    cat = model.ws.catalog
    if s.code == "read_similar":
        j = int(cat.lookup([s.args["article_id"]])[0])
        assert j in recent.tolist()
        assert s.args["title"] == cat.titles[j]
        assert float(cat.embeddings[j] @ cat.embeddings[i]) >= SIMILAR_MIN_COSINE - 1e-6
    elif s.code == "coclick":
        j = int(cat.lookup([s.args["article_id"]])[0])
        assert j in click_idx.tolist()
        assert model.coclick is not None and model.coclick.matrix_[j, i] > 0
    elif s.code == "topic":
        known = click_idx[click_idx >= 0]
        same = int((cat.category[known] == cat.category[i]).sum())
        assert same >= TOPIC_MIN_CLICKS and s.args["category"] == cat.category_name(i)
    elif s.code == "trending":
        assert aid in trending or source == "trending"
    elif s.code == "interest":
        seed = read_seed(model.ws.store, user)
        assert seed is not None and not model.ws.store.user_clicks(user)
        anchors = cat.lookup(list(seed.anchors))
        assert float((cat.embeddings[anchors] @ cat.embeddings[i]).max()) >= \
            SIMILAR_MIN_COSINE - 1e-6
    elif s.code == "collaborative":
        assert source == "collaborative"
    elif s.code in ("fresh", "latest"):
        pub = published[aid].replace(tzinfo=UTC).timestamp()
        assert 0 <= (now - pub) / 3600.0 <= FRESH_MAX_HOURS
        if s.code == "latest":
            assert source in ("recency", "editorial")
    else:
        raise AssertionError(f"unknown signal {s.code}")


def test_both_languages_render_every_signal() -> None:
    sigs = [Signal("read_similar", 1, {"title": "Klimagipfel", "article_id": "x"}),
            Signal("coclick", 1, {"title": "Bundesliga", "article_id": "y"}),
            Signal("topic", 3, {"category": "sports"}), Signal("collaborative"),
            Signal("trending"), Signal("fresh", 0, {"age_hours": 2.5}),
            Signal("latest", 0, {"category": "tech"})]
    for s in sigs:
        en, de = render([s], "en"), render([s], "de")
        assert en and de and en != de and "{" not in en + de
    assert render([sigs[5]], "de") == "Neu: erschienen vor 2 Stunden"
    assert render([sigs[0], sigs[4]], "en") == "Because you read “Klimagipfel” · Trending now"
    assert render([], "de") == TEMPLATES["de"]["none"]
    assert resolve_lang(None, "de-AT") == "de" and resolve_lang(None, "fr") == "en"
    assert resolve_lang("en", "de-DE") == "en"


@pytest.mark.anyio
async def test_api_explain_opt_in_in_german(tmp_path: Path, llm_world: tuple[Path, Path],
                                            llm_log: LogArrays, frozen_clock: None) -> None:
    dataset, bundle = llm_world
    end = datetime.fromtimestamp(llm_log.time_range[1] + 60, UTC)
    app = create_app(make_settings(tmp_path, dataset, bundles_dir=bundle.parent,
                                   clock_start=end, online_store_url=None, **PATIENT))
    user = _users(llm_log, llm_log.time_range[1], 2)[0]
    async with running(app) as client:
        await settled(client)
        # Every served slate is logged as an impression that moves the articles' CTR once
        # applied (asynchronously). All requests carry one request id: after the first one's
        # impression is applied the others are duplicates, so all see the same state.
        same = {"X-Request-ID": "explain-slate"}
        exposure = app.state.services.exposure

        async def ask(body: dict) -> dict:
            answer = (await client.post("/v1/recommendations", json=body, headers=same)).json()
            await asyncio.wait_for(exposure.queue.join(), 30)
            return answer

        await ask({"user_id": user})
        plain = await ask({"user_id": user})
        assert plain["items"] and all("explanation" not in it for it in plain["items"])
        body = {"user_id": user, "explain": True, "context": {"locale": "de-DE"}}
        de = await ask(body)
        en = await ask({**body, "lang": "en"})
        assert not (plain["degraded"] or de["degraded"] or en["degraded"])
        assert [it["article_id"] for it in de["items"]] == [
            it["article_id"] for it in plain["items"]]  # explaining never changes the slate
        de_templates = {_fixed_prefix(t) for t in TEMPLATES["de"].values()}
        for d, e in zip(de["items"], en["items"], strict=True):
            assert set(d["signals"]) <= SIGNAL_CODES and d["signals"] == e["signals"]
            assert d["explanation"] != e["explanation"] or not d["signals"]
            assert any(d["explanation"].startswith(p) for p in de_templates if p)
        assert any(it["signals"] for it in de["items"])
        bad = await client.post("/v1/recommendations", json={**body, "lang": "fr"})
        assert bad.status_code == 422
