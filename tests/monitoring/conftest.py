"""The serving tests' fixtures (real app in-process, small catalog, baseline model)."""

from tests.serving.conftest import (  # noqa: F401 - pytest finds fixtures by name
    anyio_backend,
    app,
    articles,
    dataset_dir,
)
