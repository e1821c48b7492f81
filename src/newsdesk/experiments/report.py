"""Render an analysis dict (`newsdesk.experiments.analysis`) as Markdown, PNG and JSON.

`write_report(result, out_dir)` writes ``report.md``, ``report.png`` (per-variant CTR with CIs,
and the always-valid p-value of every comparison per daily look) and ``report.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from newsdesk.deps import require


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:+.2%}" if pct else f"{x:.4g}"


def to_markdown(result: dict[str, Any]) -> str:
    """A human-readable report; the SRM warning comes first when conclusions are blocked."""
    lines = [f"# Experiment {result.get('experiment_id', '?')}", ""]
    srm = result["srm"]
    if result["conclusions_blocked"]:
        lines += [f"> **{result['verdict']}**", ""]
    lines += [f"Dataset: `{result.get('dataset', '?')}` - start {result['start']} - "
              f"{result['days']} day(s) - control `{result['control']}` - "
              f"users in several variants (dropped): {result['mixed_users']}", "",
              f"Sample ratio check: counts {srm['counts']} vs expected "
              f"{[round(e, 1) for e in srm['expected']]}, chi2 = {srm['statistic']:.2f}, "
              f"p = {srm['p_value']:.3g} ({'MISMATCH' if srm['mismatch'] else 'ok'})", "",
              "## Per variant", "",
              "| variant | users | CTR | CTR 95% CI | clicks/user | dwell s/user |",
              "|---|---:|---:|---|---:|---:|"]
    for v, s in result["per_variant"].items():
        c = s["ctr"]
        lines.append(f"| {v} | {s['users']} | {_fmt(c['value'])} | "
                     f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}] | "
                     f"{_fmt(s['clicks_per_user']['value'])} | "
                     f"{_fmt(s['dwell_per_user']['value'])} |")
    lines += ["", "## Treatment vs control", "",
              "| variant | metric | lift | lift 95% CI | p (fixed) | CUPED lift CI | "
              "var. reduction | p (always valid) |",
              "|---|---|---:|---|---:|---|---:|---:|"]
    for v, metrics in result["comparisons"].items():
        for m, r in metrics.items():
            f, cu, sq = r["fixed"], r["cuped"], r["sequential"]
            lines.append(
                f"| {v} | {m} | {_fmt(f['rel_lift'], True)} | [{_fmt(f['rel_ci_low'], True)}, "
                f"{_fmt(f['rel_ci_high'], True)}] | {f['p_value']:.3g} | "
                f"[{_fmt(cu['rel_ci_low'], True)}, {_fmt(cu['rel_ci_high'], True)}] | "
                f"{_fmt(cu['variance_reduction'], True)} | {sq['p_value']:.3g} |")
    lines += ["", "## Verdict", "", result["verdict"], "",
              "p (always valid) is the mSPRT p-value: it may be checked after every day "
              "without inflating the false-positive rate. CUPED uses pre-period clicks.", ""]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Two panels: CTR per variant with 95 % CIs; always-valid p-value per daily look."""
    require("matplotlib", "ml")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    names = list(result["per_variant"])
    ctr = [result["per_variant"][v]["ctr"] for v in names]
    vals = [c["value"] for c in ctr]
    errs = [[c["value"] - c["ci_low"] for c in ctr], [c["ci_high"] - c["value"] for c in ctr]]
    ax1.errorbar(range(len(names)), vals, yerr=errs, fmt="o", capsize=6)
    ax1.set_xticks(range(len(names)), names)
    ax1.set_ylabel("CTR (clicks / articles shown)")
    ax1.set_title("CTR per variant (95% CI)")
    for v, metrics in result["comparisons"].items():
        p = metrics["ctr"]["sequential"]["daily_p_values"]
        ax2.plot(range(1, len(p) + 1), p, marker="o", label=f"{v} vs {result['control']}")
    ax2.axhline(0.05, color="red", linestyle="--", label="alpha 0.05")
    ax2.set_yscale("log")
    ax2.set_xlabel("day")
    ax2.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax2.set_ylabel("always-valid p-value (mSPRT)")
    ax2.set_title("Sequential test, CTR")
    ax2.legend()
    if result["conclusions_blocked"]:
        fig.suptitle("SAMPLE RATIO MISMATCH - conclusions blocked", color="red")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def json_safe(obj: Any) -> Any:
    """Replace NaN/inf by None recursively so the JSON is strict (dashboards reject NaN)."""
    if hasattr(obj, "item") and not isinstance(obj, list | dict):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj


def write_report(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write report.md, report.png and report.json into `out_dir`; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / "report.md", "png": out / "report.png", "json": out / "report.json"}
    paths["markdown"].write_text(to_markdown(result))
    paths["json"].write_text(json.dumps(json_safe(result), indent=2, default=str,
                                               allow_nan=False))
    plot(result, paths["png"])
    return paths
