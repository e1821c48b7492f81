"""`newsdesk enrich` in batch: resumable, keyed by (content, prompt, model), invalid dropped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from newsdesk.data.dataset import DatasetWriter
from newsdesk.data.schema import Article
from newsdesk.errors import DatasetError, LLMDisabled
from newsdesk.llm import load_llm_settings, make_provider
from newsdesk.llm.batch import enrich_dataset
from newsdesk.llm.enrichment import Enricher
from newsdesk.llm.enrichment_store import EnrichmentStore
from newsdesk.llm.fake import FakeProvider


def answer(messages) -> str:
    title = next(m for m in messages if m["role"] == "user")["content"].splitlines()[0]
    if "Unparseable" in title:
        return "Sorry, I cannot do that."
    return json.dumps({"summary": f"About {title[7:]}.", "topics": ["sport", "Sport"],
                       "keywords": ["match"], "entities": [{"name": "Bayern",
                                                            "type": "organization"}],
                       "timeliness": "evergreen", "brand_safety": "safe"})


@pytest.fixture
def dataset(tmp_path):
    now = datetime(2026, 1, 1, tzinfo=UTC)
    titles = ["Bayern wins", "Unparseable story", "Dortmund loses", "Election night"]
    with DatasetWriter(tmp_path / "ds", source="test") as writer:
        writer.table("articles").write_rows(
            Article(article_id=f"a{i}", title=t, abstract="Some text.", category="sports",
                    published_at=now).model_dump() for i, t in enumerate(titles))
    return tmp_path / "ds"


def test_batch_enriches_resumes_and_redoes_on_a_new_model(dataset):
    fake = FakeProvider(answer)
    provider = make_provider(load_llm_settings(), backend=fake)
    first = enrich_dataset(dataset, Enricher(provider), limit=2)
    assert (first.enriched, first.dropped) == (1, {"invalid_output": 1})
    rest = enrich_dataset(dataset, Enricher(provider))
    assert rest.skipped == 1 and rest.enriched == 2  # a0 kept; a1 retried and dropped again
    frame = EnrichmentStore(dataset).read()
    assert frame["article_id"].to_list() == ["a0", "a2", "a3"]
    assert frame["topics"].to_list()[0] == ["sport"]  # repeats removed by the schema
    assert frame["entities"].to_list()[0] == ["Bayern"]
    assert len(EnrichmentStore(dataset).parts()) == 1  # compacted
    again = enrich_dataset(dataset, Enricher(provider))
    assert again.enriched == 0 and again.skipped == 3
    other = make_provider(load_llm_settings(), backend=FakeProvider(answer, model="bigger"))
    assert enrich_dataset(dataset, Enricher(other)).enriched == 3


def test_batch_stops_when_the_switch_is_off(dataset):
    provider = make_provider(load_llm_settings(enabled=False), backend=FakeProvider(answer))
    with pytest.raises(LLMDisabled):
        enrich_dataset(dataset, Enricher(provider))
    assert EnrichmentStore(dataset).read().height == 0


def test_cli_refuses_a_directory_without_articles(tmp_path):
    from newsdesk.cli.llm_cmds import enrich

    with pytest.raises(DatasetError, match="no articles table"):
        enrich(tmp_path, limit=None, provider=None, model=None, base_url=None, out=None,
               prompt_version=None, timeout_s=300)


def test_batch_stops_and_keeps_its_work_when_the_provider_goes_down(dataset):
    from newsdesk.errors import LLMCircuitOpen, LLMUnavailable

    calls = {"n": 0}

    def flaky(messages):
        calls["n"] += 1
        if calls["n"] > 1:
            raise LLMUnavailable("connection refused")
        return answer(messages)

    provider = make_provider(load_llm_settings(max_retries=0, breaker_failure_threshold=2),
                             backend=FakeProvider(flaky))
    with pytest.raises(LLMCircuitOpen):
        enrich_dataset(dataset, Enricher(provider))
    assert EnrichmentStore(dataset).read()["article_id"].to_list() == ["a0"]


def test_newest_first_and_a_dataset_without_bodies(tmp_path):
    # the simulator writes null bodies; --newest-first enriches what is live now first
    from newsdesk.data.dataset import Dataset

    base = datetime(2026, 1, 1, tzinfo=UTC)
    with DatasetWriter(tmp_path / "ds", source="test") as writer:
        writer.table("articles").write_rows(
            {**Article(article_id=f"a{i}", title=f"Story {i}", abstract="Some text.",
                       category="sports", published_at=base.replace(hour=i)).model_dump(),
             "body": None} for i in range(4))
    assert Dataset(tmp_path / "ds").read("articles")["body"].null_count() == 4
    seen: list[str] = []

    def answer_in_order(messages) -> str:
        seen.append(next(m for m in messages if m["role"] == "user")["content"]
                    .splitlines()[0])
        return answer(messages)

    provider = make_provider(load_llm_settings(), backend=FakeProvider(answer_in_order))
    report = enrich_dataset(tmp_path / "ds", Enricher(provider), limit=2, newest_first=True)
    assert report.enriched == 2 and seen == ["Title: Story 3", "Title: Story 2"]
    assert sorted(EnrichmentStore(tmp_path / "ds").read()["article_id"]) == ["a2", "a3"]
