"""Evaluation harness: metrics, protocols (MIND, full-catalog top-K, streaming replay),
paired bootstrap comparisons and reports.

    metrics         per-impression AUC/MRR/nDCG, top-K recall/nDCG/hit, beyond-accuracy
    bootstrap       paired bootstrap intervals for B - A on the same units
    mind_protocol   labeled impressions, per-impression evaluation, leaderboard files
    replay          time-ordered streaming replay through the online store (no leakage)
    topk            time-based splits and full-catalog top-K evaluation
    report          Markdown + PNG + JSON reports
"""

from newsdesk.evaluation.bootstrap import PairedComparison, compare_systems, paired_bootstrap
from newsdesk.evaluation.mind_protocol import (
    ImpressionEvaluation,
    LabeledImpression,
    evaluate_static,
    labeled_impressions,
    write_prediction_file,
)
from newsdesk.evaluation.replay import build_events, replay, replay_events
from newsdesk.evaluation.report import EvaluationReport
from newsdesk.evaluation.topk import (
    evaluate_topk,
    global_time_split,
    per_user_temporal_split,
)

__all__ = [
    "EvaluationReport",
    "ImpressionEvaluation",
    "LabeledImpression",
    "PairedComparison",
    "build_events",
    "compare_systems",
    "evaluate_static",
    "evaluate_topk",
    "global_time_split",
    "labeled_impressions",
    "paired_bootstrap",
    "per_user_temporal_split",
    "replay",
    "replay_events",
    "write_prediction_file",
]
