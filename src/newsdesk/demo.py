"""`make demo`: the main job on embedded defaults, end to end, on a simulated news world.

Steps: simulate a small world -> stats -> import the real MIND sample when ../shared/data is
present -> train a bundle -> evaluate it -> serve it and make real requests -> run a short A/B
test through the real service with clicks drawn from the simulator's known click model -> one
cycle of the continuous training loop (export, train, replay gate, promote or reject).
Every step uses the public library entry points and the real server, so the demo doubles as a
smoke test of the whole product.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from rich.console import Console

console = Console()
REPO = Path(__file__).resolve().parents[2]
SHARED_MIND = REPO.parent / "shared" / "data" / "mind-sample"


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--users", type=int, default=3000)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--ab-seconds", type=float, default=30.0,
                        help="How long the simulated A/B test drives traffic.")
    args = parser.parse_args(argv)
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    from newsdesk.data.stats import dataset_stats, render_stats
    from newsdesk.demo_experiment import run_experiment_demo
    from newsdesk.demo_serving import run_serving_demo
    from newsdesk.evaluation.harness import run_evaluation
    from newsdesk.pipelines.train import TrainConfig, train
    from newsdesk.simulation import SimulationConfig, simulate_to_dataset

    _step("1. simulate a news world with a known click model")
    sim_dir = out / "sim"
    config = SimulationConfig(seed=7, n_users=args.users, days=args.days,
                              articles_per_day=300, impressions_per_day=20_000, slate_size=10)
    summary = simulate_to_dataset(config, sim_dir, progress=True)
    console.print(summary)
    console.print(render_stats(dataset_stats(sim_dir)))

    if SHARED_MIND.is_dir():
        from newsdesk.data.importers import run_import

        _step("2. import the real MIND sample from ../shared/data")
        report = run_import("mind", SHARED_MIND, out / "mind", skip_invalid=False)
        console.print(report.summary())
        console.print(render_stats(dataset_stats(out / "mind")))
    else:
        _step("2. (skipped) ../shared/data/mind-sample is not present")

    _step("3. train a model bundle on the simulated world")
    # the embedding cache is shared with step 7's trainings (the same articles: embedded once)
    version = train(sim_dir, out / "bundles",
                    TrainConfig(embedding_cache_dir=str(out / "embedding-cache")))
    console.print(f"bundle version: [bold]{version}[/bold] in {out / 'bundles'}")

    _step("4. evaluate it by streaming replay of the last day, against baselines")
    report = run_evaluation(sim_dir, out / "bundles" / version, "replay", window="last-day",
                            k=10, seed=0, n_resamples=300, predictions=None)
    paths = report.write(out / "evaluation")
    console.print(report.markdown())
    console.print(f"report: {', '.join(str(p) for p in paths.values())}")

    _step("5. serve it and make real requests")
    run_serving_demo(sim_dir, out / "bundles")

    _step("6. a short A/B test through the real service, clicks from the simulator")
    run_experiment_demo(sim_dir, out / "bundles", out / "experiment", duration_s=args.ab_seconds)

    _step("7. one cycle of the continuous training loop: export, train, gate, promote")
    from newsdesk.demo_pipeline import run_pipeline_demo

    run_pipeline_demo(sim_dir, out / "pipeline", embedding_cache=out / "embedding-cache")

    _step("done")
    console.print(f"outputs are in [bold]{out}[/bold]; see README.md for what to try next")
    return 0


if __name__ == "__main__":
    sys.exit(main())
