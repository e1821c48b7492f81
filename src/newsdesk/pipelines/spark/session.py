"""The SparkSession factory of the Spark engine: local[N] by default, any master URL works.

Settings come from keyword arguments (the CLI / the training config), then environment
variables with the prefix `NEWSDESK_SPARK_` (`NEWSDESK_SPARK_MASTER=spark://host:7077`,
`NEWSDESK_SPARK_DRIVER_MEMORY=8g`), then the defaults below. The driver binds to 127.0.0.1
(`spark.driver.host`, `spark.driver.bindAddress`): a local session opens no port to the
network, and on a cluster the operator sets `driver_host` to an address the executors reach.
The web UI is off and the logs are quiet (WARN from the JVM, nothing on the console).

Python workers run the interpreter of the driver (`PYSPARK_PYTHON` = sys.executable), so the
feature code they import is the driver's newsdesk, not whichever `python3` is on PATH.
"""

from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsdesk.deps import require
from newsdesk.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_MEMORY = re.compile(r"^\d+[kmgt]$", re.IGNORECASE)
_MASTER = re.compile(r"^(local(\[(\d+|\*)(,\d+)?\])?|(spark|yarn|k8s|mesos)(://.*)?)$")


def _total_memory_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):  # not POSIX: assume a small machine
        return 4.0


def default_driver_memory() -> str:
    """A quarter of the machine's memory, between 1 and 8 GiB: the driver JVM shares the
    machine with its Python workers and (here) other jobs."""
    return f"{int(min(8, max(1, _total_memory_gib() // 4)))}g"


class SparkSettings(BaseSettings):
    """How to reach Spark; refuses values Spark would only reject at its first job."""

    model_config = SettingsConfigDict(env_prefix="NEWSDESK_SPARK_", extra="forbid", frozen=True)

    master: str = Field(default_factory=lambda: f"local[{os.cpu_count() or 1}]")
    driver_memory: str = Field(default_factory=default_driver_memory)
    driver_host: str = "127.0.0.1"
    shuffle_partitions: int = Field(default=0, ge=0, le=100_000)  # 0 = 4 x the local cores
    local_dir: str | None = None  # shuffle spill directory (default: Spark's, under /tmp)
    app_name: str = "newsdesk"
    log_level: str = "WARN"
    conf: dict[str, str] = Field(default_factory=dict)  # any other spark.* setting

    @field_validator("master")
    @classmethod
    def _master(cls, v: str) -> str:
        if not _MASTER.match(v):
            raise ValueError(f"expected local, local[N], local[*] or a cluster URL "
                             f"(spark://host:port, yarn, k8s://...), got {v!r}")
        return v

    @field_validator("driver_memory")
    @classmethod
    def _memory(cls, v: str) -> str:
        if not _MEMORY.match(v):
            raise ValueError(f"expected a JVM size such as 2g or 512m, got {v!r}")
        return v.lower()

    @field_validator("conf")
    @classmethod
    def _conf(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not k.startswith("spark.")]
        if bad:
            raise ValueError(f"keys must start with 'spark.', got {bad}")
        return v

    @classmethod
    def build(cls, **values: Any) -> SparkSettings:
        """SparkSettings from keyword arguments (None = unset) and the environment; a bad
        value raises ConfigError naming the field."""
        try:
            return cls(**{k: v for k, v in values.items() if v is not None})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "spark"
            raise ConfigError(f"spark settings: field '{where}': {err['msg']}") from exc

    def spark_conf(self) -> dict[str, str]:
        cores = os.cpu_count() or 1
        conf = {
            "spark.app.name": self.app_name,
            "spark.master": self.master,
            "spark.driver.memory": self.driver_memory,
            "spark.driver.host": self.driver_host,
            "spark.driver.bindAddress": self.driver_host,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions or 4 * cores),
            "spark.sql.session.timeZone": "UTC",
            # Arrow batches between the JVM and the Python feature workers
            "spark.sql.execution.arrow.pyspark.enabled": "true",
            "spark.pyspark.python": sys.executable,
            "spark.pyspark.driver.python": sys.executable,
        }
        if self.local_dir:
            conf["spark.local.dir"] = self.local_dir
        conf.update(self.conf)
        return conf


def require_pyspark() -> Any:
    """The pyspark module, or MissingDependency with the install hint."""
    return require("pyspark", "spark")


def spark_session(settings: SparkSettings | None = None) -> SparkSession:
    """A SparkSession with `settings` (default: SparkSettings.build()). getOrCreate semantics:
    a session already running in this process is returned as it is (the JVM's driver memory
    cannot change once it started)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings.build()
    # before the JVM starts: workers run this interpreter, and Spark must not resolve the host
    # name to a public interface
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", settings.driver_host)
    builder = SparkSession.builder
    for key, value in settings.spark_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(settings.log_level)
    return session
