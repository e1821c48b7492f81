"""`newsdesk retention apply`: old events and erased readers leave the event log and datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.erasure import ErasureList
from newsdesk.data.eventlog import open_event_log
from newsdesk.data.retention import apply_retention
from newsdesk.data.schema import Article

NEWSDESK = Path(sys.executable).parent / "newsdesk"
NOW = datetime(2026, 1, 31, tzinfo=UTC)


def _events(days_ago: list[int], users: list[str]) -> list[dict]:
    out = []
    for i, (d, u) in enumerate(zip(days_ago, users, strict=True)):
        ts = NOW - timedelta(days=d)
        out.append({"kind": "impression", "request_id": f"r{i}", "user_id": u, "timestamp": ts,
                    "article_ids": ["a0", "a1"]})
        out.append({"kind": "interaction", "event_id": f"e{i}", "user_id": u, "type": "click",
                    "article_id": "a0", "request_id": f"r{i}", "timestamp": ts})
    return out


def _world(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "dataset"
    with DatasetWriter(data, source="test") as w:
        w.table("articles").write_rows([Article(article_id=f"a{i}", title="t", category="c",
                                                published_at=NOW - timedelta(days=100)
                                                ).model_dump() for i in range(2)])
        w.table("histories").write_rows([
            {"user_id": "old", "article_ids": ["a0"], "as_of": NOW - timedelta(days=60)},
            {"user_id": "undated", "article_ids": ["a0"], "as_of": None},
            {"user_id": "bob", "article_ids": ["a1"], "as_of": NOW - timedelta(days=1)}])
    url = f"sqlite:///{tmp_path / 'state' / 'events.db'}"
    log = open_event_log(url)
    log.append(_events([90, 40, 10, 2, 1], ["ann", "bob", "carol", "alice", "bob"]))
    log.export(data)
    log.close()
    return data, url


def test_retention_purges_old_events_and_erased_readers(tmp_path: Path) -> None:
    data, url = _world(tmp_path)
    log = open_event_log(url)
    report = apply_retention(event_log=log, datasets=[data], max_age_days=30,
                             erased=frozenset({"alice"}), now=NOW.timestamp())
    left = [(type(e).__name__, e.user_id) for _, e in log.read()]
    log.close()
    # 90 and 40 days old (2 events each) and alice's 2 events go; carol and bob (1 day) stay
    assert report.event_log_deleted == 6
    assert sorted(set(left)) == [("Impression", "bob"), ("Impression", "carol"),
                                 ("Interaction", "bob"), ("Interaction", "carol")]
    ds = Dataset(data)
    imps = ds.read("impressions")
    assert sorted(imps["user_id"].to_list()) == ["bob", "carol"]
    assert imps["timestamp"].min() >= NOW - timedelta(days=30)
    assert sorted(ds.read("histories")["user_id"].to_list()) == ["bob", "undated"]
    assert ds.count("articles") == 2  # not personal data
    assert report.dataset_deleted[str(data)] == {"impressions": 3, "interactions": 3,
                                                 "histories": 1}
    assert "alice" in ErasureList.in_dir(data)
    again = apply_retention(datasets=[data], max_age_days=30, now=NOW.timestamp())
    assert again.dataset_deleted[str(data)] == {"impressions": 0, "interactions": 0,
                                                "histories": 0}


def test_cli_reads_the_state_dirs_erasure_list(tmp_path: Path) -> None:
    data, _ = _world(tmp_path)
    ErasureList.in_dir(tmp_path / "state").add(["carol"])
    out = tmp_path / "report.json"
    result = subprocess.run(
        [str(NEWSDESK), "retention", "apply", "--state-dir", str(tmp_path / "state"),
         "--dataset", str(data), "--max-age-days", "30", "--now", NOW.isoformat(),
         "--json", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 erased readers" in result.stdout
    report = json.loads(out.read_text())
    assert report["event_log_deleted"] == 6 and report["erased_users"] == 1
    assert sorted(set(Dataset(data).read("interactions")["user_id"].to_list())) == [
        "alice", "bob"]
    nothing = subprocess.run([str(NEWSDESK), "retention", "apply", "--dataset", str(data)],
                             capture_output=True, text=True, timeout=120)
    assert nothing.returncode != 0 and "nothing to do" in nothing.stderr
    assert "Traceback" not in nothing.stderr


@pytest.mark.redis
def test_redis_stream_log_purge(redis_server: str) -> None:
    log = open_event_log(redis_server, prefix="retention-test:")
    log.append(_events([90, 1, 1], ["ann", "alice", "bob"]))
    deleted = log.purge(before=(NOW - timedelta(days=30)).timestamp(),
                        users=frozenset({"alice"}))
    left = {e.user_id for _, e in log.read()}
    # a purged event's key is forgotten: sent again, it is accepted again
    again = log.append(_events([90], ["ann"]))
    log.close()
    assert deleted == 4 and left == {"bob"}
    assert again.accepted == 2


def test_erasure_list_sees_its_own_add_at_once_and_others_within_recheck(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import newsdesk.data.erasure as erasure_module

    clock = [100.0]
    monkeypatch.setattr(erasure_module.time, "monotonic", lambda: clock[0])
    mine = ErasureList(tmp_path / "erasures.jsonl", recheck_s=0.5)
    other = ErasureList(tmp_path / "erasures.jsonl", recheck_s=0.5)
    assert "dave" not in mine and "dave" not in other  # both checked the file at t=100
    other.add(["dave"])
    assert "dave" in other  # its own add: at once
    assert "dave" not in mine  # another process: not before its next check ...
    clock[0] += 0.6
    assert "dave" in mine  # ... which comes within recheck_s
