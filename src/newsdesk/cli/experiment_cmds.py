"""Experiment commands: `newsdesk experiment report|validate|list|kill|ope`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console

console = Console()
experiment_app = typer.Typer(help="Controlled experiments: validate configs, analyse, report.",
                             no_args_is_help=True)

_DEFAULT_DB = Path(os.environ.get("NEWSDESK_EXPERIMENTS_DB", ".newsdesk/experiments.sqlite"))
_REGISTRY = typer.Option(_DEFAULT_DB, "--registry",
                         help="Experiment registry (SQLite); env NEWSDESK_EXPERIMENTS_DB.")


@experiment_app.command("validate")
def validate(
    file: Path = typer.Argument(..., help="YAML experiment file or a folder of them."),
    register: bool = typer.Option(False, "--register",
                                  help="Store valid configs in the registry (new version if "
                                       "changed, audit-logged)."),
    actor: str = typer.Option(os.environ.get("USER", "cli"), "--actor",
                              help="Who made the change (audit log)."),
    registry: Path = _REGISTRY,
) -> None:
    """Validate experiment configs; errors name the file and the field."""
    from newsdesk.experiments.config import load_suite

    suite = load_suite(file)
    for e in suite.experiments:
        weights = ", ".join(f"{v.name} {w:.0%}" for v, w in zip(e.variants, e.weights(),
                                                                   strict=True))
        console.print(f"ok  {e.id}  layer={e.layer}  traffic=[{e.traffic_start}, "
                      f"{e.traffic_start + e.traffic})  {weights}  status={e.status.value}")
    if suite.holdout.fraction:
        console.print(f"holdout {suite.holdout.fraction:.1%} (salt {suite.holdout.salt})")
    if register:
        from newsdesk.experiments.registry import SqliteExperimentRegistry

        reg = SqliteExperimentRegistry(registry)
        for e in suite.experiments:
            stored = reg.put(e, actor)
            console.print(f"registered {e.id} version {stored.version}")
        reg.close()


@experiment_app.command("list")
def list_experiments(
    registry: Path = _REGISTRY,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the registry's experiments (latest version of each)."""
    from newsdesk.experiments.registry import SqliteExperimentRegistry

    if not registry.exists():
        console.print(f"no registry at {registry} (register configs with "
                      "'newsdesk experiment validate FILE --register')")
        return
    reg = SqliteExperimentRegistry(registry)
    rows = [{"id": s.config.id, "version": s.version, "status": s.config.status.value,
             "layer": s.config.layer, "traffic": s.config.traffic,
             "variants": [v.name for v in s.config.variants], "updated_at": s.updated_at}
            for s in reg.latest()]
    reg.close()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        console.print(f"{r['id']}  v{r['version']}  {r['status']}  layer={r['layer']}  "
                      f"traffic={r['traffic']}  variants={r['variants']}")


@experiment_app.command("report")
def report(
    experiment_id: str = typer.Argument(..., help="Experiment id."),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory (impressions + "
                                 "interactions)."),
    json_out: Path = typer.Option(None, "--json", help="Also write the analysis JSON here."),
    out: Path = typer.Option(None, "--out", help="Folder for report.md/.png/.json "
                             "(default DATASET/reports/ID)."),
    config: Path = typer.Option(None, "--config", help="YAML config (allocation weights, "
                                "variant order); else the registry if it has the id."),
    registry: Path = _REGISTRY,
) -> None:
    """Analyse an experiment: per-variant metrics, CIs, SRM, CUPED, mSPRT; Markdown + PNG."""
    from newsdesk.errors import ConfigError
    from newsdesk.experiments.analysis import analyze_dataset
    from newsdesk.experiments.report import json_safe, to_markdown, write_report

    exp_config = None
    if config is not None:
        from newsdesk.experiments.config import load_suite

        exp_config = load_suite(config).get(experiment_id)
    elif registry.exists():
        from newsdesk.experiments.registry import SqliteExperimentRegistry

        reg = SqliteExperimentRegistry(registry)
        try:
            exp_config = reg.get(experiment_id).config
        except ConfigError:
            exp_config = None
        reg.close()
    if exp_config is not None and exp_config.type != "ab":  # interleaving / bandit
        from newsdesk.experiments.live_analysis import live_report

        live = json_safe({"experiment": experiment_id, **live_report(dataset, exp_config)})
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(live, indent=2))
        print(json.dumps(live, indent=2))
        return
    result = analyze_dataset(dataset, experiment_id, exp_config)
    paths = write_report(result, out or dataset / "reports" / experiment_id)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False))
    print(to_markdown(result))  # plain print: rich would re-wrap the table rows
    console.print(f"written: {paths['markdown']}, {paths['png']}, {paths['json']}")


@experiment_app.command("kill")
def kill(
    experiment_id: str = typer.Argument(..., help="Experiment id with a staged rollout."),
    state: Path = typer.Option(..., "--state", help="Rollout state file (JSON)."),
    actor: str = typer.Option(os.environ.get("USER", "cli"), "--actor"),
    reason: str = typer.Option("", "--reason"),
) -> None:
    """Kill switch: treatment traffic 0 from the next request (servers re-read the file)."""
    from newsdesk.experiments.rollout import JsonFileRolloutStore, RolloutController

    ctl = RolloutController(JsonFileRolloutStore(state))
    s = ctl.kill(experiment_id, actor, reason)
    console.print(f"{experiment_id}: {s.status.value}, treatment fraction {s.fraction}")


@experiment_app.command("ope")
def ope(
    dataset: Path = typer.Option(..., "--dataset", help="Dataset directory with served, "
                                 "explored slates (an exported event log)."),
    bundle: Path = typer.Option(..., "--bundle", help="Candidate model bundle directory."),
    json_out: Path = typer.Option(None, "--json", help="Also write the estimates JSON here."),
    alpha: float = typer.Option(0.05, "--alpha", help="1 - confidence level of the CIs."),
) -> None:
    """Counterfactual CTR of a candidate bundle from explored traffic (IPS, SNIPS, DR)."""
    from newsdesk.experiments.ope_dataset import run_ope
    from newsdesk.experiments.report import json_safe

    result = run_ope(dataset, bundle, alpha)
    d = result["diagnostics"]
    console.print(f"candidate {result['candidate_version']}: {d['slates']} explored slates, "
                  f"logged CTR {d['logged_ctr']:.4f}, match rate {d['match_rate']:.3f}, "
                  f"effective sample size {d['effective_sample_size']:.0f}")
    for name, e in result["estimates"].items():
        bound = e.get("bias_bound") or 0.0  # the reward model's extrapolation (dr)
        console.print(f"  {name:<13} CTR {e['value']:.4f}  {1 - alpha:.0%} CI "
                      f"[{e['ci_low']:.4f}, {e['ci_high']:.4f}]"
                      + (f" incl. +-{bound:.4f} for unsupported items" if bound else ""))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(json_safe(result), indent=2, allow_nan=False))


def register(app: typer.Typer) -> None:
    app.add_typer(experiment_app, name="experiment")
