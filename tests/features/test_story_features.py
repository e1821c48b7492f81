"""The story, entity and language features of `FeatureBuilder` (issue 14, world v2).

Hand-built catalogs whose answers are known: which clicks are the candidate's story (cosine
at or above `story_sim`), how long ago the newest of them was, how many of the candidate's
entity tags the reader's clicks carry, the share of the reader's clicks in its language. The
single-user (serving) path must give what the general (training) path gives, and the
catalog must keep languages and entities through a bundle's save and load.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from newsdesk.data.schema import Article
from newsdesk.features.ranking_features import (
    FEATURE_NAMES,
    NO_CLICK_HOURS,
    FeatureBuilder,
    RankingInputs,
)
from newsdesk.models.catalog import MAX_ENTITIES, ArticleCatalog

T0 = datetime(2026, 1, 5, tzinfo=UTC)
NOW = (T0 + timedelta(hours=48)).timestamp()
COL = {n: i for i, n in enumerate(FEATURE_NAMES)}


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _catalog() -> ArticleCatalog:
    """Six articles in 3-d: 0, 1, 2 one story (cosine ~0.99 to each other), 3 another topic,
    4 German, 5 with no entity in common with anything."""
    vecs = _unit(np.array([[1, 0.05, 0], [1, 0, 0.05], [1, 0.1, 0.1], [0, 1, 0],
                           [0, 0, 1], [0.5, 0.5, 0.7]], dtype=np.float64))
    spec = [("en", ["Kestrel Corp", "Anna Sorensen"]), ("en", ["kestrel corp ", "Malmo"]),
            ("en", ["Anna Sorensen", "Malmo", "Greenpeace"]), ("en", ["Google"]),
            ("de", ["the DAX"]), ("EN", [])]
    arts = [Article(article_id=f"a{i}", title=f"title {i}", category="c" + str(i % 2),
                    language=lang, entities=ents, published_at=T0 + timedelta(hours=i))
            for i, (lang, ents) in enumerate(spec)]
    cat = ArticleCatalog(3, capacity=4)  # small: the adds grow it
    cat.add(arts, vecs)
    return cat


def _inputs(clicks: list[list[int]], hours_ago: list[list[float]], rows: list[tuple[int, int]]
            ) -> RankingInputs:
    L = max(len(c) for c in clicks)
    idx = np.full((len(clicks), L), -1, np.int64)
    ts = np.full((len(clicks), L), np.nan)
    for q, (c, h) in enumerate(zip(clicks, hours_ago, strict=True)):
        idx[q, : len(c)] = c
        ts[q, : len(c)] = NOW - np.asarray(h) * 3600.0
    rq = np.array([r[0] for r in rows], np.int64)
    return RankingInputs(click_idx=idx, click_ts=ts, user_ids=[f"u{q}" for q in range(len(clicks))],
                         row_query=rq, row_article=np.array([r[1] for r in rows], np.int64),
                         now=np.full(len(rows), NOW), position=np.zeros(len(rows)),
                         stats=np.ones((len(rows), 4)))


def test_catalog_codes_languages_and_entities() -> None:
    cat = _catalog()
    assert cat.languages == ["en", "de"]  # "EN" is the same language as "en"
    assert cat.language[:6].tolist() == [0, 0, 0, 0, 1, 0]
    # case and surrounding blanks do not make a new entity
    assert cat.entities[1, 0] == cat.entities[0, 0]
    assert (cat.entities[5] == -1).all()
    assert cat.entity_codes([f"e{i}" for i in range(10)]).tolist() == list(
        range(len(cat.entity_names) - MAX_ENTITIES, len(cat.entity_names)))


def test_story_entity_and_language_features() -> None:
    cat = _catalog()
    b = FeatureBuilder(sim_clicks=3, story_sim=0.9)
    # reader 0 clicked 1 (2 h ago), 3 (5 h ago), 0 (30 h ago); reader 1 nothing
    inputs = _inputs([[1, 3, 0], []], [[2.0, 5.0, 30.0], []],
                     [(0, 2), (0, 4), (0, 5), (0, 3), (1, 2)])
    x = b.build(inputs, cat)
    story = np.expm1(x[:, COL["story_clicks"]])
    np.testing.assert_allclose(story, [2, 0, 0, 1, 0], atol=1e-6)
    np.testing.assert_allclose(x[:, COL["hours_since_story_click"]],
                               [2.0, NO_CLICK_HOURS, NO_CLICK_HOURS, 5.0, NO_CLICK_HOURS],
                               rtol=1e-6)
    # article 2 names Anna Sorensen, Malmo, Greenpeace: the first two are in the clicks
    assert x[:, COL["entity_overlap"]].tolist() == [2, 0, 0, 1, 0]
    # three English clicks: none in another language for English articles, all for the
    # German one; no clicks: 0
    assert x[:, COL["language_mismatch"]].tolist() == [0, 1, 0, 0, 0]
    # sim_clicks bounds the story window: only the newest click is compared
    x1 = FeatureBuilder(sim_clicks=1, story_sim=0.9).build(inputs, cat)
    assert np.expm1(x1[0, COL["story_clicks"]]) == pytest.approx(1.0)


def test_single_user_path_equals_the_general_path() -> None:
    rng = np.random.default_rng(3)
    n, dim = 300, 16
    centres = rng.normal(size=(20, dim))
    story = rng.integers(0, 20, n)
    vecs = _unit(centres[story] + 0.3 * rng.normal(size=(n, dim)))
    arts = [Article(article_id=f"a{i}", title="t", category=f"c{story[i] % 4}",
                    language="de" if i % 5 == 0 else "en",
                    entities=[f"e{story[i]}", f"x{rng.integers(0, 30)}"],
                    published_at=T0 + timedelta(minutes=i)) for i in range(n)]
    cat = ArticleCatalog(dim)
    cat.add(arts, vecs)
    b = FeatureBuilder(sim_clicks=10, recent_clicks=30, story_sim=0.8)
    for _user in range(8):
        k = int(rng.integers(0, 30))
        clicks = [rng.choice(n, k, replace=False).tolist()]
        hours = [sorted(rng.uniform(0, 100, k).tolist())]
        cand = rng.choice(n, 60, replace=False)
        one = _inputs(clicks, hours, [(0, int(a)) for a in cand])
        two = RankingInputs(click_idx=np.repeat(one.click_idx, 2, axis=0),
                            click_ts=np.repeat(one.click_ts, 2, axis=0),
                            user_ids=one.user_ids * 2, row_query=np.ones(60, np.int64),
                            row_article=one.row_article, now=one.now, position=one.position,
                            stats=one.stats)
        fast, slow = b.build(one, cat), b.build(two, cat)
        # the single-user cosines are one BLAS product (float32 rounding apart from the
        # batch path's einsum); the story counts and entity overlaps are exact
        np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-6)
        for name in ("story_clicks", "entity_overlap", "language_mismatch"):
            np.testing.assert_array_equal(fast[:, COL[name]], slow[:, COL[name]])
        if k:
            assert fast[:, COL["entity_overlap"]].max() >= 1


def test_disabled_features_are_missing_and_names_are_checked() -> None:
    cat = _catalog()
    inputs = _inputs([[1, 3, 0]], [[2.0, 5.0, 30.0]], [(0, 2), (0, 4)])
    b = FeatureBuilder(disabled=["story_clicks", "entity_overlap"])
    x = b.build(inputs, cat)
    assert np.isnan(x[:, COL["story_clicks"]]).all()
    assert np.isnan(x[:, COL["entity_overlap"]]).all()
    assert not np.isnan(x[:, COL["language_mismatch"]]).any()
    assert FeatureBuilder(**b.params()).disabled == b.disabled  # the bundle's round trip
    with pytest.raises(ValueError, match="disabled.*storyclicks"):
        FeatureBuilder(disabled=["storyclicks"])
    from newsdesk.errors import ConfigError
    from newsdesk.pipelines.train import TrainConfig

    with pytest.raises(ConfigError, match="features.disabled"):
        TrainConfig.from_dict({"features": {"disabled": ["nope"]}})
    # off by default (no measured gain, a request cost); `disabled: []` turns them on
    from newsdesk.pipelines.train import OPT_IN_FEATURES

    assert TrainConfig().features.disabled == list(OPT_IN_FEATURES)
    assert TrainConfig.from_dict({"features": {"disabled": []}}).features.disabled == []
    # with both story features off, max_click_sim is still computed
    off = FeatureBuilder(disabled=list(OPT_IN_FEATURES), sim_clicks=3)
    on = FeatureBuilder(sim_clicks=3)
    three = _inputs([[1, 3, 0]], [[2.0, 5.0, 30.0]], [(0, 2), (0, 4), (0, 5)])
    a, b2 = off.build(three, cat), on.build(three, cat)
    keep = [COL[n] for n in FEATURE_NAMES if n not in OPT_IN_FEATURES]
    np.testing.assert_array_equal(a[:, keep], b2[:, keep])
    assert np.isnan(a[:, [COL[n] for n in OPT_IN_FEATURES]]).all()


def test_language_mismatch_is_constant_in_a_one_language_catalog() -> None:
    """On a one-language catalog (MIND) the feature must carry nothing the trees could split
    on, whatever the readers' click counts."""
    cat = _catalog()
    inputs = _inputs([[1, 3, 0], [0], []], [[2.0, 5.0, 30.0], [1.0], []],
                     [(0, 2), (0, 3), (1, 2), (2, 1), (2, 5)])
    x = FeatureBuilder().build(inputs, cat)
    assert (x[:, COL["language_mismatch"]] == 0).all()


def test_catalog_save_load_keeps_languages_and_entities(tmp_path: Path) -> None:
    cat = _catalog()
    cat.save(tmp_path / "c")
    back = ArticleCatalog.load(tmp_path / "c")
    assert back.languages == cat.languages and back.entity_names == cat.entity_names
    np.testing.assert_array_equal(back.language[:6], cat.language[:6])
    np.testing.assert_array_equal(back.entities[:6], cat.entities[:6])
    # an article upserted after the load gets the next codes, not a clash
    more = Article(article_id="a9", title="t", language="fr", entities=["New One", "Google"],
                   published_at=T0)
    i = int(back.add([more], _unit(np.ones((1, 3))))[0])
    assert back.languages[back.language[i]] == "fr"
    assert back.entity_names[back.entities[i, 0]] == "new one"
    assert back.entities[i, 1] == cat.entity_index["google"]
    # a bundle written before languages / entities were kept still loads
    (tmp_path / "c" / "vocabularies.json").unlink()
    old = ArticleCatalog.load(tmp_path / "c")
    assert old.languages == ["und"] and (old.entities[:6] == -1).all()


# the schema of bundles trained before the story, entity and language features existed
OLD_SCHEMA = [n for n in FEATURE_NAMES if n not in {
    "story_clicks", "hours_since_story_click", "entity_overlap", "language_mismatch"}]


def test_an_older_bundles_columns_are_built_in_its_order() -> None:
    """A bundle trained before later features were added keeps loading: the builder returns
    exactly its columns (what a full build gives for them) and computes nothing else."""
    cat = _catalog()
    inputs = _inputs([[1, 3, 0], []], [[2.0, 5.0, 30.0], []],
                     [(0, 2), (0, 4), (0, 5), (0, 3), (1, 2)])
    full = FeatureBuilder(sim_clicks=3).build(inputs, cat)
    old = FeatureBuilder(sim_clicks=3, columns=OLD_SCHEMA)
    assert set(old.disabled) == set(FEATURE_NAMES) - set(OLD_SCHEMA)
    np.testing.assert_array_equal(old.build(inputs, cat),
                                  full[:, [COL[n] for n in OLD_SCHEMA]])
    with pytest.raises(ValueError, match="unknown feature"):
        FeatureBuilder(columns=[*OLD_SCHEMA, "no_such_feature"])


def test_bundle_schema_accepts_older_subsets_in_order_only() -> None:
    from newsdesk.models.bundle import _base_schema

    own = list(FEATURE_NAMES)
    assert _base_schema(own, own) == own
    assert _base_schema([*own, "plugin_score"], own) == own  # plug-in columns follow
    assert _base_schema(OLD_SCHEMA, own) == OLD_SCHEMA
    assert _base_schema([*OLD_SCHEMA, "nrms_score"], own) == OLD_SCHEMA
    assert _base_schema(OLD_SCHEMA[::-1], own) is None  # reordered: the trees would misread
    assert _base_schema([own[0], own[0]], own) is None  # repeated
    assert _base_schema(["unknown", *own], own) is None
    assert _base_schema(None, own) is None
