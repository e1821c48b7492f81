"""The pipeline config (`pipeline.yaml`): what the loop exports, trains, evaluates and gates.

Every field is validated when the file is read; a bad value raises ConfigError naming the
field (`pipeline config: field 'gate.margin': Input should be greater than or equal to 0`).
Example with the defaults::

    gate:
      primary_metric: auc        # per-impression AUC of the replay window
      margin: 0.005              # the candidate may be at most this much worse ...
      rule: ci_lower             # ... judged on the lower bound of the paired bootstrap interval
                                 # of candidate - active (or `mean`: on the mean difference)
      guardrails: {ndcg@10: 0.0, mrr: 0.0}   # metric -> tolerated drop; a guardrail regresses
                                 # when its whole interval lies below -tolerance
      n_resamples: 1000
      confidence: 0.95
    evaluation:
      window_hours: 24           # the latest window of impressions, scored by replay
      warmup_hours: 72           # events before the window replayed into the store (null: all)
      max_scored_impressions: 5000    # uniform seeded sample of the window (bounds the time)
      holdout: true              # the candidate trains on events before the window only
      seed: 0
    export: {chunk_events: 50000}
    retry: {attempts: 3, backoff_s: 30, max_backoff_s: 900}
    train: {}                    # a TrainConfig (newsdesk train --config), or
    train_config: null           # the path of a TrainConfig YAML
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from newsdesk.errors import ConfigError
from newsdesk.evaluation.metrics import IMPRESSION_METRICS
from newsdesk.pipelines.train import TrainConfig

_Strict = ConfigDict(extra="forbid")


def _metric(value: str) -> str:
    if value not in IMPRESSION_METRICS:
        raise ValueError(f"must be one of {list(IMPRESSION_METRICS)}, got {value!r}")
    return value


class GateConfig(BaseModel):
    model_config = _Strict
    primary_metric: str = "auc"
    margin: float = Field(0.005, ge=0, le=1)
    rule: Literal["ci_lower", "mean"] = "ci_lower"
    guardrails: dict[str, float] = Field(default_factory=lambda: {"ndcg@10": 0.0, "mrr": 0.0})
    n_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1)

    _primary = field_validator("primary_metric")(_metric)

    @field_validator("guardrails")
    @classmethod
    def _guardrails(cls, value: dict[str, float]) -> dict[str, float]:
        for name, tolerance in value.items():
            _metric(name)
            if not 0 <= tolerance <= 1:
                raise ValueError(f"tolerance of {name!r} must lie in [0, 1], got {tolerance}")
        return value


class EvaluationConfig(BaseModel):
    model_config = _Strict
    window_hours: float = Field(24.0, gt=0, le=24 * 90)
    warmup_hours: float | None = Field(72.0, gt=0)
    max_scored_impressions: int = Field(5_000, ge=100, le=10_000_000)
    holdout: bool = True
    seed: int = 0


class ExportConfig(BaseModel):
    model_config = _Strict
    chunk_events: int = Field(50_000, ge=1, le=10_000_000)


class RetryConfig(BaseModel):
    model_config = _Strict
    attempts: int = Field(3, ge=1, le=100)
    backoff_s: float = Field(30.0, ge=0, le=3600)
    max_backoff_s: float = Field(900.0, ge=0, le=24 * 3600)


class PipelineConfig(BaseModel):
    """Everything one pipeline cycle needs besides the paths (see the module docstring)."""

    model_config = _Strict
    gate: GateConfig = Field(default_factory=GateConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    train_config: Path | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, base_dir: Path | None = None) -> PipelineConfig:
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "config"
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ConfigError(f"pipeline config: field '{where}': {msg}") from exc
        if cfg.train_config is not None:
            if "train" in data:
                raise ConfigError("pipeline config: field 'train_config': give either 'train' "
                                  "or 'train_config', not both")
            path = cfg.train_config
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            cfg = cfg.model_copy(update={"train": TrainConfig.from_yaml(path)})
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> PipelineConfig:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"pipeline config {path}: cannot read ({exc})") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"pipeline config {path}: expected a mapping at the top level")
        return cls.from_dict(data, base_dir=path.parent)
