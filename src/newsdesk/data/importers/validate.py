"""Row validation for importers: a cheap fast path, pydantic for everything else.

Building a pydantic record per row costs ~10 us, which dominates a MIND import of six million
shown items. So each canonical row (a dict of column -> value) first goes through `fast_ok`,
a handful of isinstance/length checks that accept only rows pydantic would accept *unchanged*
(stripped strings, UTC datetimes, floats). Anything unusual, valid or not, falls back to the
pydantic record of `schema.RECORDS`, which either normalises the row (e.g. strips whitespace,
converts a naive datetime to UTC) or yields errors that name the field. So errors are exactly
as clear as pydantic's and the written rows are identical to `Record(**row).model_dump()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from newsdesk.data.schema import RECORDS, TABLES

_TYPES = frozenset({"click", "dwell", "share", "dismiss"})


def _defaults(table: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, info in RECORDS[table].model_fields.items():
        if not info.is_required():
            out[name] = info.get_default(call_default_factory=True)
    return out


# Columns an importer may leave out; filled before the fast check so both paths agree.
DEFAULTS: dict[str, dict[str, Any]] = {t: _defaults(t) for t in TABLES}


def _clean(s: object) -> bool:
    # pydantic strips whitespace; a string it would change is left to pydantic
    return type(s) is str and (not s or (not s[0].isspace() and not s[-1].isspace()))


def _id(s: object) -> bool:
    return type(s) is str and 0 < len(s) <= 256 and not s[0].isspace() and not s[-1].isspace()


def _ids(v: object) -> bool:
    """A list of ids none of which pydantic would reject or change (the hot path: MIND slates).

    One C-level join instead of a Python call per id: an id list with no whitespace anywhere
    cannot need stripping; ids with inner spaces are valid but take the pydantic path.
    """
    if type(v) is not list:
        return False
    if not v:
        return True
    try:
        joined = "\x00".join(v)  # TypeError unless all are strings
    except TypeError:
        return False
    if "" in v or len(max(v, key=len)) > 256:
        return False
    tokens = joined.split(maxsplit=1)  # one token as long as the whole: no whitespace at all
    return len(tokens) == 1 and len(tokens[0]) == len(joined)


def _ts(v: object) -> bool:
    return type(v) is datetime and v.tzinfo is UTC


def _opt_ts(v: object) -> bool:
    return v is None or _ts(v)


def _opt_str(v: object) -> bool:
    return v is None or _clean(v)


def _fast_article(r: dict[str, Any]) -> bool:
    return (
        _id(r["article_id"]) and _clean(r["title"]) and r["title"] != ""
        and _clean(r["abstract"]) and _clean(r["body"]) and _clean(r["category"])
        and _clean(r["subcategory"]) and _clean(r["url"]) and _clean(r["brand"])
        and _clean(r["language"]) and 2 <= len(r["language"]) <= 8
        and type(r["entities"]) is list and all(_clean(e) for e in r["entities"])
        and type(r["tags"]) is list and all(_clean(e) for e in r["tags"])
        and _ts(r["published_at"]) and _opt_ts(r["updated_at"]) and _opt_ts(r["expires_at"])
        and (r["expires_at"] is None or r["expires_at"] >= r["published_at"])
    )


def _fast_impression(r: dict[str, Any]) -> bool:
    ids = r["article_ids"]
    return (
        _id(r["request_id"]) and _id(r["user_id"]) and _ts(r["timestamp"])
        and _clean(r["surface"]) and _ids(ids) and len(ids) > 0
        and r["propensities"] is None
        and _opt_str(r["experiment"]) and _opt_str(r["variant"])
    )


def _fast_interaction(r: dict[str, Any]) -> bool:
    dwell = r["dwell_seconds"]
    rating = r["rating"]
    return (
        _id(r["event_id"]) and _id(r["user_id"]) and _id(r["article_id"])
        and r["type"] in _TYPES and type(r["type"]) is str and _ts(r["timestamp"])
        and _opt_str(r["request_id"])
        and (dwell is None or (type(dwell) is float and 0.0 <= dwell <= 86_400.0))
        and (dwell is not None or r["type"] != "dwell")
        and (rating is None or (type(rating) is float and rating == rating))
    )


def _fast_history(r: dict[str, Any]) -> bool:
    ids = r["article_ids"]
    return _id(r["user_id"]) and _ids(ids) and _opt_ts(r["as_of"])


FAST: dict[str, Callable[[dict[str, Any]], bool]] = {
    "articles": _fast_article,
    "impressions": _fast_impression,
    "interactions": _fast_interaction,
    "histories": _fast_history,
}

# model-level validators raise without a location; name the field they are about
_MODEL_ERRORS = {
    "expires_at": "expires_at",
    "propensities": "propensities",
    "dwell event": "dwell_seconds",
}


def _error_field(err: Mapping[str, Any]) -> str:
    loc = err.get("loc") or ()
    if loc:
        return str(loc[0])
    msg = str(err.get("msg", ""))
    for needle, name in _MODEL_ERRORS.items():
        if needle in msg:
            return name
    return "(row)"


def fast_ok(table: str, row: dict[str, Any]) -> bool:
    """True when `row` (with defaults filled) is certainly valid and already normalised."""
    try:
        return FAST[table](row)
    except (KeyError, TypeError):
        return False


Problems = list[tuple[str, str]]  # (canonical field, message)


def validate(table: str, row: dict[str, Any]) -> tuple[dict[str, Any] | None, Problems]:
    """Check one canonical row of `table`.

    Returns `(row, [])` with the row to write (defaults filled, normalised) or
    `(None, [(field, message), ...])` naming the canonical fields that are wrong.
    """
    full = {**DEFAULTS[table], **row}
    if fast_ok(table, full):
        return full, []
    # None means "not given" for importers; pydantic would reject None for e.g. `abstract: str`
    given = {k: v for k, v in row.items() if v is not None}
    try:
        record = RECORDS[table].model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = err.get("msg", "invalid value")
            loc = err.get("loc") or ()
            if len(loc) > 1:  # e.g. ('article_ids', 3): say which element
                msg = f"{msg} (item {loc[1]})"
            problems.append((_error_field(err), msg))
        return None, problems
    out = record.model_dump(mode="python")
    if "type" in out:  # InteractionType -> its plain string, as the fast path writes it
        out["type"] = str(out["type"].value if isinstance(out["type"], StrEnum) else out["type"])
    return out, []


def as_utc(value: object) -> object:
    """A datetime in UTC (naive ones are taken as UTC); anything else unchanged for validation."""
    if type(value) is datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def as_id(value: object) -> object:
    """Source ids (ints in EB-NeRD / MovieLens) as canonical strings; None stays None."""
    if value is None or type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    return value  # floats, bytes, ...: left for validation to reject by name
