"""MLflow tracking with the real mlflow library and a SQLite tracking store in tmp_path: a
cycle's candidate is one run with its params, data window, metrics, version and artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsdesk.models.bundle import read_manifest
from newsdesk.pipelines.loop import PipelineRunner

from .conftest import World
from .world import pipeline_config

mlflow = pytest.importorskip("mlflow", reason="the [mlflow] extra is not installed")
pytestmark = [pytest.mark.ml, pytest.mark.slow]


def test_cycle_is_recorded_as_an_mlflow_run(world: World, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from newsdesk.pipelines.tracking import EXPERIMENT, MlflowTracker

    w = world.copy(tmp_path)
    state = tmp_path / "state"
    tracker = MlflowTracker.for_uri("default", state)
    runner = PipelineRunner(w.dataset, w.bundles, config=pipeline_config(),
                            event_log=w.event_log_url, state_dir=state, tracker=tracker)
    rec = runner.run_once()
    assert "error" not in rec["tracking"], rec["tracking"]

    client = MlflowClient(tracking_uri=f"sqlite:///{state.resolve() / 'mlflow.db'}")
    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == rec["tracking"]["run_id"] and run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    manifest = read_manifest(w.bundles / rec["candidate"])
    assert tags["bundle_version"] == rec["candidate"] and tags["decision"] == rec["decision"]
    assert [tags["data.first_event"], tags["data.last_event"]] == manifest["data"]["time_range"]
    assert params["train.ranker.num_boost_round"] == "20" and params["engine"] == "local"
    assert params["train.embedder"] == "hashing"
    assert metrics["valid.auc"] == pytest.approx(manifest["metrics"]["valid"]["auc"])
    auc = next(c for c in rec["gate"]["comparisons"] if c["metric"] == "auc")
    assert metrics["replay.auc.diff"] == pytest.approx(auc["diff"])
    assert metrics["replay.ndcg_at_10.candidate"] > 0
    assert metrics["exported.impressions"] == rec["export"]["added"]["impressions"]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"bundle", "audit_record.json"}
    bundle_files = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert bundle_files == {"bundle/manifest.json", "bundle/ranker.txt"}
    assert (state / "mlflow-artifacts").is_dir()  # artifacts beside the store, not in cwd
