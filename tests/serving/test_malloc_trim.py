"""MallocTrimmer gives freed heap pages back: resident memory drops after a tick when freed
blocks sit below a live one (where glibc's own trimming at the top of the heap cannot reach).
"""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from newsdesk.serving.malloc_trim import MallocTrimmer, start_malloc_trim

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="malloc_trim is glibc's; RSS read from /proc")


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_tick_returns_freed_heap_pages_to_the_os() -> None:
    trimmer = MallocTrimmer(60.0)
    assert trimmer.available
    trimmer.tick()  # start from a trimmed heap
    # 64 KiB blocks: below glibc's mmap threshold, so they come from the heap, one after the
    # other; the last one stays alive and pins the top, so free() alone keeps them resident
    blocks = [bytearray(64 * 1024) for _ in range(640)]  # 40 MiB, every page touched
    pin = blocks.pop()
    before_free = _rss_mib()
    del blocks
    after_free = _rss_mib()
    trimmer.tick()
    after_trim = _rss_mib()
    assert len(pin) == 64 * 1024
    assert after_free > before_free - 8  # freed, but still resident
    assert after_trim < after_free - 30  # handed back: most of the 40 MiB
    assert trimmer.trims == 2 and trimmer.last_ms >= 0


def test_settings_zero_turns_it_off_and_bad_interval_is_refused() -> None:
    assert start_malloc_trim(0) is None
    with pytest.raises(ValueError, match="interval_s"):
        MallocTrimmer(0)
