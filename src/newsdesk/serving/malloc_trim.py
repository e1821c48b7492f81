"""Give the heap's free pages back to the operating system now and then (glibc `malloc_trim`).

Why: `benchmarks/soak.py` with a memory probe in the server (sys.getallocatedblocks, glibc's
mallinfo2, /proc/PID/smaps; 16 min at 30 req/s with events and upserts) showed the Python
objects reach a plateau once the service's 10-minute memories (applied event keys, served
request ids, the quality monitor's slates: data/recent_keys.py) are full -- the allocated
block count is flat from minute 10 on -- while glibc's free space inside its arenas grew from
2.5 to 15 MiB: those memories churn dict tables of several MiB, and once glibc's dynamic mmap
threshold has risen past that size such blocks come from the heap, where a freed one leaves a
resident hole. `malloc_trim(0)` releases the free pages in every arena (MADV_DONTNEED; 7.2 of
those 15 MiB at the end of that run). What it is worth, measured: two 30-minute soaks side by
side at the same rate, trimming on / off: the [heap] mapping ended at 45 / 51 MiB and RSS at
406.1 / 409.5 MiB, about 1%; the soak's growth figure was the same (+3.9% / +3.6%): the larger
steps come from elsewhere (docs/reliability.md, Soak). It walks the arenas under their locks,
without the GIL (ctypes releases it): on a synthetic heap of 1.5M objects with half of them
freed, 31 ms for the first call and 0.6 ms for the next ones; a call over 50 ms is logged
(`malloc_trim_slow`).

A no-op where the C library has no `malloc_trim` (musl, macOS).

The mmap threshold: glibc serves a block of at least M_MMAP_THRESHOLD bytes from a mapping of
its own, returned to the OS when freed. By default that threshold is dynamic: each freed mapped
block raises it (up to 32 MiB), so later multi-MiB blocks -- the tables of those 10-minute key
memories when they resize -- come from the heap, and a freed one leaves a resident hole that
the next table does not fit. That was the soak's step-wise RSS growth after warm-up. Pinning
the threshold (`pin_mmap_threshold`, setting `malloc_mmap_threshold_kib`) turns the dynamic
rule off: such blocks always get their own mapping.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from typing import Any

from newsdesk.monitoring.logging import get_logger
from newsdesk.serving.periodic import Periodic

log = get_logger("newsdesk.serving.malloc_trim")


def _libc(name: str, argtypes: list[Any]) -> Callable[..., int] | None:
    """The C library's function `name` (None where there is none: musl, macOS)."""
    lib = ctypes.util.find_library("c")
    if lib is None:
        return None
    try:
        fn = getattr(ctypes.CDLL(lib), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def _libc_trim() -> Callable[[int], int] | None:
    return _libc("malloc_trim", [ctypes.c_size_t])


_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def pin_mmap_threshold(n_bytes: int) -> bool:
    """Fix glibc's M_MMAP_THRESHOLD at `n_bytes` (process-wide; ends the dynamic threshold).
    False where the C library has no `mallopt` or refuses the value."""
    mallopt = _libc("mallopt", [ctypes.c_int, ctypes.c_int])
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, n_bytes))


class MallocTrimmer:
    """Calls `malloc_trim(0)` every `interval_s` on a daemon thread (see the module docstring).

    `available` is False where the C library lacks it; then `tick` and `start` do nothing.
    `trims` counts the calls, `last_ms` is the duration of the last one."""

    def __init__(self, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self._trim = _libc_trim()
        self.available = self._trim is not None
        self.trims = 0
        self.last_ms = 0.0
        self._job = Periodic("malloc-trim", interval_s, self.tick)

    def tick(self) -> None:
        if self._trim is None:
            return
        started = time.perf_counter()
        self._trim(0)
        self.last_ms = (time.perf_counter() - started) * 1000
        self.trims += 1
        if self.last_ms > 50:  # an arena walk this slow stalls allocating threads: say so
            log.warning("malloc_trim_slow", ms=round(self.last_ms, 1))

    def start(self) -> MallocTrimmer:
        if self.available:
            self._job.start()
        return self

    def stop(self) -> None:
        if self.available:
            self._job.stop()


def tune_heap(trim_interval_s: float, mmap_threshold_kib: int) -> MallocTrimmer | None:
    """A server process's heap settings: the mmap threshold pinned (0: glibc's dynamic
    default) and the trimmer started (None when `trim_interval_s` is 0: off)."""
    if mmap_threshold_kib > 0 and not pin_mmap_threshold(mmap_threshold_kib * 1024):
        log.warning("mmap_threshold_not_set", kib=mmap_threshold_kib)
    return MallocTrimmer(trim_interval_s).start() if trim_interval_s > 0 else None
