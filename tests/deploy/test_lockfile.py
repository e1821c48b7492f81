"""requirements.lock (the deployment's pinned versions) agrees with pyproject.toml, and the image
installs with it. Offline: the lock is read, never resolved again."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKED_EXTRAS = ("ml", "redis", "otel")


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep, f"requirements.lock: {line!r} is not pinned with =="
        pins[canonicalize_name(name.split("[")[0])] = Version(version.split(";")[0].strip())
    return pins


def _requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in LOCKED_EXTRAS:
        reqs += project["optional-dependencies"][extra]
    return [Requirement(r) for r in reqs]


def test_every_deployed_dependency_is_pinned_within_pyprojects_bounds() -> None:
    pins = _pins()
    problems = []
    for req in _requirements():
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f"{req.name}: not in requirements.lock (run make lock)")
        elif not req.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{req.name}: locked {pins[name]} is outside {req.specifier}")
    assert problems == []


def test_the_lock_has_no_dev_tools_and_resolves_each_package_once() -> None:
    lines = [ln.split("==")[0] for ln in (ROOT / "requirements.lock").read_text().splitlines()
             if ln and not ln.startswith(("#", " "))]
    names = [canonicalize_name(n) for n in lines]
    assert len(names) == len(set(names))
    assert not {"pytest", "ruff", "schemathesis", "hypothesis", "mypy"} & set(names)


def test_the_image_installs_with_the_lock() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    ignore = (ROOT / "deploy" / "docker" / "Dockerfile.dockerignore").read_text()
    assert "-c requirements.lock" in dockerfile
    assert any(line.startswith("COPY") and "requirements.lock" in line
               for line in dockerfile.splitlines())
    assert "!requirements.lock" in ignore.splitlines()


def test_audit_is_skipped_with_a_message_when_the_database_is_unreachable(tmp_path) -> None:
    import subprocess
    import sys

    sys.path.insert(0, str(ROOT / "deploy"))
    try:
        from audit_deps import reachable
    finally:
        sys.path.remove(str(ROOT / "deploy"))
    assert reachable("http://127.0.0.1:9/pypi/x/1/json", timeout_s=2) is not None
    missing = subprocess.run([sys.executable, str(ROOT / "deploy" / "audit_deps.py"),
                              str(tmp_path / "nope.lock")], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
