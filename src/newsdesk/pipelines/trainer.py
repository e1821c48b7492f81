"""The training plug point of the pipeline loop, and the engines behind it.

    Trainer.train(dataset_dir, bundles_dir) -> version

Contract: writes one complete bundle into `bundles_dir` atomically (a new version directory;
nothing half-written is ever visible) and returns its version, or raises; it never touches the
ACTIVE pointer (promotion is the gate's business). `EngineTrainer` is the real one: the
`newsdesk train` pipeline on the local engine (Polars, the default and the reference) or on
Spark (`--engine spark`, the `newsdesk.pipelines.spark` package). Tests
inject their own trainers (a failing one, a deliberately worse one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from newsdesk.errors import ConfigError
from newsdesk.pipelines.train import TrainConfig

ENGINES = ("local", "spark")


def check_engine(engine: str) -> str:
    """The engine name if it can run here; ConfigError (one line) otherwise."""
    if engine not in ENGINES:
        raise ConfigError(f"field 'engine': must be one of {list(ENGINES)}, got {engine!r}")
    return engine  # a missing pyspark / Java is reported by the Spark session with a hint


class Trainer(ABC):
    """Builds candidate bundles (see the module docstring for the contract)."""

    engine: str = "local"

    @abstractmethod
    def train(self, dataset_dir: Path, bundles_dir: Path) -> str:
        """Write a new bundle trained on `dataset_dir` into `bundles_dir`; its version."""

    def params(self) -> dict[str, Any]:
        """What to record about this trainer (experiment tracking, audit)."""
        return {"engine": self.engine}


class EngineTrainer(Trainer):
    """`pipelines.train.train` with a TrainConfig on the chosen engine.

    `embedding_cache_dir`: where article vectors are cached by content hash when the config
    names no cache (the pipeline passes its state dir's), so a cycle embeds only the
    articles no earlier cycle embedded; the vectors, hence the bundle, are the same."""

    def __init__(self, config: TrainConfig | None = None, *, engine: str = "local",
                 embedder: Any = None, embedding_cache_dir: Path | None = None) -> None:
        self.config = config or TrainConfig()
        self.engine = check_engine(engine)
        self.embedder = embedder
        self.embedding_cache_dir = embedding_cache_dir

    def train(self, dataset_dir: Path, bundles_dir: Path) -> str:
        from newsdesk.pipelines.train import train

        embedder = self.embedder
        if (embedder is None and self.config.embedding_cache_dir is None
                and self.embedding_cache_dir is not None):
            from newsdesk.content import make_embedder

            embedder = make_embedder(self.config.embedder, cache_dir=self.embedding_cache_dir)
        return train(dataset_dir, bundles_dir, self.config, embedder=embedder,
                     engine=self.engine)  # type: ignore[arg-type]

    def params(self) -> dict[str, Any]:
        return {"engine": self.engine, "config": self.config.model_dump(mode="json")}
