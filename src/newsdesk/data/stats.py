"""A readable summary of a dataset directory: counts, date range, CTR, coverage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from newsdesk.data.dataset import Dataset


def dataset_stats(root: str | Path) -> dict[str, Any]:
    """Compute the summary with lazy scans (bounded memory on large datasets)."""
    ds = Dataset(root)
    imps = ds.scan("impressions")
    inter = ds.scan("interactions")
    arts = ds.scan("articles")

    n_impressions = ds.count("impressions")
    n_articles = ds.count("articles")
    shown = imps.select(pl.col("article_ids").list.len().sum()).collect().item() or 0
    clicks = inter.filter(pl.col("type") == "click")
    n_clicks = clicks.select(pl.len()).collect().item()
    attributed = clicks.filter(pl.col("request_id").is_not_null()).select(pl.len()).collect().item()
    users = (
        pl.concat([imps.select("user_id"), inter.select("user_id")]).unique()
        .select(pl.len()).collect().item()
    )
    times = pl.concat([imps.select("timestamp"), inter.select("timestamp")]).select(
        pl.col("timestamp").min().alias("first"), pl.col("timestamp").max().alias("last")
    ).collect()
    referenced = pl.concat([
        imps.select(pl.col("article_ids").explode().alias("article_id")),
        inter.select("article_id"),
        ds.scan("histories").select(pl.col("article_ids").explode().alias("article_id")),
    ]).unique()
    catalog = arts.select("article_id").unique()
    n_referenced = referenced.select(pl.len()).collect().item()
    n_known = (
        referenced.join(catalog, on="article_id", how="semi").select(pl.len()).collect().item()
    )
    n_shown_catalog = (
        imps.select(pl.col("article_ids").explode().alias("article_id")).unique()
        .join(catalog, on="article_id", how="semi").select(pl.len()).collect().item()
    )
    return {
        "dataset": str(root),
        "source": ds.source,
        "impressions": n_impressions,
        "users": users,
        "articles": n_articles,
        "clicks": n_clicks,
        "shown_items": shown,
        "first_event": times["first"][0],
        "last_event": times["last"][0],
        # CTR over shown items, counting only clicks attributed to an impression
        "ctr": (attributed / shown) if shown else None,
        # share of referenced article ids that the catalog knows (MIND has gaps)
        "catalog_coverage": (n_known / n_referenced) if n_referenced else None,
        "missing_articles": n_referenced - n_known,
        # share of the catalog that was shown at least once; undefined without logged slates
        # (MovieLens has ratings only), not 0%
        "catalog_shown_share": (n_shown_catalog / n_articles)
        if n_articles and n_impressions else None,
    }


def render_stats(s: dict[str, Any]) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f}%"

    return "\n".join([
        f"[bold]{s['dataset']}[/bold] (source: {s['source']})",
        f"  impressions      {s['impressions']:>12,}",
        f"  users            {s['users']:>12,}",
        f"  articles         {s['articles']:>12,}",
        f"  clicks           {s['clicks']:>12,}",
        f"  shown items      {s['shown_items']:>12,}",
        f"  date range       {s['first_event']} .. {s['last_event']}",
        f"  CTR              {pct(s['ctr']):>12}",
        f"  catalog coverage {pct(s['catalog_coverage']):>12}  "
        f"({s['missing_articles']:,} referenced ids missing from the catalog)",
        f"  catalog shown    {pct(s['catalog_shown_share']):>12}",
    ])
