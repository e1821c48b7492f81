"""The experiment hook of the recommend path.

A `VariantAssigner` decides, per request, which experiment and variant a user is in and which
model version serves them. The default puts everyone in the single production variant (no
experiment, the active model); the experiments package plugs its assigner in through
`create_app(..., variant_assigner=...)` without touching the routes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Assignment:
    experiment: str | None = None  # None: no experiment running for this request
    variant: str | None = None  # None: production
    model_version: str | None = None  # None: the registry's active model


PRODUCTION = Assignment()


@runtime_checkable
class VariantAssigner(Protocol):
    def assign(self, unit_id: str, surface: str) -> Assignment:
        """The assignment of one randomisation unit (user or session id) on a surface;
        must be deterministic and cheap (called on every request)."""
        ...


class ProductionOnly:
    """The default assigner: everyone gets the production variant."""

    def assign(self, unit_id: str, surface: str) -> Assignment:
        return PRODUCTION
