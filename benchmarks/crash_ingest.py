"""Crash durability of event ingest: SIGKILLs of a real `newsdesk serve` at full ingest rate.

    benchmarks/crash_ingest.py [--kills 20] [--quick] [--json FILE] [--work DIR]

Each round restarts the server on the same state dir, resends what was not acknowledged,
ingests with 4 concurrent clients (batches of 200 click events with event ids) and SIGKILLs
the server after 0.5-2 s while batches are in flight (`newsdesk.chaos.crash`). Then the
durable event log is read back. Targets: `acked_events_lost` = 0 and `duplicate_events` = 0;
`durable_but_unacked_events` counts events whose batch was durable when the kill cut the
answer (the resend found them as duplicates). `online_clicks_missing` compares the online
state (the readers' recent clicks) with the acknowledged clicks after the crashes.
`--quick`: 3 kills. The machine may be shared: restart times and events/s are noisy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from newsdesk.chaos.crash import run_crash_ingest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="3 kills")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    kills = 3 if args.quick else args.kills
    work = args.work or Path(tempfile.mkdtemp(prefix="crash-ingest-"))
    result = run_crash_ingest(work, kills=kills)
    keys = ("kills", "batches", "acked_events", "logged_events", "acked_events_lost",
            "duplicate_events", "unknown_events", "send_failures", "resent_batches",
            "durable_but_unacked_events", "online_users_checked", "online_clicks_missing",
            "online_clicks_extra", "mean_restart_s", "mean_events_per_s", "seconds")
    for key in keys:
        print(f"{key:>28}: {result[key]}")
    ok = result["acked_events_lost"] == 0 and result["duplicate_events"] == 0
    print("PASS" if ok else "FAIL", "(zero acknowledged events lost, zero duplicates)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"benchmark": "crash_ingest", "work": str(work),
                                         "systems": {"newsdesk": result}}, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
