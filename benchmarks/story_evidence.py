"""How much the log says about each (reader, story) follow in world v2: the evidence a model of
story following can learn from, quick world against full.

    python benchmarks/story_evidence.py [--quick | --full | --data DIR] [--days D] [--json FILE]

For a sample of held-out rows (the last half day's shown articles that belong to a story), the
number of earlier times the reader was shown an article of the same (true) story and clicked
one, split by whether the reader follows the story (the simulator's latent fact). A reader who
was never shown the story before carries no evidence of following it beyond the prior; that
share is what limits any model of story following, however good. `--data` reads an existing
simulated v2 dataset (e.g. a simulator_quality work dir's `sim`); otherwise the world is
simulated (quick: seconds; full: 100k readers x 7 days, minutes). `--days` limits the earlier
log read (memory at full scale).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from newsdesk.data.dataset import Dataset
from newsdesk.simulation import SimulationConfig, World, simulate_to_dataset


def evidence(path: Path, days: float | None, n_rows: int, seed: int = 0) -> dict:
    world = World.load(path)
    ds = Dataset(path)
    imp = ds.read("impressions").select("request_id", "user_id", "timestamp", "article_ids")
    if days is not None:
        imp = imp.filter(pl.col("timestamp") >= imp["timestamp"].max() - pl.duration(days=days))
    clicks = (ds.read("interactions").filter(pl.col("type") == "click")
              .select("request_id", "user_id", "article_id").with_columns(pl.lit(1).alias("clk")))
    shown = (imp.explode("article_ids").rename({"article_ids": "article_id"})
             .with_columns(pl.col("timestamp").dt.epoch("us").alias("us"))
             .join(clicks, on=["request_id", "user_id", "article_id"], how="left")
             .with_columns(pl.col("clk").fill_null(0)))
    # simulated ids are "a{j}" / "u{j}": the world's indices (World.article_index checks it)
    a = shown["article_id"].str.slice(1).cast(pl.Int64).to_numpy()
    assert (world.article_index(shown["article_id"].head(3).to_list()) == a[:3]).all()
    shown = shown.with_columns(
        pl.Series("story", world.article_story[a]),
        pl.Series("u", shown["user_id"].str.slice(1).cast(pl.Int64).to_numpy()))
    stories = shown.filter(pl.col("story") >= 0).select("u", "story", "us", "clk")
    cut = stories["us"].max() - int(0.5 * 86400e6)
    held = (stories.filter(pl.col("us") >= cut)
            .sample(n=min(n_rows, stories.height), seed=seed).with_row_index("row"))
    before = (held.select("row", "u", "story", "us")
              .join(stories, on=["u", "story"], suffix="_e")
              .filter(pl.col("us_e") < pl.col("us"))
              .group_by("row").agg(pl.len().alias("n_shown"),
                                   pl.col("clk").sum().alias("n_clicked")))
    held = held.join(before, on="row", how="left").with_columns(
        pl.col("n_shown").fill_null(0), pl.col("n_clicked").fill_null(0))
    follows = np.asarray(world.follows_story(held["u"].to_numpy(), held["story"].to_numpy()),
                         dtype=bool)
    n, c = held["n_shown"].to_numpy(), held["n_clicked"].to_numpy()
    out = {"rows": int(len(n)), "followed_share": float(follows.mean())}
    for name, m in (("followed", follows), ("not_followed", ~follows)):
        out[name] = {"mean_earlier_exposures": float(n[m].mean()),
                     "share_never_shown_before": float(np.mean(n[m] == 0)),
                     "share_shown_3_or_more": float(np.mean(n[m] >= 3)),
                     "mean_earlier_clicks": float(c[m].mean())}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--data", type=Path, default=None, help="a simulated v2 dataset directory")
    ap.add_argument("--days", type=float, default=None,
                    help="read only the last D days of the log (default: all)")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1, help="the world's seed when simulating")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nd-story-evidence-") as tmp:
        data = args.data
        if data is None:
            if args.full:
                sim = SimulationConfig.v2(seed=args.seed, n_users=100_000, days=7.0,
                                          articles_per_day=5000, impressions_per_day=1_000_000,
                                          backlog_days=2.0)
            else:  # the simulator_quality quick world
                sim = SimulationConfig.v2(seed=args.seed, n_users=3000, days=2.0,
                                          articles_per_day=150, impressions_per_day=40_000,
                                          backlog_days=1.0)
            data = Path(tmp) / "sim"
            simulate_to_dataset(sim, data)
        result = {"benchmark": "story_evidence", "data": str(args.data or "simulated"),
                  "full": args.full, "days": args.days,
                  **evidence(data, args.days, args.rows)}
    print(f"{result['rows']} held-out story rows, {result['followed_share']:.3f} followed")
    for name in ("followed", "not_followed"):
        r = result[name]
        print(f"  {name:13s} earlier exposures {r['mean_earlier_exposures']:.2f} "
              f"(never shown before {r['share_never_shown_before']:.3f}, "
              f">= 3: {r['share_shown_3_or_more']:.3f}), "
              f"earlier clicks {r['mean_earlier_clicks']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
