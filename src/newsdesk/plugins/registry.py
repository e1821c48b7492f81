"""Finding plug-in classes: Python entry points, one group per role.

    [project.entry-points."newsdesk.candidates"]
    my_generator = "my_package.module:MyGenerator"

Groups: `newsdesk.candidates`, `newsdesk.features`, `newsdesk.rankers`. The entry point's name
is the name the train config uses. newsdesk's own built-in plug-ins (the NRMS user model) are
declared the same way in newsdesk's pyproject; `BUILTIN` repeats them so that a source tree
run without reinstalling (PYTHONPATH=src over an older install, whose metadata predates
them) still finds them. An installed entry point of the same name wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from newsdesk.errors import BundleError, ConfigError
from newsdesk.plugins.base import ROLE_CLASSES

GROUP_PREFIX = "newsdesk."
BUILTIN: dict[str, dict[str, str]] = {  # role -> name -> "module:attr" (see pyproject.toml)
    "candidates": {"nrms": "newsdesk.plugins.nrms.plugin:NRMSPlugin"},
    "features": {"nrms": "newsdesk.plugins.nrms.plugin:NRMSPlugin",
                 "llm_enrichment": "newsdesk.llm.enrichment_plugin:EnrichmentFeatures"},
    "rankers": {},
}


@dataclass(frozen=True)
class Found:
    """A plug-in class and where it comes from (recorded in the bundle's manifest)."""

    role: str
    name: str
    value: str  # "module:attr"
    distribution: str
    version: str
    cls: type


def group(role: str) -> str:
    return GROUP_PREFIX + role


def _entry_points(role: str) -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=group(role))}


def available(role: str) -> list[str]:
    """Names of every plug-in of a role that can be loaded here, sorted."""
    return sorted(set(_entry_points(role)) | set(BUILTIN.get(role, {})))


def find(role: str, name: str, *, for_bundle: str | None = None) -> Found:
    """The class registered as `name` for `role`. Raises ConfigError (training) or, with
    `for_bundle` (the bundle path, when loading), BundleError naming the missing plug-in."""
    if role not in ROLE_CLASSES:
        raise ConfigError(f"plugins: role must be one of {sorted(ROLE_CLASSES)}, got {role!r}")
    ep = _entry_points(role).get(name)
    if ep is not None:
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "unknown"
        version = dist.version if dist is not None else "unknown"
        value = ep.value
        try:
            cls = ep.load()
        except Exception as exc:  # the plug-in's own import error: say whose it is
            raise _error(for_bundle, f"plug-in {name!r} ({group(role)}, {dist_name} "
                         f"{version}) failed to import: {exc!r}") from exc
    elif name in BUILTIN.get(role, {}):
        import importlib

        import newsdesk

        value = BUILTIN[role][name]
        module, _, attr = value.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        dist_name, version = "newsdesk", newsdesk.__version__
    else:
        have = available(role)
        if for_bundle is not None:
            raise BundleError(
                f"{for_bundle}: the bundle needs plug-in {name!r} (entry point group "
                f"{group(role)!r}), which is not installed here; install the package that "
                f"provides it (installed {role} plug-ins: {have})")
        raise ConfigError(f"plugins: no {role} plug-in named {name!r} (entry point group "
                          f"{group(role)!r}); installed: {have}")
    if not (isinstance(cls, type) and issubclass(cls, ROLE_CLASSES[role])):
        raise _error(for_bundle, f"plug-in {name!r} ({value}) is not a "
                     f"{ROLE_CLASSES[role].__name__} subclass")
    return Found(role, name, value, dist_name, version, cls)


def _error(for_bundle: str | None, msg: str) -> Exception:
    if for_bundle is not None:
        return BundleError(f"{for_bundle}: {msg}")
    return ConfigError(f"plugins: {msg}")
