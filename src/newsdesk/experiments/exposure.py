"""Exposure records: which experiment/variant a served slate belongs to, with propensities.

Every served slate becomes one row of the `impressions` table (`newsdesk.data.schema`). The
table has one `experiment` and one `variant` column; a unit in experiments of several layers is
encoded as aligned ``;``-separated lists (``"ranker-v2;layout-3"`` / ``"treatment;control"``),
and `variant_of(experiment, variant, experiment_id)` decodes one experiment's variant. Positions
are the list order of `article_ids` (0-based); `propensities[i]` is the probability that the
serving policy put that article at position i (1.0 for a deterministic ranker).
Live experiments add `teams` (interleaving: which of the two rankers contributed each position)
and `assignment_propensity` (bandit: the probability of the variant that served the slate).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from newsdesk.data.schema import Impression
from newsdesk.errors import InvalidInput
from newsdesk.experiments.assignment import Assignment

SEP = ";"


@dataclass(frozen=True)
class Exposure:
    """One served slate: who, where, what (in order), under which assignments."""

    request_id: str
    unit_id: str
    surface: str
    article_ids: Sequence[str]
    assignments: Sequence[Assignment]
    propensities: Sequence[float] | None = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    teams: Sequence[int] | None = None  # interleaving: team of each position (0 / 1)
    assignment_propensity: float | None = None  # bandit: P(this variant) when it was drawn

    def __post_init__(self) -> None:
        if self.propensities is not None and len(self.propensities) != len(self.article_ids):
            raise InvalidInput("propensities must have one value per article",
                               field="propensities")
        for a in self.assignments:
            if SEP in a.experiment_id or SEP in a.variant:
                raise InvalidInput(f"'{SEP}' is not allowed in experiment or variant names",
                                   field="experiment")

    @property
    def positions(self) -> list[int]:
        return list(range(len(self.article_ids)))

    def to_row(self) -> dict[str, Any]:
        """The impressions-table row (validated through the `Impression` record)."""
        exp = SEP.join(a.experiment_id for a in self.assignments) or None
        var = SEP.join(a.variant for a in self.assignments) or None
        record = Impression(
            request_id=self.request_id, user_id=self.unit_id, timestamp=self.timestamp,
            surface=self.surface, article_ids=list(self.article_ids),
            propensities=None if self.propensities is None else list(self.propensities),
            experiment=exp, variant=var,
            teams=None if self.teams is None else list(self.teams),
            assignment_propensity=self.assignment_propensity)
        return record.model_dump()


def variant_of(experiment: str | None, variant: str | None, experiment_id: str) -> str | None:
    """Decode the variant of `experiment_id` from an impression's encoded columns."""
    if not experiment or not variant:
        return None
    exps, vars_ = experiment.split(SEP), variant.split(SEP)
    for e, v in zip(exps, vars_, strict=False):
        if e == experiment_id:
            return v
    return None


class ExposureLog(ABC):
    """Where serving sends exposures; must not drop records silently."""

    @abstractmethod
    def log(self, exposure: Exposure) -> None: ...


class InMemoryExposureLog(ExposureLog):
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def log(self, exposure: Exposure) -> None:
        self.rows.append(exposure.to_row())
