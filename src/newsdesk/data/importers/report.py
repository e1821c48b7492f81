"""The import report: what an import wrote, skipped and could not resolve.

One `ImportReport` is filled while an importer runs; it ends up in the dataset's manifest
(`manifest.json` -> "report"), on the console (`summary()`) and in `--json` output (`to_dict()`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from newsdesk.errors import RowError

MAX_KEPT_ERRORS = 20  # the report keeps the first errors only; counts stay exact
MAX_MISSING_SAMPLE = 10


@dataclass
class ImportReport:
    """Counts and first errors of one import run.

    `rows` / `duplicates` are per canonical table; `bad_rows` counts skipped source rows
    (a MIND behaviors line is one source row even though it feeds three tables);
    `missing_article_ids` counts distinct ids referenced by impressions, interactions or
    histories that the imported catalog does not contain.
    """

    kind: str
    source: str
    out: str
    rows: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    bad_rows: int = 0
    bad_by_field: Counter[str] = field(default_factory=Counter)
    errors: list[RowError] = field(default_factory=list)
    referenced_article_ids: int = 0
    missing_article_ids: int = 0
    missing_sample: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add_error(self, error: RowError) -> None:
        self.bad_rows += 1
        self.bad_by_field[f"{error.file}:{error.field}"] += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)

    @property
    def catalog_coverage(self) -> float | None:
        """Share of referenced article ids that the catalog knows (None when none referenced)."""
        if not self.referenced_article_ids:
            return None
        return 1.0 - self.missing_article_ids / self.referenced_article_ids

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able view (plain types only)."""
        return {
            "kind": self.kind,
            "source": self.source,
            "out": self.out,
            "rows": dict(self.rows),
            "duplicates": dict(self.duplicates),
            "bad_rows": self.bad_rows,
            "bad_by_field": dict(sorted(self.bad_by_field.items())),
            "errors": [
                {"file": e.file, "line": e.line, "field": e.field, "message": e.message}
                for e in self.errors
            ],
            "referenced_article_ids": self.referenced_article_ids,
            "missing_article_ids": self.missing_article_ids,
            "missing_sample": list(self.missing_sample),
            "catalog_coverage": self.catalog_coverage,
            "notes": dict(self.notes),
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """A short rich-markup summary for the console."""
        lines = [f"[bold]imported {self.kind}[/bold] from {self.source} -> [bold]{self.out}[/bold]"
                 f" in {self.seconds:.1f}s"]
        for table, n in self.rows.items():
            dup = self.duplicates.get(table, 0)
            extra = f"  ({dup:,} duplicate keys skipped)" if dup else ""
            lines.append(f"  {table:<13}{n:>12,} rows{extra}")
        if self.bad_rows:
            fields = ", ".join(f"{k}={v:,}" for k, v in sorted(self.bad_by_field.items()))
            lines.append(f"  [yellow]bad rows skipped {self.bad_rows:,}[/yellow] ({fields})")
            lines.extend(f"    {e}" for e in self.errors[:3])
        else:
            lines.append("  bad rows skipped            0")
        if self.referenced_article_ids:
            cov = self.catalog_coverage or 0.0
            colour = "yellow" if self.missing_article_ids else "green"
            lines.append(
                f"  [{colour}]missing articles {self.missing_article_ids:,}[/{colour}] of "
                f"{self.referenced_article_ids:,} referenced ids "
                f"(catalog coverage {100 * cov:.1f}%)"
            )
        for key, value in self.notes.items():
            lines.append(f"  {key.replace('_', ' ')}: {value}")
        return "\n".join(lines)
