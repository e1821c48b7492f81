"""Fixtures of the pipeline tests: one small simulated world, split at the start of its last
12 hours into a dataset and a real SQLite event log, and a bundles directory whose ACTIVE
bundle was trained by a first pipeline cycle on the dataset (built once per session; tests
copy what they change)."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from newsdesk.models.bundle import MANIFEST, RANKER_FILE, file_hashes
from newsdesk.pipelines.loop import PipelineRunner
from newsdesk.pipelines.trainer import EngineTrainer, Trainer
from newsdesk.pipelines.window import latest_window

from .world import pipeline_config, simulate, split_world


@dataclass(frozen=True)
class World:
    dataset: Path  # the world before its last 12 h
    events_db: Path  # the last 12 h, in an SQLite event log
    n_events: int
    bundles: Path  # one promoted bundle trained on `dataset`
    active: str

    def copy(self, dest: Path) -> World:
        """An independent copy (dataset, event log, bundles) under dest."""
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.dataset, dest / "dataset")
        shutil.copytree(self.bundles, dest / "bundles")
        for p in self.events_db.parent.glob(self.events_db.name + "*"):
            shutil.copy(p, dest / p.name)
        return World(dest / "dataset", dest / self.events_db.name, self.n_events,
                     dest / "bundles", self.active)

    @property
    def event_log_url(self) -> str:
        return f"sqlite:///{self.events_db.resolve()}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("pipeline-world")
    full = simulate(root / "full")
    start, _ = latest_window(full, 12)
    dataset, _url, n = split_world(full, root, start)
    runner = PipelineRunner(dataset, root / "bundles", config=pipeline_config(),
                            state_dir=root / "state0")
    rec = runner.run_once()
    assert rec["decision"] == "promoted"
    return World(dataset, root / "events.db", n, root / "bundles", rec["candidate"])


class ReversedTrainer(Trainer):
    """A deliberately worse candidate: the real trainer's bundle with every leaf value of the
    ranker negated, so it ranks each slate in reverse (the manifest's hashes are rewritten, so
    it loads like any bundle)."""

    def __init__(self, inner: Trainer) -> None:
        self.inner = inner
        self.engine = inner.engine

    def train(self, dataset_dir: Path, bundles_dir: Path) -> str:
        version = self.inner.train(dataset_dir, bundles_dir)
        bundle = bundles_dir / version
        lines = []
        for line in (bundle / RANKER_FILE).read_text().splitlines():
            if line.startswith("tree_sizes="):  # byte offsets; LightGBM parses without
                continue
            if line.startswith("leaf_value="):
                vals = [repr(-float(v)) for v in line.removeprefix("leaf_value=").split()]
                line = "leaf_value=" + " ".join(vals)
            lines.append(line)
        (bundle / RANKER_FILE).write_text("\n".join(lines) + "\n")
        manifest = json.loads((bundle / MANIFEST).read_text())
        manifest["files"] = file_hashes(bundle)
        (bundle / MANIFEST).write_text(json.dumps(manifest))
        return version


class FlakyTrainer(Trainer):
    """Fails its first `failures` calls (a step that breaks), then trains for real."""

    def __init__(self, inner: Trainer, failures: int) -> None:
        self.inner, self.failures, self.calls = inner, failures, 0
        self.engine = inner.engine

    def train(self, dataset_dir: Path, bundles_dir: Path) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise OSError(f"disk full (simulated failure {self.calls})")
        return self.inner.train(dataset_dir, bundles_dir)


def real_trainer() -> EngineTrainer:
    return EngineTrainer(pipeline_config().train)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, object]]:
    """(bundles URL, boto3 client) of a fresh bucket `models` on a moto server of this test
    (real HTTP on 127.0.0.1; other prefixes of the bucket hold datasets)."""
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("boto3")
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}",
                              region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield (f"s3://models/bundles?endpoint_override=127.0.0.1:{port}&scheme=http"
               "&region=us-east-1", client)
    finally:
        server.stop()
