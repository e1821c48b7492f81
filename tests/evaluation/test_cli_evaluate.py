"""`newsdesk evaluate` end to end: simulate -> train (real subprocesses) -> evaluate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import newsdesk
from newsdesk.evaluation.harness import run_evaluation

pytestmark = pytest.mark.ml
NEWSDESK = [sys.executable, "-m", "newsdesk.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NEWSDESK, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                                            "OPENBLAS_NUM_THREADS": "1",
                                            # the checkout under test, not the installed copy
                                            "PYTHONPATH": str(Path(newsdesk.__file__).parents[1])})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cli-eval")
    sim = _run("simulate", "--seed", "1", "--users", "300", "--days", "2",
               "--articles-per-day", "60", "--impressions-per-day", "1500", "--out", "ds",
               cwd=root)
    assert sim.returncode == 0, sim.stderr
    (root / "cfg.yaml").write_text("embedder: hashing\nranker:\n  num_boost_round: 40\n")
    tr = _run("train", "ds", "--out", "bundles", "--config", "cfg.yaml", cwd=root)
    assert tr.returncode == 0, tr.stderr
    (bundle,) = [p for p in (root / "bundles").iterdir() if not p.name.startswith(".")]
    return root, bundle


def test_cli_evaluate_replay_writes_reports(trained: tuple[Path, Path]) -> None:
    root, bundle = trained
    out = _run("evaluate", "ds", "--bundle", str(bundle), "--protocol", "replay", "--json",
               "replay.json", "--report", "rep/replay", "--resamples", "100",
               "--predictions", "replay.txt", cwd=root)
    assert out.returncode == 0, out.stderr
    assert "| newsdesk |" in out.stdout
    _check(root, "replay")


@pytest.mark.parametrize("protocol", ["mind", "topk"])
def test_run_evaluation_other_protocols(trained: tuple[Path, Path], protocol: str) -> None:
    """The same code path in-process (the subprocess start-up is paid once above)."""
    root, bundle = trained
    rep = run_evaluation(root / "ds", bundle, protocol, window="last-day", k=10, seed=0,
                         n_resamples=100, predictions=root / f"{protocol}.txt")
    (root / f"{protocol}.json").write_text(json.dumps(rep.to_dict()))
    rep.write(root / "rep" / protocol)
    _check(root, protocol)


def _check(root: Path, protocol: str) -> None:
    data = json.loads((root / f"{protocol}.json").read_text())
    extra = {"history_coclick"} if protocol == "mind" else set()
    assert set(data["systems"]) == {"random", "streaming_ctr", "most_popular", "newsdesk",
                                    *extra}
    metric = "auc" if protocol != "topk" else "recall@10"
    assert all(0.0 <= s[metric] <= 1.0 for s in data["systems"].values())
    assert {c["system_b"] for c in data["comparisons"]} == {"newsdesk"}
    for suffix in ("md", "png", "json"):
        assert (root / "rep" / f"{protocol}.{suffix}").stat().st_size > 100
    if protocol == "topk":
        assert "coverage" in data["systems"]["newsdesk"]
        return
    # the random baseline's AUC is near 0.5 on a few hundred impressions
    assert abs(data["systems"]["random"]["auc"] - 0.5) < 0.06
    lines = (root / f"{protocol}.txt").read_text().splitlines()
    assert len(lines) == data["systems"]["newsdesk"]["impressions"]
    impid, ranks = lines[0].split(" ")
    r = [int(x) for x in ranks.strip("[]").split(",")]
    assert sorted(r) == list(range(1, len(r) + 1))
    # one tie rule: the competition's arithmetic on the written file gives the report's figures
    from newsdesk.data.dataset import Dataset
    from newsdesk.evaluation.mind_protocol import labeled_impressions
    from newsdesk.evaluation.mind_scorer import read_prediction_file, score_prediction_file

    pred = read_prediction_file(root / f"{protocol}.txt")
    truth = {imp.impression_id: list(imp.labels)
             for imp in labeled_impressions(Dataset(root / "ds")) if imp.impression_id in pred}
    from_file = score_prediction_file(pred, truth)
    for m in ("auc", "mrr", "ndcg@5", "ndcg@10"):
        assert data["systems"]["newsdesk"][m] == pytest.approx(from_file[m], abs=1e-9), m


def test_evaluate_rejects_an_unknown_protocol(trained: tuple[Path, Path]) -> None:
    root, bundle = trained
    out = _run("evaluate", "ds", "--bundle", str(bundle), "--protocol", "nope", cwd=root)
    assert out.returncode == 1
    assert "--protocol must be one of" in out.stderr
