"""One tie rule: the report's metrics equal what the MIND scorer computes from the written file."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from newsdesk.evaluation.metrics import auc
from newsdesk.evaluation.mind_protocol import (
    ImpressionEvaluation,
    LabeledImpression,
    write_prediction_file,
)
from newsdesk.evaluation.mind_scorer import (
    read_prediction_file,
    score_prediction_file,
    write_truth_file,
)

# clicks sit early in the shown order (position bias), and the scores tie a lot
FIXTURE = [
    (("a", "b", "c", "d"), (1, 0, 0, 0), (0.0, 0.0, 0.0, 0.0)),  # constant scorer
    (("a", "c", "e"), (1, 0, 1), (0.5, 0.5, 0.2)),
    (("b", "d", "e", "f", "g"), (0, 1, 0, 0, 1), (0.3, 0.3, 0.3, 0.9, 0.1)),
    (("a", "b"), (0, 0), (0.1, 0.1)),  # no click: only in nothing
    (("c", "d", "e"), (1, 0, 0), (0.2, 0.7, 0.2)),
]


def _evaluate() -> tuple[ImpressionEvaluation, list[LabeledImpression]]:
    imps = [LabeledImpression(f"i{n}", f"u{n}", 1000.0 + n, ids, labels)
            for n, (ids, labels, _) in enumerate(FIXTURE)]
    ev = ImpressionEvaluation("tied")
    for imp, (_, _, scores) in zip(imps, FIXTURE, strict=True):
        ev.add(imp, np.asarray(scores))
    return ev, imps


def test_report_equals_scorer_on_the_written_file(tmp_path) -> None:
    ev, imps = _evaluate()
    pred = write_prediction_file(tmp_path / "prediction.txt", ev.impression_ids, ev.ranks)
    truth = write_truth_file(tmp_path / "truth.txt", imps)
    from_file = score_prediction_file(pred, truth)
    report = ev.summary()
    for metric in ("auc", "mrr", "ndcg@5", "ndcg@10"):
        assert report[metric] == pytest.approx(from_file[metric], abs=1e-12), metric


def test_scorer_auc_is_sklearn_on_inverse_ranks_and_ties_would_have_differed(tmp_path) -> None:
    ev, imps = _evaluate()
    pred = read_prediction_file(write_prediction_file(tmp_path / "p.txt", ev.impression_ids,
                                                      ev.ranks))
    sk = [roc_auc_score(imp.labels, 1.0 / np.asarray(pred[imp.impression_id]))
          for imp in imps if 0 < sum(imp.labels) < len(imp.labels)]
    assert ev.summary()["auc"] == pytest.approx(float(np.mean(sk)), abs=1e-12)
    # the fixture's ties matter: scoring them at 1/2 (the old report) gives another number
    tied = [auc(imp.labels, s) for imp, (_, _, s) in zip(imps, FIXTURE, strict=True)
            if 0 < sum(imp.labels) < len(imp.labels)]
    assert abs(float(np.mean(tied)) - ev.summary()["auc"]) > 0.05


def test_constant_scorer_gets_the_auc_of_reverse_shown_order() -> None:
    ev = ImpressionEvaluation("const")
    ev.add(LabeledImpression("x", "u", 0.0, ("a", "b", "c"), (1, 0, 0)), np.zeros(3))
    assert ev.summary()["auc"] == pytest.approx(0.0)  # the clicked first slot ranks last
    assert list(ev.ranks[0]) == [3, 2, 1]


def test_scorer_refuses_missing_impressions_and_bad_lines(tmp_path) -> None:
    with pytest.raises(ValueError, match="lack 1 impression"):
        score_prediction_file({"a": [1, 2]}, {"a": [1, 0], "b": [0, 1]})
    bad = tmp_path / "bad.txt"
    bad.write_text("i0 1,2\n")
    with pytest.raises(ValueError, match="bad.txt:1"):
        read_prediction_file(bad)
