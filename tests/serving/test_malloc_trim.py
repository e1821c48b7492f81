"""MallocTrimmer gives freed heap pages back: resident memory drops after a tick when freed
blocks sit below a live one (where glibc's own trimming at the top of the heap cannot reach).
A pinned mmap threshold keeps multi-MiB blocks out of the heap even after glibc's dynamic
threshold would have risen past them.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from newsdesk.serving.malloc_trim import MallocTrimmer, tune_heap

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
    assert tune_heap(0, 0) is None
    with pytest.raises(ValueError, match="interval_s"):
        MallocTrimmer(0)


# In a fresh process (the threshold is process-wide): free a 20 MiB mapped block, which raises
# glibc's dynamic threshold to 20 MiB, then count the mapped blocks a 4 MiB allocation adds.
_MAPPED_AFTER_RAISE = """
import ctypes, sys
from newsdesk.serving.malloc_trim import pin_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(20 << 20))
if sys.argv[1] == "pin":
    assert pin_mmap_threshold(1 << 20)
before = libc.mallinfo2().hblks
block = libc.malloc(4 << 20)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.parametrize(("mode", "mapped"), [("dynamic", 0), ("pin", 1)])
def test_pinned_threshold_maps_large_blocks_after_the_dynamic_rise(mode: str,
                                                                  mapped: int) -> None:
    out = subprocess.run([sys.executable, "-c", _MAPPED_AFTER_RAISE, mode], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    assert int(out) == mapped
