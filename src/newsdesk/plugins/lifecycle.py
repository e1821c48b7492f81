"""Plug-ins through training and loading: resolve the config's names, fit, save into the
bundle, record them in the manifest, load them back for serving.

Bundle layout: `plugins/<name>/` holds a plug-in's own files (hashed with every other file);
the manifest's `plugins` list records, per plug-in, its config (roles, quota, params), the
entry point of each role, and the distribution and version it came from. Loading resolves the
same names through the entry points installed where the bundle is loaded; a missing plug-in is
a BundleError naming it, another version of it a logged warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from newsdesk.errors import BundleError, ConfigError
from newsdesk.plugins.base import (
    CandidatePlugin,
    FeaturePlugin,
    FitContext,
    RankerPlugin,
    TrainablePlugin,
)
from newsdesk.plugins.config import PluginSpec
from newsdesk.plugins.registry import Found, find

PLUGINS_DIR = "plugins"


@dataclass
class Resolved:
    """A config entry and the class its roles resolve to (one class for all its roles)."""

    spec: PluginSpec
    cls: type
    origins: list[Found]

    def new(self) -> Any:
        try:
            return self.cls(**self.spec.params)
        except TypeError as exc:  # unknown keyword: name the plug-in and the field
            raise ConfigError(f"plugins: {self.spec.name!r}: field 'params': {exc}") from exc


def _one_class(name: str, origins: list[Found], err: type[Exception], where: str) -> type:
    classes = {f.cls for f in origins}
    if len(classes) > 1:
        raise err(f"{where}plug-in {name!r} resolves to different classes per role: "
                  f"{sorted(f.value for f in origins)}")
    return origins[0].cls


def resolve(specs: list[PluginSpec]) -> list[Resolved]:
    """Every config entry's class (ConfigError naming what is not installed)."""
    out = []
    for spec in specs:
        origins = [find(role, spec.name) for role in spec.roles]
        out.append(Resolved(spec, _one_class(spec.name, origins, ConfigError, "plugins: "),
                            origins))
    return out


def fit_trainable(resolved: list[Resolved], ctx: FitContext, *,
                  roles: frozenset[str] = frozenset({"candidates", "features"})
                  ) -> dict[str, TrainablePlugin]:
    """Fresh instances of the candidate / feature plug-ins having one of `roles`, fitted."""
    out = {}
    for r in resolved:
        if set(r.spec.roles) & roles and "rankers" not in r.spec.roles:
            out[r.spec.name] = r.new().fit(ctx)
    return out


def feature_plugins(resolved: list[Resolved], fitted: dict[str, Any]
                    ) -> list[tuple[str, FeaturePlugin]]:
    return [(r.spec.name, fitted[r.spec.name]) for r in resolved
            if "features" in r.spec.roles]


def ranker_spec(resolved: list[Resolved]) -> Resolved | None:
    return next((r for r in resolved if "rankers" in r.spec.roles), None)


def save(staging: Path, resolved: list[Resolved], fitted: dict[str, Any],
         ranker: RankerPlugin | None) -> list[dict[str, Any]]:
    """Write every plug-in into `staging/plugins/<name>/`; the manifest's `plugins` entries."""
    entries = []
    for r in resolved:
        obj = ranker if "rankers" in r.spec.roles else fitted[r.spec.name]
        if obj is None:
            raise ValueError(f"plug-in {r.spec.name!r}: nothing fitted to save")
        directory = staging / PLUGINS_DIR / r.spec.name
        directory.mkdir(parents=True)
        obj.save(directory)
        dist = r.origins[0]
        entries.append({
            "name": r.spec.name, "roles": list(r.spec.roles), "quota": r.spec.quota,
            "params": r.spec.params, "dir": f"{PLUGINS_DIR}/{r.spec.name}",
            "entry_points": {f.role: f.value for f in r.origins},
            "distribution": dist.distribution, "version": dist.version})
    return entries


@dataclass
class LoadedPlugins:
    """What a bundle's plug-ins add to the serving pipeline."""

    features: list[tuple[str, FeaturePlugin]] = field(default_factory=list)
    candidates: list[tuple[str, CandidatePlugin, int]] = field(default_factory=list)
    ranker: RankerPlugin | None = None


def load(bundle: Path, manifest: dict[str, Any], ws: Any,
         feature_names: list[str]) -> LoadedPlugins:
    """The bundle's plug-ins, bound to the serving workspace (BundleError naming a missing or
    unreadable one)."""
    from newsdesk.monitoring.logging import get_logger

    out = LoadedPlugins()
    for entry in manifest.get("plugins", []):
        name = entry["name"]
        origins = [find(role, name, for_bundle=str(bundle)) for role in entry["roles"]]
        cls = _one_class(name, origins, BundleError, f"{bundle}: ")
        if origins[0].version != entry.get("version"):
            get_logger("newsdesk.plugins").warning(
                "plugin_version_differs", plugin=name, bundle=str(bundle),
                trained_with=f"{entry.get('distribution')} {entry.get('version')}",
                installed=f"{origins[0].distribution} {origins[0].version}")
        directory = bundle / entry["dir"]
        try:
            obj = cls(**entry.get("params", {}))
            if "rankers" in entry["roles"]:
                out.ranker = obj.load(directory, feature_names)
            else:
                obj = obj.load(directory, ws)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BundleError(f"{bundle}: plug-in {name!r} ({entry.get('distribution')} "
                              f"{entry.get('version')}) cannot load its files ({exc})") from exc
        if "features" in entry["roles"]:
            out.features.append((name, obj))
        if "candidates" in entry["roles"]:
            out.candidates.append((name, obj, int(entry.get("quota", 60))))
    return out
