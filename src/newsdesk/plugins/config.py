"""The train config's `plugins:` list (one entry per plug-in):

    plugins:
      - name: nrms                       # entry point name (plugins.registry)
        roles: [candidates, features]    # candidates | features | rankers
        quota: 60                        # candidates per request (candidates role)
        params: {epochs: 3}              # passed to the class as keyword arguments (JSON)

At most one entry may take the `rankers` role (it replaces the LightGBM ranker). Names are
the generator names of the pipeline, so they may not repeat newsdesk's own generators.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

BUILTIN_GENERATORS = ("trending", "recency", "content", "coclick", "collaborative", "category")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

Role = Literal["candidates", "features", "rankers"]


class PluginSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    roles: list[Role] = Field(min_length=1)
    quota: int = Field(60, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"must be a letter then letters, digits or '_' (<= 64), got {v!r}")
        if v in BUILTIN_GENERATORS:
            raise ValueError(f"{v!r} is one of newsdesk's own generators "
                             f"{list(BUILTIN_GENERATORS)}")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"roles repeat: {v}")
        if "rankers" in v and len(v) > 1:
            raise ValueError("a ranker plug-in takes the 'rankers' role alone")
        return v


def check_specs(specs: list[PluginSpec]) -> None:
    """Distinct names, at most one ranker (ValueError naming the problem)."""
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"plug-in names repeat: {dup}")
    rankers = [s.name for s in specs if "rankers" in s.roles]
    if len(rankers) > 1:
        raise ValueError(f"at most one ranker plug-in, got {rankers}")
