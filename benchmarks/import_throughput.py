"""Import throughput: synthetic MIND-small-sized files through `newsdesk import mind`.

    python benchmarks/import_throughput.py [--quick] [--json FILE] [--seed N]

Generates MIND-format behaviors.tsv / news.tsv of MIND-small size (160k impressions, 50k news,
~37 shown items and ~30 history items per impression; --quick: 20k / 8k), imports them in a
child process and prints rows/s per table, MB/s and the child's peak RSS (getrusage
RUSAGE_CHILDREN). Also times row validation alone: the fast path against pydantic per row.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from newsdesk.data.importers.mind import behaviors_line, news_line
from newsdesk.data.importers.validate import validate
from newsdesk.data.schema import RECORDS

WORDS = ["market", "election", "storm", "team", "coach", "season", "vote", "city", "police",
         "court", "health", "study", "school", "fire", "river", "music", "film", "star", "game"]


def generate(folder: Path, n_impressions: int, n_news: int, seed: int) -> dict[str, int]:
    """Write behaviors.tsv and news.tsv; 30% more news ids are referenced than cataloged."""
    rng = np.random.default_rng(seed)
    n_ids = int(n_news * 1.3)
    n_users = max(1, n_impressions // 3)
    t0 = datetime(2019, 11, 9, tzinfo=UTC)
    # popularity-skewed shown items, a fixed history per user (as in MIND)
    cdf = np.cumsum(1.0 / np.arange(1, n_ids + 1) ** 0.8)
    cdf /= cdf[-1]

    def draw(k: int) -> np.ndarray:  # k popularity-weighted ids (rng.choice(p=) is O(n_ids))
        return np.minimum(np.searchsorted(cdf, rng.random(k)), n_ids - 1)

    hist_len = rng.poisson(30, n_users)
    histories = {}
    shown_total = 0
    with (folder / "behaviors.tsv").open("w") as fh:
        for i in range(n_impressions):
            user = int(rng.integers(n_users))
            if user not in histories:
                histories[user] = [f"N{j + 1}" for j in draw(int(hist_len[user]))]
            k = int(np.clip(rng.poisson(37), 2, 300))
            shown = [f"N{j + 1}" for j in np.unique(draw(k))]
            clicked = {shown[int(c)] for c in rng.integers(len(shown), size=1 + (i % 4 == 0))}
            ts = t0 + timedelta(seconds=int(rng.integers(6 * 86_400)))
            fh.write(behaviors_line(str(i + 1), f"U{user}", ts, histories[user], shown,
                                    clicked) + "\n")
            shown_total += len(shown)
    with (folder / "news.tsv").open("w") as fh:
        for j in range(n_news):
            title = " ".join(rng.choice(WORDS, 8))
            abstract = " ".join(rng.choice(WORDS, 30))
            ents = [(f"Q{int(q)}", f"Entity {int(q)}") for q in rng.integers(1000, size=2)]
            fh.write(news_line(f"N{j + 1}", "news", "newsus", title, abstract,
                               f"https://example.org/{j}", ents) + "\n")
    return {"impressions": n_impressions, "news": n_news, "shown_items": shown_total}


CHILD = """
import json, sys
from pathlib import Path
from newsdesk.data.importers import run_import
report = run_import("mind", Path(sys.argv[1]), Path(sys.argv[2]), progress=False)
print(json.dumps(report.to_dict()))
"""


def run_child(src: Path, out: Path) -> tuple[dict, float, float, float]:
    """Import in a child process: (report, wall s, child CPU s, child peak RSS in MB)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", CHILD, str(src), str(out)],
                            capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the only child this process ran
    peak_mb = usage.ru_maxrss / 1024  # KB on Linux
    return json.loads(result.stdout), wall, usage.ru_utime + usage.ru_stime, peak_mb


def validation_micro(n: int) -> dict[str, float]:
    """Microseconds per impression row: the fast path vs a pydantic record per row."""
    ts = datetime(2019, 11, 9, tzinfo=UTC)
    rows = [{"request_id": str(i), "user_id": f"U{i}", "timestamp": ts, "surface": "front_page",
             "article_ids": [f"N{j}" for j in range(37)]} for i in range(n)]
    start = time.perf_counter()
    for r in rows:
        validate("impressions", r)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for r in rows:
        RECORDS["impressions"].model_validate(r).model_dump()
    slow = time.perf_counter() - start
    return {"fast_path_us_per_row": 1e6 * fast / n, "pydantic_us_per_row": 1e6 * slow / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20k impressions / 8k news")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    n_imp, n_news = (20_000, 8_000) if args.quick else (160_000, 50_000)

    with tempfile.TemporaryDirectory(prefix="newsdesk-bench-") as tmp:
        src = Path(tmp) / "mind"
        src.mkdir()
        t = time.perf_counter()
        gen = generate(src, n_imp, n_news, args.seed)
        gen_s = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in src.iterdir()) / 2**20
        report, wall, cpu, peak_mb = run_child(src, Path(tmp) / "out")
        out_mb = sum(p.stat().st_size for p in (Path(tmp) / "out").rglob("*.parquet")) / 2**20

    seconds = report["seconds"]
    rates = {t: n / seconds for t, n in report["rows"].items()}
    # the machine may be shared: CPU time (incl. ~1 s interpreter start) is the stabler base
    cpu_rates = {t: n / cpu for t, n in report["rows"].items()}
    micro = validation_micro(5_000)
    figures = {
        "benchmark": "import_throughput", "quick": args.quick, "seed": args.seed,
        "input": {**gen, "megabytes": round(size_mb, 1), "generate_seconds": round(gen_s, 1)},
        "rows": report["rows"], "import_seconds": round(seconds, 2),
        "wall_seconds_with_interpreter": round(wall, 2),
        # CPU time of the child incl. interpreter start: stable when other jobs share the cores
        "child_cpu_seconds": round(cpu, 2),
        "rows_per_second": {t: round(r) for t, r in rates.items()},
        "rows_per_cpu_second": {t: round(r) for t, r in cpu_rates.items()},
        "shown_items_per_second": round(gen["shown_items"] / seconds),
        "shown_items_per_cpu_second": round(gen["shown_items"] / cpu),
        "megabytes_per_second": round(size_mb / seconds, 1),
        "peak_rss_mb": round(peak_mb, 1), "output_megabytes": round(out_mb, 1),
        "missing_article_ids": report["missing_article_ids"],
        "validation": {k: round(v, 2) for k, v in micro.items()},
    }
    print(f"input: {gen['impressions']:,} impressions, {gen['news']:,} news, "
          f"{gen['shown_items']:,} shown items, {size_mb:.1f} MB (generated in {gen_s:.1f}s)")
    print(f"import: {seconds:.2f}s in the importer, {wall:.2f}s wall / {cpu:.2f}s CPU incl. "
          f"interpreter start; "
          f"{size_mb / seconds:.1f} MB/s; peak RSS {peak_mb:.0f} MB; output {out_mb:.1f} MB")
    for table, rate in rates.items():
        print(f"  {table:<13}{report['rows'][table]:>10,} rows  {rate:>12,.0f} rows/s  "
              f"{cpu_rates[table]:>10,.0f} rows/CPU-s")
    print(f"  shown items {gen['shown_items'] / seconds:>25,.0f} items/s  "
          f"{gen['shown_items'] / cpu:>10,.0f} items/CPU-s")
    print(f"validation per impression row (37 ids): fast path "
          f"{micro['fast_path_us_per_row']:.1f} us, pydantic {micro['pydantic_us_per_row']:.1f} us")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
