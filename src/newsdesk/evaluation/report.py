"""Evaluation reports: JSON for machines, Markdown for people, PNG plots for both.

    report = EvaluationReport("MIND replay", systems={"random": {...}, "ctr": {...}},
                              comparisons=compare_systems(...))
    paths = report.write("out/mind")    # out/mind.json, out/mind.md, out/mind.png

The JSON has `{"title", "systems": {name: {metric: value}}, "comparisons": [...], "meta"}`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsdesk.evaluation.bootstrap import PairedComparison


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "n/a"
        return f"{v:.0f}" if v.is_integer() and abs(v) >= 100 else f"{v:.4f}"
    return str(v)


def _clean(v: Any) -> Any:
    # JSON has no NaN: write null instead
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


@dataclass
class EvaluationReport:
    """Systems' summary metrics plus paired comparisons, writable as json / md / png."""

    title: str
    systems: dict[str, dict[str, float]]
    comparisons: list[PairedComparison] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return _clean({"title": self.title, "systems": self.systems,
                       "comparisons": [c.to_dict() for c in self.comparisons],
                       "meta": self.meta})

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for values in self.systems.values():
            names.extend(m for m in values if m not in names)
        return names

    def markdown(self) -> str:
        metrics = self.metric_names()
        lines = [f"# {self.title}", ""]
        for k, v in self.meta.items():
            lines.append(f"- **{k}**: {_fmt(v)}")
        if self.meta:
            lines.append("")
        lines += ["| system | " + " | ".join(metrics) + " |",
                  "|---|" + "---|" * len(metrics)]
        for name, values in self.systems.items():
            lines.append(f"| {name} | " + " | ".join(_fmt(values.get(m, math.nan))
                                                    for m in metrics) + " |")
        if self.comparisons:
            conf = self.comparisons[0].confidence
            lines += ["", f"## Paired bootstrap differences (B - A, {conf:.0%} interval)", "",
                      "| A | B | metric | mean A | mean B | B - A | interval | units | p |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for c in self.comparisons:
                mark = " *" if c.significant else ""
                lines.append(
                    f"| {c.system_a} | {c.system_b} | {c.metric} | {_fmt(c.mean_a)} | "
                    f"{_fmt(c.mean_b)} | {c.diff:+.4f}{mark} | "
                    f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}] | {c.n_units} | {c.p_value:.3f} |")
            lines += ["", "`*` the interval excludes zero."]
        return "\n".join(lines) + "\n"

    def plot(self, path: str | Path) -> Path:
        """Bars of each metric per system, and (if any) the differences with their intervals."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        metrics = [m for m in self.metric_names()
                   if all(isinstance(v.get(m), float | int) for v in self.systems.values())
                   and not any(m.startswith(p) for p in ("impressions", "users"))]
        n_panels = 1 + (1 if self.comparisons else 0)
        fig, axes = plt.subplots(1, n_panels, figsize=(6.5 * n_panels, 4.2), squeeze=False)
        ax = axes[0][0]
        names = list(self.systems)
        width = 0.8 / max(1, len(names))
        for i, name in enumerate(names):
            vals = [self.systems[name].get(m, math.nan) for m in metrics]
            ax.bar([j + i * width for j in range(len(metrics))], vals, width, label=name)
        ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(metrics))])
        ax.set_xticklabels(metrics, rotation=30, ha="right")
        ax.set_title(self.title)
        ax.legend(fontsize=8)
        if self.comparisons:
            ax2 = axes[0][1]
            labels = [f"{c.system_b} - {c.system_a}: {c.metric}" for c in self.comparisons]
            ys = list(range(len(self.comparisons)))
            diffs = [c.diff for c in self.comparisons]
            err = [[c.diff - c.ci_low for c in self.comparisons],
                   [c.ci_high - c.diff for c in self.comparisons]]
            ax2.errorbar(diffs, ys, xerr=err, fmt="o", capsize=3)
            ax2.axvline(0.0, color="grey", lw=1)
            ax2.set_yticks(ys)
            ax2.set_yticklabels(labels, fontsize=7)
            ax2.set_title("paired differences with intervals")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def write(self, prefix: str | Path) -> dict[str, Path]:
        """Write PREFIX.json, PREFIX.md and PREFIX.png; returns the paths by kind."""
        prefix = Path(prefix)
        prefix.parent.mkdir(parents=True, exist_ok=True)
        base = prefix.with_suffix("") if prefix.suffix in (".json", ".md", ".png") else prefix
        paths = {"json": Path(f"{base}.json"), "md": Path(f"{base}.md"),
                 "png": Path(f"{base}.png")}
        paths["json"].write_text(json.dumps(self.to_dict(), indent=2, default=str))
        paths["md"].write_text(self.markdown())
        self.plot(paths["png"])
        return paths
