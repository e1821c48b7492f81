"""The dashboard step of `make demo`: print its URL and save screenshots of it.

    capture_dashboard(base_url, out_dir, user_id="u1") -> list of PNG paths (empty: no browser)

Uses Debian's chromium through Playwright when both are present (the same pairing as the
browser tests); otherwise it prints how to install them and the demo goes on.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

console = Console()
CHROMIUM = "/usr/bin/chromium"
SHOTS = {"dashboard-overview": "/dashboard", "dashboard-models": "/dashboard/models",
         "dashboard-preview": "/dashboard/preview?user={user}&k=10"}


def capture_dashboard(base_url: str, out_dir: Path, *, user_id: str = "u1",
                      shots: dict[str, str] | None = None,
                      timeout_s: float = 20.0) -> list[Path]:
    """Screenshots of dashboard pages (`shots`: file stem -> path; default SHOTS) into
    out_dir, with bounded waits. On the experiments page the first report is opened."""
    base = str(base_url).rstrip("/")
    console.print(f"dashboard: [bold]{base}/dashboard[/bold] (read-only views open; "
                  "promote / rollback / kill ask for the admin key)")
    try:
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import sync_playwright
    except ImportError:
        console.print("  no screenshot: playwright is missing (pip install 'newsdesk[dev]')")
        return []
    if shutil.which(CHROMIUM) is None:
        console.print(f"  no screenshot: {CHROMIUM} is missing (apt-get install chromium)")
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(timeout_s * 1000)
                for name, path in (shots or SHOTS).items():
                    page.goto(base + path.format(user=user_id))
                    page.wait_for_selector("body[data-loaded=true]")
                    if "preview" in path:
                        page.wait_for_selector("#preview-items > li")
                    if path == "/dashboard":  # the traffic plot draws from its second poll
                        page.wait_for_selector("#traffic-plot svg path")
                    show = page.get_by_role("button", name="Show report")
                    if path.startswith("/dashboard/experiments") and show.count():
                        show.first.click()
                        page.wait_for_selector("#experiment-list svg[role=img]")
                    target = out_dir / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    paths.append(target)
            finally:
                browser.close()
    except PlaywrightError as exc:  # a screenshot is a nice-to-have: the demo goes on
        console.print(f"  screenshot failed: {str(exc).splitlines()[0]}")
    for shot in paths:
        console.print(f"  screenshot: {shot}")
    return paths
