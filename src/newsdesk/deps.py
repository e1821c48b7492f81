"""Import optional heavy dependencies with an install hint instead of a NameError."""

from __future__ import annotations

import importlib
from types import ModuleType

from newsdesk.errors import MissingDependency


def require(module: str, extra: str) -> ModuleType:
    """Import `module` or raise MissingDependency naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependency(
            f"'{module}' is not installed; install it with: pip install 'newsdesk[{extra}]'"
        ) from exc
