"""`make audit`: pip-audit of the locked deployment versions, when its database is reachable.

    python deploy/audit_deps.py [requirements.lock]

pip-audit asks the PyPI vulnerability service about every pinned version (no install:
`--no-deps --disable-pip`, the lock is already complete). Without network the audit cannot
run: it says so on one line and exits 0, so an offline CI stays green and the skip is visible.
Exit 1 when a known vulnerability is found (pip-audit's own report is printed).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

PROBE = "https://pypi.org/pypi/{name}/{version}/json"  # what pip-audit asks, per version


def first_pin(lock: Path) -> tuple[str, str]:
    for line in lock.read_text().splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and not line.startswith("#"):
            return name, version.split(";")[0].strip()
    raise SystemExit(f"audit: {lock} pins nothing")


def reachable(url: str, timeout_s: float = 5.0) -> str | None:
    """None when the database answers, else why not. A proxy that serves the package index
    but not the per-version documents (where the vulnerabilities are) counts as unreachable:
    pip-audit would report every package as not audited and find nothing."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"


def main() -> int:
    lock = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    if not lock.is_file():
        print(f"audit: {lock} does not exist (make lock)", file=sys.stderr)
        return 1
    name, version = first_pin(lock)
    url = PROBE.format(name=name, version=version)
    why = reachable(url)
    if why is not None:
        print(f"audit: SKIPPED, the vulnerability database is unreachable ({url}: {why})")
        return 0
    binary = shutil.which("pip-audit") or str(Path(sys.executable).parent / "pip-audit")
    result = subprocess.run([binary, "-r", str(lock), "--no-deps", "--disable-pip",
                             "--progress-spinner", "off"], check=False)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
