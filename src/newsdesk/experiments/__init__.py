"""Controlled experimentation: configs, assignment, rollouts, interleaving, bandits, OPE, analysis.

Module map::

    config.py        pydantic models of experiments / holdout / rollout plans; YAML loading
    registry.py      versioned experiment store (SQLite) with an audit log of every change
    assignment.py    Assigner: deterministic sticky hashing, layers, holdout (serving calls it)
    rollout.py       staged rollouts with guardrails, auto-rollback, kill switch, persisted state
    exposure.py      the exposure record of a served slate (-> impressions table row)
    interleaving.py  team-draft interleaving, click credit, sign test
    bandits.py       Beta-Bernoulli Thompson sampling with exact/MC propensities
    ope.py           IPS, SNIPS, doubly robust CTR estimates with clustered CIs
    stats.py         delta method, SRM chi-square, CUPED, mSPRT
    analysis.py      dataset (impressions + interactions) -> analysis dict
    report.py        Markdown + PNG + JSON report

Serving uses only::

    assigner = Assigner.from_config(load_suite("experiments/"), rollouts=controller)
    assigner.assign(user_id, surface)  # -> [Assignment(experiment_id, variant, bucket, layer)]
"""

from newsdesk.experiments.assignment import Assigner, Assignment
from newsdesk.experiments.config import (
    ExperimentConfig,
    ExperimentSuite,
    Holdout,
    RolloutPlan,
    Variant,
    load_suite,
    parse_suite,
)
from newsdesk.experiments.exposure import Exposure, variant_of

__all__ = [
    "Assigner",
    "Assignment",
    "ExperimentConfig",
    "ExperimentSuite",
    "Exposure",
    "Holdout",
    "RolloutPlan",
    "Variant",
    "load_suite",
    "parse_suite",
    "variant_of",
]
