"""The experiment part of `make demo`: a real A/B test through `newsdesk serve`.

    run_experiment_demo(dataset_dir, bundles_dir, out_dir, duration_s=40)

1. starts `newsdesk serve` as a subprocess (fresh state dir in `out_dir`, admin key set, the
   clock at the end of the simulated period so the world's articles are live);
2. registers an A/B test over the admin API: control = the production bundle (personalised
   ranking), treatment = the "trending" pipeline (no personalisation: trending, then latest
   articles) — the cheapest honest second arm, no second training run needed;
3. drives simulated users through the service for `duration_s`: users are drawn by activity
   from the simulator's `World`, every slate the service returns is shown to the world's true
   click model (`World.respond`), and the clicks are POSTed back as events with the slate's
   request_id — exactly what a client app would do;
4. fetches GET /v1/experiments/{id}/report (computed on demand from the service's event log),
   prints per-variant CTR with 95% CIs, the SRM check and the verdict, and writes report.md /
   report.png / report.json into `out_dir`;
5. pulls the kill switch and shows that a treated user is served the control on the next request.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from newsdesk.data.stats import dataset_stats
from newsdesk.demo_serving import running_server

console = Console()
EXPERIMENT_ID = "demo-personalised-vs-trending"


def experiment_config(production_version: str) -> dict[str, Any]:
    """The A/B test: 50/50 on the front page, control = the production bundle."""
    return {
        "id": EXPERIMENT_ID, "layer": "ranking", "surfaces": ["front_page"],
        "description": "personalised ranking (production bundle) vs trending, 50/50",
        "owner": "demo", "primary_metric": "ctr",
        "variants": [{"name": "control", "weight": 1, "bundle": production_version},
                     {"name": "treatment", "weight": 1, "pipeline": "trending"}],
    }


def drive_traffic(client: httpx.Client, world: Any, t0: float, duration_s: float,
                  seed: int = 7, k: int = 10) -> dict[str, dict[str, float]]:
    """Simulated users for `duration_s` of wall time; returns per-variant requests/shown/clicks
    as counted by the simulator (the service's report is computed independently)."""
    rng = np.random.default_rng(seed)
    start = time.monotonic()
    counts: dict[str, dict[str, float]] = {}
    n_events = 0
    while time.monotonic() - start < duration_s:
        user = f"u{int(world.sample_users(1, rng)[0])}"
        body = client.post("/v1/recommendations", json={"user_id": user, "k": k,
                                                        "surface": "front_page"})
        body.raise_for_status()
        slate = body.json()
        ids = [it["article_id"] for it in slate["items"]]
        ids = [a for a in ids if a[1:].isdigit() and int(a[1:]) < world.n_articles]
        c = counts.setdefault(slate["variant"] or "production",
                              {"requests": 0, "shown": 0, "clicks": 0})
        c["requests"] += 1
        c["shown"] += len(ids)
        if not ids:
            continue
        t = t0 + (time.monotonic() - start)  # the service clock runs in real time from t0
        clicked = np.asarray(ids)[world.respond(user, ids, t, rng)]
        c["clicks"] += len(clicked)
        if len(clicked):
            events = []
            for a in clicked:
                n_events += 1
                events.append({"type": "click", "event_id": f"exp-demo-{seed}-{n_events}",
                               "user_id": user, "article_id": str(a),
                               "request_id": slate["request_id"]})
            client.post("/v1/events", json={"events": events}).raise_for_status()
    return counts


def print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"experiment {report['experiment_id']} (computed on demand from the "
                        "event log)")
    for col in ("variant", "users", "shown", "clicks", "CTR", "95% CI"):
        table.add_column(col, justify="right")
    for name, s in report["per_variant"].items():
        ctr = s["ctr"]
        table.add_row(name, str(s["users"]), f"{s['shown']:.0f}", f"{s['clicks']:.0f}",
                      f"{ctr['value']:.4f}", f"[{ctr['ci_low']:.4f}, {ctr['ci_high']:.4f}]")
    console.print(table)
    srm = report["srm"]
    console.print(f"sample ratio check: users {srm['counts']} vs expected "
                  f"{[round(e, 1) for e in srm['expected']]}, p = {srm['p_value']:.3g} -> "
                  f"{'[red]MISMATCH[/red]' if srm['mismatch'] else 'ok'}")
    for v, metrics in report["comparisons"].items():
        f = metrics["ctr"]["fixed"]
        lift = f.get("rel_lift")
        lo, hi = f.get("rel_ci_low"), f.get("rel_ci_high")
        if lift is not None and lo is not None and hi is not None:
            console.print(f"{v} vs {report['control']}: CTR lift {lift:+.1%} "
                          f"(95% CI [{lo:+.1%}, {hi:+.1%}]), p = {f['p_value']:.3g}")
    console.print(f"verdict: [bold]{report['verdict']}[/bold]")
    print_personalised_lift(report)


def personalised_lift(report: dict[str, Any]) -> dict[str, float] | None:
    """The lift of the personalised control over the trending treatment, with its 95% CI
    (the report compares treatment to control; l -> 1 / (1 + l) - 1 is monotone, so the
    interval maps end to end)."""
    f = report.get("comparisons", {}).get("treatment", {}).get("ctr", {}).get("fixed", {})
    lift, lo, hi = f.get("rel_lift"), f.get("rel_ci_low"), f.get("rel_ci_high")
    if lift is None or lo is None or hi is None or min(lift, lo, hi) <= -1:
        return None
    return {"lift": 1 / (1 + lift) - 1, "ci_low": 1 / (1 + hi) - 1, "ci_high": 1 / (1 + lo) - 1}


def print_personalised_lift(report: dict[str, Any]) -> None:
    lift = personalised_lift(report)
    if lift is None:
        return
    excludes = lift["ci_low"] > 0 or lift["ci_high"] < 0
    console.print(f"[bold]personalised (newsdesk) vs trending: CTR lift {lift['lift']:+.1%} "
                  f"(95% CI [{lift['ci_low']:+.1%}, {lift['ci_high']:+.1%}])[/bold] — the "
                  f"interval {'excludes' if excludes else 'includes'} zero")


def run_experiment_demo(dataset_dir: Path, bundles_dir: Path, out_dir: Path, *,
                        duration_s: float = 40.0, seed: int = 7) -> dict[str, Any]:
    """Run the A/B demo against a real `newsdesk serve`; returns the report dict."""
    from newsdesk.experiments.report import write_report
    from newsdesk.simulation import World

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = World.load(dataset_dir)
    last_event = dataset_stats(dataset_dir)["last_event"]
    key = secrets.token_hex(16)
    admin = {"X-API-Key": key, "X-Actor": "demo"}
    with running_server(dataset_dir, bundles_dir, out_dir / "serve-state",
                        out_dir / "serve.log", env={"NEWSDESK_ADMIN_API_KEY": key}) as client:
        production = client.get("/readyz").json()["model_version"]
        config = experiment_config(production)
        created = client.post("/v1/admin/experiments", json=config, headers=admin)
        created.raise_for_status()
        console.print(f"registered experiment {EXPERIMENT_ID}: control = bundle "
                      f"{production}, treatment = trending pipeline "
                      f"(version {created.json()['experiments'][0]['version']})")
        console.print(f"driving simulated users through the service for {duration_s:.0f} s"
                      " (clicks drawn from the world's true click model)...")
        counts = drive_traffic(client, world, last_event.timestamp(), duration_s, seed)
        for v, c in sorted(counts.items()):
            console.print(f"  simulator saw {v}: {c['requests']:.0f} requests, "
                          f"{c['clicks']:.0f} clicks / {c['shown']:.0f} shown")
        r = client.get(f"/v1/experiments/{EXPERIMENT_ID}/report", headers=admin)
        r.raise_for_status()
        report = r.json()
        print_report(report)
        paths = write_report(report, out_dir)
        console.print(f"report written: {paths['markdown']}, {paths['png']}")

        # the kill switch: a treated user gets the control from the very next request
        treated = next((u for u in (f"u{i}" for i in range(world.n_users))
                        if client.post("/v1/recommendations", json={"user_id": u, "k": 3})
                        .json()["variant"] == "treatment"), None)
        client.post(f"/v1/admin/experiments/{EXPERIMENT_ID}/kill",
                    params={"reason": "demo"}, headers=admin).raise_for_status()
        if treated is not None:
            after = client.post("/v1/recommendations",
                                json={"user_id": treated, "k": 3}).json()
            console.print(f"kill switch pulled: {treated} was in treatment, next request "
                          f"-> variant [bold]{after['variant']}[/bold] (model "
                          f"{after['model_version']})")
    return report
