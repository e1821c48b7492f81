"""The dashboard in a real headless Chromium against a real `newsdesk serve` subprocess.

One server for the module: a small simulated world, two bundles trained with the hashing
embedder (so promote / rollback has somewhere to go), the admin key set. Chromium is Debian's
(`/usr/bin/chromium`, installed by .ci/run) driven by Playwright with `executable_path`:
browser downloads do not work here, so `playwright install` is never needed.

Screenshots of every page land in the module's tmp dir (`dashboard-screens*`); the path is
printed at the end of the module (pytest -s shows it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("newsdesk.models.bundle")
pytest.importorskip("lightgbm")
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="playwright is not installed: pip install 'newsdesk[dev]'")

CHROMIUM = os.environ.get("NEWSDESK_CHROMIUM", "/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser, pytest.mark.ml, pytest.mark.slow,
    pytest.mark.skipif(shutil.which(CHROMIUM) is None,
                       reason=f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"),
]
NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]
ADMIN_KEY = "dashboard-test-key"
PAGES = ("overview", "monitoring", "experiments", "models", "preview")
WAIT_MS = 15_000  # every browser wait is bounded


@dataclass(frozen=True)
class Server:
    base: str
    versions: list[str]  # oldest first; the newest serves at start
    users: list[str]  # readers with logged clicks
    screens: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    from threadpoolctl import threadpool_limits

    from newsdesk.data.dataset import Dataset
    from newsdesk.pipelines.train import RankerConfig, TrainConfig, train

    root = tmp_path_factory.mktemp("dashboard")
    dataset = root / "dataset"
    subprocess.run([*NEWSDESK, "simulate", "--seed", "3", "--users", "200", "--days", "1",
                    "--impressions-per-day", "2000", "--articles-per-day", "150",
                    "--out", str(dataset)], check=True, capture_output=True, timeout=120)
    versions = []
    with threadpool_limits(1, "blas"):  # implicit's ALS warns (an error here) otherwise
        for rounds in (10, 20):
            config = TrainConfig(embedder="hashing",
                                 ranker=RankerConfig(num_boost_round=rounds, min_data_in_leaf=5))
            versions.append(train(dataset, root / "bundles", config))
    ds = Dataset(dataset)
    clock_start = ds.read("impressions")["timestamp"].max() + timedelta(minutes=1)
    users = ds.read("interactions")["user_id"].unique().sort().to_list()[:40]
    port = _free_port()
    log_path = root / "server.log"
    env = {**os.environ, "NEWSDESK_ADMIN_API_KEY": ADMIN_KEY, "HF_HUB_OFFLINE": "1"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*NEWSDESK, "serve", "--dataset", str(dataset), "--bundles", str(root / "bundles"),
             "--port", str(port), "--state-dir", str(root / "state"),
             "--clock-start", clock_start.isoformat(), "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=base, timeout=10) as client:
            while True:  # ready AND the readers' clicks loaded into the online store
                assert proc.poll() is None, log_path.read_text()[-2000:]
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200 and r.json()["status"] == "ready":
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server not ready in 90 s"
                time.sleep(0.3)
        screens = root / "screens"
        screens.mkdir()
        yield Server(base, versions, users, screens)
        print(f"\ndashboard screenshots: {screens}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Page:
    """A fresh browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, server: Server, width: int = 1280, height: int = 900
                 ) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.server = server
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console: {m.text}")
                     if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def open(self, path: str) -> Any:
        self.page.goto(self.server.base + path)
        self.page.wait_for_selector("body[data-loaded=true]")
        return self.page

    def shot(self, name: str) -> Path:
        path = self.server.screens / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def set_key(self, key: str = ADMIN_KEY) -> None:
        self.page.fill("#admin-key", key)
        self.page.click("#key-save")
        self.page.wait_for_selector("#key-state:has-text('admin key set')")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Page]:
    p = Page(browser, server)
    yield p
    p.close()


def _ready_version(server: Server) -> str:
    return str(httpx.get(server.base + "/readyz", timeout=10).json()["model_version"])


def _wait_version(server: Server, want: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while (got := _ready_version(server)) != want and time.monotonic() < deadline:
        time.sleep(0.2)
    return got


# -- the tests --------------------------------------------------------------------------------
def test_every_page_loads_without_console_errors(page: Page, server: Server) -> None:
    # some traffic first, so the overview has endpoints, stages and CTR rows to draw
    for user in server.users[:5]:
        r = httpx.post(server.base + "/v1/recommendations", json={"user_id": user, "k": 5},
                       timeout=10)
        assert r.status_code == 200
    for name in PAGES:
        path = "/dashboard" if name == "overview" else f"/dashboard/{name}"
        p = page.open(path)
        assert p.locator(f"section[data-page={name}]").is_visible()
        assert p.locator(f"nav a[data-page={name}]").get_attribute("aria-current") == "page"
        assert page.shot(name).stat().st_size > 5_000
    assert page.errors == []


def test_overview_shows_health_latency_per_stage_and_traffic(page: Page, server: Server) -> None:
    httpx.post(server.base + "/v1/recommendations", json={"user_id": server.users[0], "k": 5},
               timeout=10).raise_for_status()
    p = page.open("/dashboard")
    cards = p.locator("#health-cards").inner_text()
    assert _ready_version(server) in cards and "ready" in cards
    stages = p.locator("#stage-table").inner_text()
    assert "personalised" in stages and "ms" in stages
    assert "/v1/recommendations" in p.locator("#endpoint-table").inner_text()
    # the traffic plot draws a line once it has two polls (5 s apart)
    p.wait_for_selector("#traffic-plot svg path", timeout=WAIT_MS)
    assert page.errors == []


def test_monitoring_panels_show_the_live_monitor(page: Page, server: Server) -> None:
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for user in server.users[:5]:
            client.post("/v1/recommendations", json={"user_id": user, "k": 5}
                        ).raise_for_status()
        live = client.get("/v1/monitoring").json()
    p = page.open("/dashboard/monitoring")
    body = p.locator("#monitoring-body")
    cards = body.locator(".cards").first.inner_text()
    assert live["psi"]["model_version"] in cards and "score PSI" in cards
    quality = body.locator("table").filter(has_text="CTR@10").inner_text()
    assert "front_page" in quality and live["quality"][0]["model_version"] in quality
    assert "Data quality" in body.inner_text() and "Event lag" in body.inner_text()
    page.shot("monitoring-live")
    assert page.errors == []


def test_preview_shows_k_items_with_reasons_and_the_users_recent_clicks(
        page: Page, server: Server) -> None:
    user, k = server.users[0], 7
    p = page.open("/dashboard/preview")
    # without the admin key the reader's clicks (personal data) are not shown
    p.fill("#preview-user", user)
    p.click("#preview-go")
    p.wait_for_selector("#recent-clicks > li:has-text('enter the admin key')")
    page.set_key()
    p.fill("#preview-user", user)
    p.fill("#preview-k", str(k))
    p.click("#preview-go")
    items = p.locator("#preview-items > li")
    # the first preview (the default k) stays on screen until the new answer replaces it
    p.wait_for_function(
        f"document.querySelectorAll('#preview-items > li').length === {k}", timeout=15_000)
    assert items.count() == k
    reasons = p.locator("#preview-items .reason").all_inner_texts()
    assert len(reasons) == k and all(r.strip() for r in reasons)
    assert httpx.get(f"{server.base}/v1/users/{user}/recent", timeout=10).status_code == 401
    recent = httpx.get(f"{server.base}/v1/users/{user}/recent", params={"limit": 10},
                       headers={"X-API-Key": ADMIN_KEY}, timeout=10).json()["clicks"]
    assert recent, "the test user has logged clicks in the dataset"
    shown = p.locator("#recent-clicks > li strong").all_inner_texts()
    assert shown == [c["article_id"] for c in recent]
    page.shot("preview-user")
    # the preview logged nothing: the user's clicks and the served-slate counter are unchanged
    metrics = httpx.get(server.base + "/dashboard/api/overview", timeout=10).json()
    before = sum(row["shown"] for row in metrics["ctr"])
    p.click("#preview-go")
    p.wait_for_timeout(500)
    metrics = httpx.get(server.base + "/dashboard/api/overview", timeout=10).json()
    assert sum(row["shown"] for row in metrics["ctr"]) == before
    assert page.errors == []


def test_promote_and_rollback_through_the_page_change_the_served_version(
        page: Page, server: Server) -> None:
    old, new = server.versions
    assert _ready_version(server) == new  # the newest bundle serves at start
    p = page.open("/dashboard/models")
    assert p.get_by_role("button", name=f"Promote model {old}").is_disabled()  # no key yet
    page.set_key()
    p.get_by_role("button", name=f"Promote model {old}").click()
    p.wait_for_selector("#status:has-text('promoted')")
    assert _wait_version(server, old) == old
    assert old in p.locator("#model-cards").inner_text()
    page.shot("models-after-promote")
    p.click("#rollback")
    p.wait_for_selector("#status:has-text('rolled back')")
    assert _wait_version(server, new) == new
    assert page.errors == []


def test_a_wrong_key_is_refused_and_changes_nothing(page: Page, server: Server) -> None:
    old, _ = server.versions
    before = _ready_version(server)
    p = page.open("/dashboard/models")
    page.set_key("not-the-key")
    target = old if before != old else server.versions[1]
    p.get_by_role("button", name=f"Promote model {target}").click()
    p.wait_for_selector("#status.error:has-text('403')")
    assert _ready_version(server) == before
    # the browser logs the refused request itself; that is the expected outcome here
    assert all("403" in e for e in page.errors)


def test_an_experiment_killed_through_the_page_shows_as_killed(
        page: Page, server: Server) -> None:
    exp_id = "dash-kill-test"
    admin = {"X-API-Key": ADMIN_KEY, "X-Actor": "test"}
    config = {"id": exp_id, "layer": "ranking", "surfaces": ["front_page"],
              "description": "browser test", "owner": "tests", "primary_metric": "ctr",
              "variants": [{"name": "control", "weight": 1, "bundle": server.versions[1]},
                           {"name": "treatment", "weight": 1, "pipeline": "trending"}]}
    r = httpx.post(server.base + "/v1/admin/experiments", json=config, headers=admin,
                   timeout=30)
    assert r.status_code == 201, r.text
    with httpx.Client(base_url=server.base, timeout=10) as client:
        # exposures and a click from every third reader, so the report has real intervals
        for i, user in enumerate(server.users):
            slate = client.post("/v1/recommendations", json={"user_id": user, "k": 5})
            slate.raise_for_status()
            if i % 3 == 0:
                client.post("/v1/events", json={"events": [{
                    "type": "click", "event_id": f"dash-{i}", "user_id": user,
                    "article_id": slate.json()["items"][i % 5]["article_id"],
                    "request_id": slate.json()["request_id"]}]}).raise_for_status()
    p = page.open("/dashboard/experiments")
    block = p.locator(f"article[data-experiment='{exp_id}']")
    assert block.locator(".badge").get_attribute("data-state") != "killed"
    block.get_by_role("button", name="Show report").click()
    block.locator("svg[role=img]").first.wait_for()
    # the per-variant CTR intervals and the treatment's lift intervals (fixed and CUPED)
    labels = [block.locator("svg[role=img]").nth(i).get_attribute("aria-label")
              for i in range(block.locator("svg[role=img]").count())]
    assert labels[0].startswith("CTR per variant") and "control" in labels[0]
    assert labels[1].startswith("relative CTR lift") and "treatment CUPED" in labels[1]
    assert "Sample ratio check" in block.inner_text()
    page.shot("experiments-report")
    page.set_key()
    kill = block.get_by_role("button", name=f"Kill experiment {exp_id}")
    kill.click()  # the first click arms it; the second kills
    assert "Confirm" in kill.inner_text()
    kill.click()
    p.wait_for_selector(f"article[data-experiment='{exp_id}'] .badge[data-state=killed]")
    listed = httpx.get(server.base + "/v1/admin/experiments", headers=admin, timeout=10).json()
    assert next(e for e in listed["experiments"] if e["id"] == exp_id)["killed"] is True
    page.shot("experiments-killed")
    assert page.errors == []


@pytest.mark.parametrize("name", PAGES)
def test_phone_width_has_no_horizontal_scroll(browser: Any, server: Server, name: str) -> None:
    page = Page(browser, server, width=390, height=844)
    try:
        path = "/dashboard" if name == "overview" else f"/dashboard/{name}"
        if name == "preview":
            path += f"?user={server.users[0]}&k=5"
        p = page.open(path)
        if name == "experiments" and p.get_by_role("button", name="Show report").count():
            p.get_by_role("button", name="Show report").first.click()
            p.wait_for_timeout(1000)
        overflow = p.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        page.shot(f"phone-{name}")
        assert overflow <= 0, f"{name}: {overflow}px of horizontal scroll at 390 px"
        assert page.errors == []
    finally:
        page.close()


def test_main_actions_are_reachable_with_tab_and_labelled(page: Page, server: Server) -> None:
    p = page.open("/dashboard/models")
    page.set_key()
    seen: list[dict[str, str]] = []
    p.locator("body").focus()
    for _ in range(40):
        p.keyboard.press("Tab")
        seen.append(p.evaluate("""() => { const e = document.activeElement;
            const label = e.labels && e.labels.length ? e.labels[0].textContent
                        : (e.getAttribute('aria-label') || e.textContent || '');
            return {tag: e.tagName, id: e.id, label: label.trim()}; }"""))
    labels = [s["label"] for s in seen]
    assert "Admin key" in labels
    assert any(lab.startswith("Promote model ") for lab in labels)
    assert all(s["label"] for s in seen if s["tag"] in ("INPUT", "BUTTON", "A"))

    # and they work from the keyboard alone: Tab to Promote, Enter; Tab to Roll back (enabled
    # once there is a previous model), Enter
    def tab_to(prefix: str) -> str:
        for _ in range(40):
            p.keyboard.press("Tab")
            label = p.evaluate("document.activeElement.getAttribute('aria-label') || "
                               "document.activeElement.textContent")
            if label and label.strip().startswith(prefix):
                return label.strip()
        raise AssertionError(f"no focusable control labelled {prefix!r}")

    before = _ready_version(server)
    target = tab_to("Promote model ").removeprefix("Promote model ")
    p.keyboard.press("Enter")
    p.wait_for_selector("#status:has-text('promoted')")
    assert target != before and _wait_version(server, target) == target
    tab_to("Roll back to the previous model")
    p.keyboard.press("Enter")
    p.wait_for_selector("#status:has-text('rolled back')")
    assert _wait_version(server, before) == before
    # every form field on every page has a label
    for name in PAGES:
        q = page.open("/dashboard" if name == "overview" else f"/dashboard/{name}")
        unlabelled = q.evaluate("""() => [...document.querySelectorAll('input, select')]
            .filter(i => !(i.labels && i.labels.length) && !i.getAttribute('aria-label'))
            .map(i => i.id)""")
        assert unlabelled == [], name


# -- the drift / data-quality panels against the monitoring contract --------------------------
MONITORING = {  # an alarm, in the shape of serving/monitoring_schemas.py (MonitoringOut)
    "psi": {"model_version": "v7", "reference": True, "score": 0.31,
            "features": {"age_hours": 0.42, "smoothed_ctr": 0.04}, "threshold": 0.2,
            "window": 5000, "alarm": True, "drifted": ["score", "age_hours"]},
    "quality": [{"surface": "front_page", "variant": "production", "model_version": "v7",
                 "responses": 1200, "degraded_share": 0.01, "shown": 12000, "clicks": 492,
                 "ctr_at": {"1": 0.09, "3": 0.06, "5": 0.05, "10": 0.041},
                 "ctr_by_position": [0.09, 0.05, 0.04, 0.035, 0.03, 0.03, 0.025, 0.02, 0.02,
                                     0.018, None],
                 "topic_diversity": 0.7, "coverage": 0.35}],
    "data_quality": {"event_lag_s": {"click": 4.2, "impression": 1.1},
                     "events_last_minute": {"click": 31}, "rejected_events": {"missing": 3},
                     "unknown_article_clicks": 2,
                     "catalog": {"newest_article_age_s": 540.0, "live_articles": 450,
                                 "live_without_embedding": 0.0}},
}


@pytest.fixture(params=["with-monitoring", "without-monitoring"])
def monitored(request: pytest.FixtureRequest, tmp_path: Path
              ) -> Iterator[tuple[Server, bool]]:
    """The dashboard router alone under uvicorn, with or without a /v1/monitoring route that
    answers MONITORING: the panels' rendering of an alarm, and of a server without it."""
    import threading

    import uvicorn
    from fastapi import FastAPI

    from newsdesk.serving import dashboard

    app = FastAPI()
    app.include_router(dashboard.router)
    if request.param == "with-monitoring":
        @app.get("/v1/monitoring")
        async def monitoring() -> dict[str, Any]:
            return MONITORING

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    screens = tmp_path / "screens"
    screens.mkdir()
    try:
        yield Server(f"http://127.0.0.1:{port}", [], [], screens), \
            request.param == "with-monitoring"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_monitoring_panels_render_an_alarm_or_say_not_available(
        browser: Any, monitored: tuple[Server, bool]) -> None:
    server, has_route = monitored
    page = Page(browser, server)
    try:
        p = page.open("/dashboard/monitoring")
        body = p.locator("#monitoring-body")
        text = body.inner_text()
        if not has_route:
            assert "not available" in text and "/v1/monitoring answered 404" in text
            page.shot("monitoring-not-available")
        else:
            assert "ALARM" in text and "Above the threshold: score, age_hours" in text
            rows = body.locator("table").nth(0).locator("tbody tr").all_inner_texts()
            assert rows[0].split("\t") == ["age_hours", "0.420", "yes"]  # worst drift first
            quality = body.locator("table").nth(1).inner_text()
            assert "front_page" in quality and "4.10%" in quality  # CTR@10
            plot = body.locator("svg[role=img]").first.get_attribute("aria-label")
            assert plot.startswith("CTR by position") and "1 9.00%" in plot
            assert "missing" in text and "4.2 s" in text  # rejected events, click lag
            page.shot("monitoring-alarm")
        assert page.errors == []
    finally:
        page.close()


# WCAG 2 contrast of every visible text element against its nearest opaque background
CONTRAST_JS = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (el.closest('svg') || el.disabled || !el.offsetParent) continue;
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own) continue;
    const st = getComputedStyle(el);
    const fg = rgb(st.color).slice(0, 3), bg = background(el);
    const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(st.fontSize), bold = Number(st.fontWeight) >= 700;
    const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < need) bad.push(`${el.tagName}.${el.className} '${text}' ${ratio.toFixed(2)}`);
  }
  return bad;
}"""


@pytest.mark.parametrize("name", PAGES)
def test_text_contrast_meets_wcag_aa(page: Page, server: Server, name: str) -> None:
    path = "/dashboard" if name == "overview" else f"/dashboard/{name}"
    if name == "preview":
        path += f"?user={server.users[0]}&k=5"
    p = page.open(path)
    if name == "experiments" and p.get_by_role("button", name="Show report").count():
        p.get_by_role("button", name="Show report").first.click()
        p.wait_for_timeout(1000)
    assert p.evaluate(CONTRAST_JS) == []
    # the check itself sees a low-contrast text (#aaa on white: 2.3:1)
    p.evaluate("document.querySelector('main').insertAdjacentHTML('beforeend', "
               "'<p id=probe style=\"color:#aaa\">faint</p>')")
    assert [b.split(" ")[1] for b in p.evaluate(CONTRAST_JS)] == ["'faint'"]
