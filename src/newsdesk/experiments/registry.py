"""The experiment store: every version of every config, and an audit log of every change.

`ExperimentRegistry` is the plug point; `SqliteExperimentRegistry` persists to one SQLite file
(the default, also used by the admin API later) and `InMemoryExperimentRegistry` is the same
thing on an in-memory database for tests. `put` stores a new version only when the config's
content changed, and writes one audit row naming the actor and the changed fields.
"""

from __future__ import annotations

import json
import sqlite3
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from newsdesk.errors import ConfigError
from newsdesk.experiments.config import ExperimentConfig, ExperimentSuite, Holdout, Status


@dataclass(frozen=True)
class AuditEntry:
    at: str
    actor: str
    action: str  # create | update | status
    experiment_id: str
    version: int
    changed_fields: list[str]


@dataclass(frozen=True)
class StoredExperiment:
    config: ExperimentConfig
    version: int
    updated_at: str


class ExperimentRegistry(ABC):
    """Versioned experiment configs with an audit log."""

    @abstractmethod
    def put(self, config: ExperimentConfig, actor: str) -> StoredExperiment:
        """Store `config` as a new version if it differs from the latest; audit the change."""

    @abstractmethod
    def get(self, experiment_id: str, version: int | None = None) -> StoredExperiment: ...

    @abstractmethod
    def latest(self) -> list[StoredExperiment]:
        """Latest version of every experiment, sorted by id."""

    @abstractmethod
    def audit(self, experiment_id: str | None = None) -> list[AuditEntry]: ...

    def set_status(self, experiment_id: str, status: Status, actor: str) -> StoredExperiment:
        current = self.get(experiment_id).config
        return self.put(current.model_copy(update={"status": status}), actor)

    def suite(self, holdout: Holdout | None = None) -> ExperimentSuite:
        """The latest configs as a validated suite (ready for `Assigner.from_config`)."""
        return ExperimentSuite(experiments=[s.config for s in self.latest()],
                               holdout=holdout or Holdout())


def _changed_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    if old is None:
        return sorted(new)
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


class SqliteExperimentRegistry(ExperimentRegistry):
    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS versions (
        experiment_id TEXT NOT NULL, version INTEGER NOT NULL, config TEXT NOT NULL,
        fingerprint TEXT NOT NULL, created_at TEXT NOT NULL,
        PRIMARY KEY (experiment_id, version));
    CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, experiment_id TEXT NOT NULL, version INTEGER NOT NULL,
        changed_fields TEXT NOT NULL);
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.executescript(self._SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _latest(self, experiment_id: str) -> tuple[int, str, str, str] | None:
        return self._db.execute(
            "SELECT version, config, fingerprint, created_at FROM versions WHERE experiment_id=?"
            " ORDER BY version DESC LIMIT 1", (experiment_id,)).fetchone()

    def put(self, config: ExperimentConfig, actor: str) -> StoredExperiment:
        if not actor:
            raise ConfigError("field 'actor': every change needs an actor for the audit log")
        now = datetime.now(UTC).isoformat()
        with self._db:  # one transaction: version row and audit row together
            latest = self._latest(config.id)
            if latest is not None and latest[2] == config.fingerprint():
                return StoredExperiment(config, latest[0], latest[3])
            version = 1 if latest is None else latest[0] + 1
            new = config.model_dump(mode="json")
            old = None if latest is None else json.loads(latest[1])
            changed = _changed_fields(old, new)
            action = "create" if old is None else ("status" if changed == ["status"] else "update")
            self._db.execute("INSERT INTO versions VALUES (?,?,?,?,?)",
                             (config.id, version, json.dumps(new), config.fingerprint(), now))
            self._db.execute(
                "INSERT INTO audit (at, actor, action, experiment_id, version, changed_fields)"
                " VALUES (?,?,?,?,?,?)",
                (now, actor, action, config.id, version, json.dumps(changed)))
        return StoredExperiment(config, version, now)

    def get(self, experiment_id: str, version: int | None = None) -> StoredExperiment:
        if version is None:
            row = self._latest(experiment_id)
        else:
            row = self._db.execute(
                "SELECT version, config, fingerprint, created_at FROM versions"
                " WHERE experiment_id=? AND version=?", (experiment_id, version)).fetchone()
        if row is None:
            raise ConfigError(f"no experiment '{experiment_id}'"
                              + ("" if version is None else f" version {version}"))
        return StoredExperiment(ExperimentConfig.model_validate_json(row[1]), row[0], row[3])

    def latest(self) -> list[StoredExperiment]:
        ids = [r[0] for r in self._db.execute(
            "SELECT DISTINCT experiment_id FROM versions ORDER BY experiment_id")]
        return [self.get(i) for i in ids]

    def audit(self, experiment_id: str | None = None) -> list[AuditEntry]:
        sql = "SELECT at, actor, action, experiment_id, version, changed_fields FROM audit"
        args: tuple[str, ...] = ()
        if experiment_id is not None:
            sql += " WHERE experiment_id=?"
            args = (experiment_id,)
        rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]


class InMemoryExperimentRegistry(SqliteExperimentRegistry):
    """The SQLite registry on an in-memory database (lost when the object goes)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
