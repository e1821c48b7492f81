"""Experiments as configuration: pydantic models, YAML loading and validation.

An experiment file (YAML) holds one experiment, a list of them, or a mapping with keys
``experiments`` and (optionally) ``holdout``::

    holdout: {fraction: 0.02, salt: "holdout-2026"}
    experiments:
      - id: ranker-v2
        layer: ranking            # mutually exclusive with other experiments of this layer
        surfaces: [front_page]    # empty = every surface
        traffic_start: 0.0        # the experiment owns buckets [start, start + traffic) of
        traffic: 0.5              # its layer (fractions of the layer's 10,000 buckets)
        variants:
          - {name: control, weight: 1, bundle: "ranker@12"}
          - {name: treatment, weight: 1, bundle: "ranker@13"}

Every error is a `ConfigError` whose message names the file and the dotted field path
(``experiments.0.variants.1.weight: ...``). Versioning and the audit log of changes live in
`newsdesk.experiments.registry`; a config's `fingerprint()` tells whether it changed.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from newsdesk.errors import ConfigError

Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@:\-]+$")]


class Status(StrEnum):
    DRAFT = "draft"  # validated and stored, not served
    RUNNING = "running"  # served
    STOPPED = "stopped"  # no longer served; analysis still possible


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Variant(_Model):
    """One arm. `pipeline` names a pipeline config, `bundle` a model bundle version."""

    name: Name
    weight: float = Field(default=1.0, gt=0.0, le=1e6)
    pipeline: str | None = None
    bundle: str | None = None


class Guardrails(_Model):
    """Limits a staged rollout must respect to advance (see `newsdesk.experiments.rollout`)."""

    # absolute increase of the error rate over control, e.g. 0.005 = half a percentage point
    max_error_rate_increase: float = Field(default=0.005, ge=0.0, le=1.0)
    # the treatment's p99 latency may not exceed this (ms) while also exceeding control's ...
    max_p99_latency_ms: float = Field(default=250.0, gt=0.0)
    # ... nor exceed control's p99 by more than this (ms): a slow model shows against the
    # control measured on the same machines at the same time, whatever the load
    max_p99_latency_increase_ms: float = Field(default=50.0, ge=0.0, le=60_000.0)
    # CTR may not be worse than control by more than this relative margin (0.05 = 5 %)
    ctr_margin: float = Field(default=0.05, ge=0.0, le=1.0)
    # one-sided significance level of the "it is worse" test that triggers a rollback
    alpha: float = Field(default=0.001, gt=0.0, lt=0.5)


class RolloutPlan(_Model):
    """A staged schedule of treatment fractions, advanced only while guardrails hold."""

    stages: list[float] = Field(default_factory=lambda: [0.01, 0.05, 0.25, 0.5, 1.0], min_length=1)
    treatment: Name = "treatment"
    control: Name = "control"
    min_requests_per_stage: int = Field(default=20_000, ge=1)
    guardrails: Guardrails = Field(default_factory=Guardrails)

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[float]) -> list[float]:
        if any(not (0.0 < s <= 1.0) for s in stages):
            raise ValueError("every stage must be a fraction in (0, 1]")
        if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
            raise ValueError("stages must be strictly increasing")
        return stages


class ExperimentConfig(_Model):
    """One experiment: who is in it (layer slice, surfaces) and what each variant serves."""

    id: Name
    description: str = ""
    owner: str = ""
    status: Status = Status.RUNNING
    layer: Name = "default"
    surfaces: list[str] = Field(default_factory=list)
    traffic_start: float = Field(default=0.0, ge=0.0, lt=1.0)
    traffic: float = Field(default=1.0, gt=0.0, le=1.0)
    salt: str | None = None  # defaults to the id; change it to reshuffle users
    variants: list[Variant] = Field(min_length=2)
    primary_metric: str = "ctr"
    rollout: RolloutPlan | None = None
    # ab: a sticky split by weight; interleaving: every request gets a team-draft interleaving
    # of the first two variants' rankings; bandit: each request's variant is drawn by Thompson
    # sampling over the variants' click rates (newsdesk.serving.live_experiments)
    type: Literal["ab", "interleaving", "bandit"] = "ab"

    @field_validator("variants")
    @classmethod
    def _unique_names(cls, variants: list[Variant]) -> list[Variant]:
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {dupes}")
        return variants

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.traffic_start + self.traffic > 1.0 + 1e-9:
            raise ValueError(
                f"traffic_start + traffic must be <= 1 (got {self.traffic_start} + {self.traffic})"
            )
        if self.type != "ab" and self.rollout is not None:
            raise ValueError(f"type '{self.type}' cannot have a staged rollout (rollout is for "
                             "type 'ab')")
        if self.type == "interleaving" and len(self.variants) != 2:
            raise ValueError(f"type 'interleaving' needs exactly two variants, got "
                             f"{len(self.variants)}")
        if self.rollout is not None:
            names = {v.name for v in self.variants}
            for role in ("treatment", "control"):
                if getattr(self.rollout, role) not in names:
                    raise ValueError(
                        f"rollout.{role} '{getattr(self.rollout, role)}' is not a variant "
                        f"(variants: {sorted(names)})"
                    )
        return self

    @property
    def effective_salt(self) -> str:
        return self.salt or self.id

    def weights(self) -> list[float]:
        """Variant allocation as fractions summing to 1 (in variant order)."""
        total = sum(v.weight for v in self.variants)
        return [v.weight / total for v in self.variants]

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ConfigError(f"experiment '{self.id}': no variant '{name}'")

    def fingerprint(self) -> str:
        """A stable hash of the content; equal fingerprints mean an unchanged config."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class Holdout(_Model):
    """A long-term holdout: this fraction of units never enters any experiment."""

    fraction: float = Field(default=0.0, ge=0.0, lt=1.0)
    salt: str = "newsdesk-holdout"


class ExperimentSuite(_Model):
    """Every experiment served together, plus the holdout; checks layer slices do not overlap."""

    experiments: list[ExperimentConfig] = Field(default_factory=list)
    holdout: Holdout = Field(default_factory=Holdout)

    @model_validator(mode="after")
    def _no_overlap(self) -> ExperimentSuite:
        ids = [e.id for e in self.experiments]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"experiment ids must be unique; repeated: {dupes}")
        by_layer: dict[str, list[ExperimentConfig]] = {}
        for e in self.experiments:
            if e.status is not Status.STOPPED:
                by_layer.setdefault(e.layer, []).append(e)
        for layer, exps in by_layer.items():
            exps = sorted(exps, key=lambda e: e.traffic_start)
            for a, b in zip(exps, exps[1:], strict=False):
                if a.traffic_start + a.traffic > b.traffic_start + 1e-9 and _share_surface(a, b):
                    raise ValueError(
                        f"layer '{layer}': experiments '{a.id}' and '{b.id}' overlap "
                        f"([{a.traffic_start}, {a.traffic_start + a.traffic}) vs "
                        f"[{b.traffic_start}, ...)); experiments of one layer must be exclusive"
                    )
        return self

    def get(self, experiment_id: str) -> ExperimentConfig:
        for e in self.experiments:
            if e.id == experiment_id:
                return e
        known = [e.id for e in self.experiments]
        raise ConfigError(f"no experiment '{experiment_id}' (known: {known})")


def _share_surface(a: ExperimentConfig, b: ExperimentConfig) -> bool:
    return not a.surfaces or not b.surfaces or bool(set(a.surfaces) & set(b.surfaces))


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: ``source: field.path: message``."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: field '{loc}': {msg}")
    return "\n".join(lines)


def parse_suite(data: Any, source: str = "<config>") -> ExperimentSuite:
    """Validate already-parsed YAML/JSON data (one experiment, a list, or a suite mapping)."""
    if isinstance(data, dict) and "experiments" not in data and "holdout" not in data:
        data = {"experiments": [data]}
    elif isinstance(data, list):
        data = {"experiments": data}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping or a list of experiments, got "
                          f"{type(data).__name__}")
    try:
        return ExperimentSuite.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from exc


def load_suite(path: str | Path) -> ExperimentSuite:
    """Load and validate a YAML file, or every *.yaml/*.yml file of a directory (merged)."""
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        if not files:
            raise ConfigError(f"{path}: no *.yaml experiment files")
        suites = [load_suite(f) for f in files]
        holdouts = [s.holdout for s in suites if s.holdout.fraction > 0]
        if len(holdouts) > 1:
            raise ConfigError(f"{path}: field 'holdout' is set in more than one file")
        merged = {
            "experiments": [e.model_dump() for s in suites for e in s.experiments],
            "holdout": (holdouts[0] if holdouts else Holdout()).model_dump(),
        }
        return parse_suite(merged, str(path))
    if not path.is_file():
        raise ConfigError(f"{path}: experiment config file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    return parse_suite(data, str(path))
