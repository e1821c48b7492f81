"""`serve_load.py --llm`: every LLM feature that can touch serving, on during the load.

    server env     NEWSDESK_LLM_ENABLED=true                 the global switch
                   NEWSDESK_LLM_ENRICH_ON_UPSERT=true        the enrichment worker, real local
                                                             model (loaded on the first upsert)
                   NEWSDESK_LLM_RERANK_SURFACES=newsletter   the re-rank stage, configured for
                                                             the slow surface it is meant for
                                                             (hard budget); the load asks for
                                                             front_page, so it never runs there
    request body   "explain": true                           template explanations per item
    before load    a headline test (Thompson-sampling bandit) on the article most readers are
                   served, variants proposed by the local model through the admin route
                   (given variants when its proposals are all rejected)
    during load    one article upsert every `upsert_every_s`: each is queued for enrichment
                   by the real local model, which runs in the serving process (its worker
                   thread is niced) and so competes with requests for the cores

`SERVE_LOAD_LLM_UPSERT_EVERY_S` (environment; default 5, 0 = no upserts) sets the feed, to
tell the enrichment worker's cost apart from the request path's.

`LLMLoad.report()` is what goes into the JSON under "llm": which features were on and what
each did (enriched / dropped counts, the headline test's impressions per variant).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ADMIN_KEY = "serve-load-admin-key-0123456789"
RERANK_SURFACE = "newsletter"


def server_env() -> dict[str, str]:
    return {"NEWSDESK_LLM_ENABLED": "true", "NEWSDESK_LLM_ENRICH_ON_UPSERT": "true",
            "NEWSDESK_LLM_RERANK_SURFACES": RERANK_SURFACE,
            "NEWSDESK_LLM_TIMEOUT_S": "300", "NEWSDESK_ADMIN_API_KEY": ADMIN_KEY}


REQUEST_EXTRA = {"explain": True}


class LLMLoad:
    """The headline test and the upsert feed around one serve_load run (module docstring)."""

    def __init__(self, url: str, state: dict[str, Any], *, admin_key: str,
                 upsert_every_s: float | None = None) -> None:
        self.url = url
        self.state = state
        self.headers = {"X-API-Key": admin_key, "X-Actor": "serve_load"}
        self.upsert_every_s = (float(os.environ.get("SERVE_LOAD_LLM_UPSERT_EVERY_S", "5"))
                               if upsert_every_s is None else upsert_every_s)
        self.headline: dict[str, Any] = {}
        self.upserts = 0
        self.upsert_errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.time()

    def _now(self) -> datetime:
        # the server's clock runs from clock_start in real time (serve --clock-start)
        return datetime.fromtimestamp(self.state["clock_start"] + time.time() - self._started,
                                      UTC)

    def start(self) -> None:
        import httpx

        users = Path(self.state["users_file"]).read_text().split()
        top = httpx.post(self.url + "/v1/recommendations", timeout=30,
                         json={"user_id": users[0], "k": 1}).json()["items"]
        article = top[0]["article_id"]
        t = time.perf_counter()
        r = httpx.post(f"{self.url}/v1/admin/headlines/{article}", headers=self.headers,
                       json={"n": 3, "min_impressions": 10_000}, timeout=600)
        source = "llm"
        if r.status_code != 200:  # every proposal rejected, or the model failed: given ones
            source = f"given (LLM answered {r.status_code}: {r.text[:200]})"
            title = top[0].get("title") or article
            r = httpx.post(f"{self.url}/v1/admin/headlines/{article}", headers=self.headers,
                           json={"variants": [f"{title}: what we know",
                                              f"Explained: {title}"],
                                 "min_impressions": 10_000}, timeout=60)
        r.raise_for_status()
        self.headline = {"article_id": article, "variants_from": source,
                         "start_s": round(time.perf_counter() - t, 1),
                         "variants": [v.get("headline") for v in r.json().get("variants", [])]}
        self._started = time.time()
        if self.upsert_every_s > 0:
            self._thread = threading.Thread(target=self._feed, name="llm-upserts", daemon=True)
            self._thread.start()

    def _feed(self) -> None:
        import httpx
        import polars as pl

        from newsdesk.data.dataset import Dataset

        live = set(Path(self.state["articles_file"]).read_text().split()[:200])
        rows = (Dataset(Path(self.state["dataset"])).read("articles")
                .filter(pl.col("article_id").is_in(list(live))).to_dicts())
        i, run = 0, int(time.time())
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.wait(self.upsert_every_s) and rows:
                row = rows[i % len(rows)]
                now = self._now()
                # ids new to every run: a reused state has the earlier runs' articles enriched
                # already, and the worker skips an article whose content it has enriched
                article = {"article_id": f"llm-load-{run}-{i}", "title": row["title"],
                           "abstract": row.get("abstract") or "",
                           "category": row["category"], "published_at": now.isoformat()}
                try:
                    r = client.put("/v1/articles", json={"articles": [article]})
                    self.upserts += r.status_code == 200
                    self.upsert_errors += r.status_code != 200
                except httpx.HTTPError:
                    self.upsert_errors += 1
                i += 1

    def report(self) -> dict[str, Any]:
        import httpx

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        status = httpx.get(self.url + "/v1/admin/llm", headers=self.headers, timeout=30).json()
        test = httpx.get(f"{self.url}/v1/admin/headlines/{self.headline['article_id']}",
                         headers=self.headers, timeout=30)
        return {
            "on": {"switch": True, "explanations": "template, explain=true on every request",
                   "headline_test": True,
                   "enrich_on_upsert": ("local model, one upsert every "
                                        f"{self.upsert_every_s} s" if self.upsert_every_s > 0
                                        else "on, but no upserts sent"),
                   "llm_rerank": f"configured for surface {RERANK_SURFACE!r} only (its "
                                 "hard budget); the load's front_page requests never run it"},
            "headline_test": {**self.headline,
                              "report": test.json() if test.status_code == 200 else
                              f"{test.status_code} (the test lives in the worker that "
                              "started it)"},
            "upserts": self.upserts, "upsert_errors": self.upsert_errors,
            "upsert_every_s": self.upsert_every_s,
            "llm_status": status,
        }


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, default=str)
