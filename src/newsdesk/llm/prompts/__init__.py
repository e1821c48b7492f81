"""Versioned prompt files shipped in this package: `llm/prompts/NAME.vN.txt`.

A prompt file has `# comment` lines, a `[system]` section and a `[user]` section; the user
section is a template with `{field}` placeholders. The id `NAME.vN` goes into cache keys and
stored results, so changing a prompt means adding a new version file, never editing one in
place: results made with the old prompt stay identifiable and are redone on demand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from newsdesk.errors import ConfigError
from newsdesk.llm.provider import Message

_FILE = re.compile(r"^(?P<name>[a-z_]+)\.v(?P<version>\d+)\.txt$")


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: int
    system: str
    user: str

    @property
    def id(self) -> str:
        return f"{self.name}.v{self.version}"

    def messages(self, **fields: Any) -> list[Message]:
        """The chat messages with `fields` filled in (missing fields are empty)."""
        # fields are escaped by format_map itself: braces inside values are not re-parsed
        text = self.user.format_map(_Blank({k: "" if v is None else v for k, v in fields.items()}))
        return [{"role": "system", "content": self.system}, {"role": "user", "content": text}]


def prompt_versions(name: str) -> list[int]:
    files = resources.files("newsdesk.llm.prompts")
    found = [_FILE.match(f.name) for f in files.iterdir()]
    return sorted(int(m["version"]) for m in found if m and m["name"] == name)


def load_prompt(name: str, version: int | None = None) -> Prompt:
    """Prompt `name` at `version` (default: the newest); ConfigError names what exists."""
    versions = prompt_versions(name)
    if not versions or (version is not None and version not in versions):
        raise ConfigError(f"prompt {name!r} version {version}: not found (have "
                          f"{[f'{name}.v{v}' for v in versions] or 'none'})")
    version = version if version is not None else versions[-1]
    text = resources.files("newsdesk.llm.prompts").joinpath(f"{name}.v{version}.txt").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    body = "\n".join(lines)
    match = re.search(r"^\[system\]\n(?P<system>.*?)^\[user\]\n(?P<user>.*)\Z", body,
                      re.S | re.M)
    if match is None:
        raise ConfigError(f"prompt {name}.v{version}: needs a [system] and a [user] section")
    return Prompt(name, version, match["system"].strip(), match["user"].strip())
