"""Coordination between serving processes: one leader among workers and replicas.

    Lease (abstract)  <- RedisLease (workers / replicas sharing one Redis)
                      <- LocalLease (one embedded process; tests)
    LeaseKeeper       a thread that acquires and renews a lease; `is_leader()` is what the
                      leader's work checks before every action
    open_lease(url)   the backend a URL names ("redis://..." or "local://")

The seam of every singleton job of the service: the rollout autopilot today, the pipeline lock
and scheduled jobs later.
"""

from newsdesk.coordination.lease import Lease, LeaseKeeper, LocalLease, RedisLease, open_lease

__all__ = ["Lease", "LeaseKeeper", "LocalLease", "RedisLease", "open_lease"]
