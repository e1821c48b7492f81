"""Experiment tracking of the pipeline's training runs in MLflow (the `[mlflow]` extra).

One MLflow run per cycle that trained a candidate, in the experiment `newsdesk-pipeline`:

    params     engine, dataset, the candidate's whole TrainConfig flattened (ranker.num_leaves,
               features.half_life_hours, ...), gate settings
    tags       bundle_version, decision, cycle, active_before / active_after, data window
               (first and last event time), data hash, git sha
    metrics    the bundle's validation metrics (valid.auc, valid.ndcg@10, ...), the replay
               gate's figures (replay.auc.active / .candidate / .diff / .ci_low / .ci_high),
               step seconds, exported events
    artifacts  the bundle's manifest.json and ranker.txt, the cycle's audit record

The tracking store is any MLflow tracking URI: by default a SQLite file in the pipeline state
dir (`sqlite:///STATE/mlflow.db`, artifacts beside it in `STATE/mlflow-artifacts`), or a team's
MLflow server (`--mlflow http://mlflow:5000`). Open the default store in the UI with
`mlflow ui --backend-store-uri sqlite:///STATE/mlflow.db` (the UI needs the full `mlflow`
package, see docs/pipeline.md for why the extra installs `mlflow-skinny`). The MlflowClient
API is used throughout (no global `mlflow.set_tracking_uri`), so several trackers can coexist.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from newsdesk.deps import require
from newsdesk.models.bundle import MANIFEST, RANKER_FILE, read_manifest

EXPERIMENT = "newsdesk-pipeline"


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list | tuple) else str(value)


def _metric_key(name: str) -> str:
    return name.replace("@", "_at_")  # MLflow keys: alphanumerics, _ - . / and space


class MlflowTracker:
    """Logs each pipeline cycle's training run to MLflow (see the module docstring)."""

    def __init__(self, tracking_uri: str, *, experiment: str = EXPERIMENT,
                 artifact_location: str | None = None) -> None:
        require("mlflow", "mlflow")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.artifact_location = artifact_location

    @classmethod
    def for_uri(cls, uri: str, state_dir: str | Path) -> MlflowTracker:
        """'default' -> SQLite in the state dir; anything else is an MLflow tracking URI."""
        if uri == "default":
            state = Path(state_dir).resolve()
            state.mkdir(parents=True, exist_ok=True)
            return cls(f"sqlite:///{state / 'mlflow.db'}",
                       artifact_location=(state / "mlflow-artifacts").as_uri())
        return cls(uri)

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri)

    def _experiment_id(self, client: Any) -> str:
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        return str(client.create_experiment(self.experiment,
                                            artifact_location=self.artifact_location))

    def log_cycle(self, rec: dict[str, Any], bundles_dir: Path, trainer: Any) -> dict[str, Any]:
        """Record one cycle's candidate; returns {"run_id", "experiment_id", "tracking_uri"}."""
        from mlflow.entities import Metric, Param

        candidate = rec.get("candidate")
        if not candidate:
            return {}
        bundle = Path(bundles_dir) / candidate
        manifest = read_manifest(bundle)
        client = self._client()
        exp_id = self._experiment_id(client)
        window = manifest.get("data", {}).get("time_range", [None, None])
        tags = {"bundle_version": candidate, "decision": rec.get("decision", ""),
                "cycle": rec.get("cycle", ""), "active_before": rec.get("active_before") or "",
                "active_after": rec.get("active_after") or "",
                "data.first_event": window[0] or "", "data.last_event": window[1] or "",
                "data.hash": manifest.get("data", {}).get("hash", ""),
                "git_sha": (manifest.get("code") or {}).get("git_sha") or "",
                "engine": rec.get("engine", "")}
        run = client.create_run(exp_id, run_name=candidate, tags=tags)
        run_id = run.info.run_id
        params: dict[str, str] = {"engine": str(rec.get("engine")),
                                  "dataset": str(rec.get("dataset"))}
        _flatten("train", manifest.get("config", {}), params)
        _flatten("data.rows", manifest.get("data", {}).get("rows", {}), params)
        ts = int(float(rec.get("unix_time", 0)) * 1000)
        metrics: dict[str, float] = {}
        for split in ("valid", "valid_trending"):
            for k, v in (manifest.get("metrics", {}).get(split) or {}).items():
                metrics[f"{split}.{k}"] = float(v)
        for k in ("train_impressions", "train_rows", "best_iteration"):
            if k in manifest.get("metrics", {}):
                metrics[k] = float(manifest["metrics"][k])
        for c in (rec.get("gate") or {}).get("comparisons", []):
            for field, key in (("mean_a", "active"), ("mean_b", "candidate"), ("diff", "diff"),
                               ("ci_low", "ci_low"), ("ci_high", "ci_high")):
                metrics[f"replay.{c['metric']}.{key}"] = float(c[field])
            metrics[f"replay.{c['metric']}.n"] = float(c["n_units"])
        for step, s in (rec.get("steps_s") or {}).items():
            metrics[f"seconds.{step}"] = float(s)
        for table, n in ((rec.get("export") or {}).get("added") or {}).items():
            metrics[f"exported.{table}"] = float(n)
        plist = [Param(k, v[:6000]) for k, v in params.items()]
        mlist = [Metric(_metric_key(k), v, ts, 0) for k, v in metrics.items()
                 if v == v]  # NaN metrics (undefined AUC) are left out
        for lo in range(0, len(plist), 100):
            client.log_batch(run_id, params=plist[lo:lo + 100])
        for lo in range(0, len(mlist), 500):
            client.log_batch(run_id, metrics=mlist[lo:lo + 500])
        client.log_artifact(run_id, str(bundle / MANIFEST), "bundle")
        client.log_artifact(run_id, str(bundle / RANKER_FILE), "bundle")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "audit_record.json"
            path.write_text(json.dumps(rec, indent=2, default=str))
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id)
        return {"run_id": run_id, "experiment_id": exp_id, "tracking_uri": self.tracking_uri}
