"""Tools to exercise a running `newsdesk serve` under faults (tests and benchmarks use them).

    server.py  ServeProcess: the real command as a child process; start, SIGKILL, SIGTERM,
               readiness, and /proc samples (RSS, fds, threads)
    proxy.py   LatencyProxy: an asyncio TCP proxy in front of Redis that adds latency
    ingest.py  AckLedger + send_batch: event batches with ids, what was acknowledged, what to
               resend after a crash, and the check against the durable log

Nothing here is imported by the service itself: these drive it from outside, like a client
or an operator would.
"""
