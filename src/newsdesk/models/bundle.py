"""Model bundles: versioned directories holding everything a `NewsRecommender` needs.

Layout (no pickle anywhere)::

    BUNDLES_DIR/v20260105-123456-ab12cd/
      manifest.json          format, version, created_at, data snapshot, config, code version,
                             feature schema, embedder, metrics, sha256 of every file
      ranker.txt             LightGBM model (text)
      catalog/               articles.parquet, embeddings.npy, categories.json,
                             entities.npy + vocabularies.json (language and entity codes)
      coclick/               CSR arrays (.npy)
      collaborative/         user_factors.npy, item_factors.npy, users.json

The catalog of the training dataset is stored in the bundle (so serving starts with every
known article and its embedding); the serving app adds new ones with `upsert_articles`.

Loading is memory-map friendly, so N worker processes on one host share the page cache instead
of holding N copies: the read-only arrays (co-click CSR, CF factors) are `np.load(mmap_mode="r")`
views of the bundle's files (nothing writes into them: a write would raise), the LightGBM text
is parsed once per process, and the compiled trees are cached on disk once per host
(`models.compiled_ranker`). The catalog's embeddings are copied into its growable arrays
(articles are upserted while serving).
`load_recommender` verifies the format, every file's hash, the feature schema, the embedder and
the store's half-life, and raises BundleError naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsdesk.content.embedder import Embedder
from newsdesk.errors import BundleError
from newsdesk.features.online_store import OnlineStore
from newsdesk.features.ranking_features import FEATURE_NAMES, FeatureBuilder
from newsdesk.models import rerank
from newsdesk.models.candidates import (
    CategoryGenerator,
    CoClickGenerator,
    CollaborativeGenerator,
    ContentGenerator,
    IndexedGenerator,
    RecencyGenerator,
    TrendingGenerator,
    Workspace,
)
from newsdesk.models.catalog import ArticleCatalog
from newsdesk.models.compiled_ranker import CACHE_DIR_NAME, load_ranker
from newsdesk.models.pipeline import NewsRecommender

BUNDLE_FORMAT = "newsdesk-bundle/1"
MANIFEST = "manifest.json"
RANKER_FILE = "ranker.txt"
GENERATOR_ORDER = ("trending", "recency", "content", "coclick", "collaborative", "category")


@dataclass(frozen=True)
class BundleInfo:
    version: str
    created_at: str
    path: Path
    metrics: dict[str, Any]


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under root except the manifest, keyed by relative posix path."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        out[path.relative_to(root).as_posix()] = h.hexdigest()
    return out


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle}: not a model bundle (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}: manifest is not valid JSON ({exc})") from exc
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: format {manifest.get('format')!r} is not {BUNDLE_FORMAT!r}")
    return manifest


def verify_files(bundle: Path, manifest: dict[str, Any]) -> None:
    """Raise BundleError naming the first missing or altered file."""
    expected: dict[str, str] = manifest.get("files", {})
    for rel in expected:
        if not (bundle / rel).is_file():
            raise BundleError(f"{bundle}: file {rel} is missing")
    actual = file_hashes(bundle)
    for rel, digest in expected.items():
        if actual.get(rel) != digest:
            raise BundleError(f"{bundle}: file {rel} is corrupt (sha256 mismatch)")


def list_bundles(bundles_dir: Path) -> list[BundleInfo]:
    """Valid-looking bundles (with a readable manifest) in bundles_dir, oldest first."""
    root = Path(bundles_dir)
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        if not child.is_dir() or child.name.startswith("."):
            continue
        try:
            m = read_manifest(child)
        except BundleError:
            continue
        out.append(BundleInfo(m["version"], m.get("created_at", ""), child, m.get("metrics", {})))
    return sorted(out, key=lambda b: (b.created_at, b.version))


def resolve_bundle(bundles_dir: Path, version: str | None = None) -> Path:
    """Path of bundle `version`; when None, the one the ACTIVE pointer names, else the newest."""
    bundles = list_bundles(bundles_dir)
    if not bundles:
        raise BundleError(f"{bundles_dir}: no model bundles (train one with 'newsdesk train')")
    if version is None:  # the registry's pointer (models/active_bundle.py), else the newest
        from newsdesk.models.active_bundle import active_version

        version = active_version(bundles_dir)
        if version is None:
            return bundles[-1].path
    for b in bundles:
        if b.version == version:
            return b.path
    raise BundleError(f"{bundles_dir}: no bundle with version {version!r}; have "
                      f"{[b.version for b in bundles]}")


def build_generators(ws: Workspace, cfg: dict[str, Any]) -> dict[str, IndexedGenerator]:
    """Unfitted generators from the bundle's config (`config['generators']`)."""
    g = cfg.get("generators", {})
    seed = int(cfg.get("seed", 0))
    return {
        "trending": TrendingGenerator(ws),
        "recency": RecencyGenerator(ws),
        "content": ContentGenerator(ws),
        "coclick": CoClickGenerator(ws, **g.get("coclick", {})),
        "collaborative": CollaborativeGenerator(ws, seed=seed, **g.get("collaborative", {})),
        "category": CategoryGenerator(ws, seed=seed, **g.get("category", {})),
    }


class _LazyEmbedder(Embedder):
    """Builds the bundle's embedder on first use (serving may never upsert)."""

    def __init__(self, short_name: str, name: str, dim: int) -> None:
        self.short_name, self.name, self.dim = short_name, name, dim
        self._inner: Embedder | None = None

    def embed(self, texts: Any) -> Any:
        if self._inner is None:
            from newsdesk.content import make_embedder

            inner = make_embedder(self.short_name)
            if inner.name != self.name or inner.dim != self.dim:
                raise BundleError(f"embedder {self.short_name!r} builds {inner.name}/{inner.dim}"
                                  f", the bundle needs {self.name}/{self.dim}")
            self._inner = inner
        return self._inner.embed(texts)


def _base_schema(schema: object, own: list[str]) -> list[str] | None:
    """The bundle schema's built-in columns (its leading names this code knows; plug-in
    columns follow them), when they are this code's FEATURE_NAMES or an older subset of them
    in the same order (features added since the bundle was trained); else None."""
    if not isinstance(schema, list):
        return None
    known = set(own)
    n = 0
    while n < len(schema) and schema[n] in known:
        n += 1
    base = schema[:n]
    pos = [own.index(c) for c in base]
    if not base or pos != sorted(set(pos)):
        return None
    return base


def exposures_needed(manifest: dict[str, Any]) -> int:
    """Exposures per reader the bundle's ranker reads from the store (0: none): its
    recent_exposures when trained with story_exposures."""
    f = manifest["config"]["features"]
    schema = manifest.get("feature_schema") or []
    if "story_exposures" not in schema or "story_exposures" in f.get("disabled", []):
        return 0
    return int(f.get("recent_exposures", 0))


def offline_store(bundle_path: Path) -> OnlineStore:
    """A fresh in-process store the bundle can be served from offline (replays, the gate,
    the drift reference): its half-life, and the exposure lists its ranker reads."""
    from newsdesk.features.memory_store import MemoryOnlineStore

    manifest = read_manifest(Path(bundle_path))
    return MemoryOnlineStore(
        half_life_hours=float(manifest["config"]["features"]["half_life_hours"]),
        max_user_exposures=exposures_needed(manifest))


def load_recommender(bundle_path: Path, store: OnlineStore, *,
                     embedder: Embedder | None = None, ranker: str = "auto",
                     compiled_cache_dir: Path | None = None) -> NewsRecommender:
    """Load a bundle into a ready `NewsRecommender` reading live state from `store`.

    `embedder` embeds articles upserted later; it must be the one the bundle was trained with
    (name and dim checked). Without it, the bundle's embedder is built on the first upsert.
    `ranker`: "auto" (compiled trees, plain LightGBM when they cannot be built), "compiled" or
    "lightgbm" (see `models.compiled_ranker`); compiled code is cached in `compiled_cache_dir`
    (default: `.compiled-trees/` beside the bundle).
    """
    bundle = Path(bundle_path)
    manifest = read_manifest(bundle)
    verify_files(bundle, manifest)
    schema = manifest.get("feature_schema")
    own = list(FEATURE_NAMES)
    base = _base_schema(schema, own)
    if base is None:
        raise BundleError(f"{bundle}: feature schema {schema} does not match this code's "
                          f"{own} (nor an older subset of it, in order)")
    assert isinstance(schema, list)
    if len(schema) > len(base) and not manifest.get("plugins"):
        raise BundleError(f"{bundle}: feature schema has columns {schema[len(base):]} beyond "
                          "this code's and no plug-in to compute them")
    emb = manifest["embedder"]
    if embedder is not None and (embedder.name != emb["name"] or embedder.dim != emb["dim"]):
        raise BundleError(f"{bundle}: embedder mismatch: bundle was built with "
                          f"{emb['name']} (dim {emb['dim']}), got {embedder.name} "
                          f"(dim {embedder.dim})")
    cfg = manifest["config"]
    fparams = manifest["feature_params"]
    hl = float(cfg["features"]["half_life_hours"])
    if abs(float(store.half_life_hours) - hl) > 1e-9:
        raise BundleError(f"{bundle}: online store half_life_hours={store.half_life_hours} but "
                          f"the bundle's features were trained with half_life_hours={hl}")
    try:
        catalog = ArticleCatalog.load(bundle / "catalog")
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{bundle}: catalog unreadable ({exc})") from exc
    if catalog.dim != emb["dim"]:
        raise BundleError(f"{bundle}: catalog embeddings have dim {catalog.dim}, manifest "
                          f"says {emb['dim']}")
    if base != own:  # an older bundle: its columns only (features added since are skipped)
        fparams = {**fparams, "columns": base}
    builder = FeatureBuilder(**fparams)
    if builder.wants_exposures and store.max_user_exposures < builder.recent_exposures:
        raise BundleError(
            f"{bundle}: the ranker uses story_exposures over each reader's "
            f"{builder.recent_exposures} newest exposures, but the online store keeps "
            f"{store.max_user_exposures}; open it with max_user_exposures="
            f"{builder.recent_exposures} (serving: setting online_store_exposures)")
    ws = Workspace(catalog, store, builder, max_age_hours=cfg.get("max_age_hours"))
    gens = build_generators(ws, cfg)
    plugins = None
    if manifest.get("plugins"):  # installed plug-ins (entry points) named by the manifest
        from newsdesk.plugins import lifecycle
        from newsdesk.plugins.features import PluginFeatureBuilder

        plugins = lifecycle.load(bundle, manifest, ws, list(schema))
        ws.builder = PluginFeatureBuilder(fparams, plugins.features)
        if ws.builder.names != schema:
            raise BundleError(f"{bundle}: feature schema {schema} does not match the "
                              f"plug-ins' {ws.builder.names}")
    try:
        gens["coclick"].load(bundle / "coclick")  # type: ignore[attr-defined]
        gens["collaborative"].load(bundle / "collaborative")  # type: ignore[attr-defined]
    except (OSError, ValueError, KeyError) as exc:
        raise BundleError(f"{bundle}: generator files unreadable ({exc})") from exc
    cache = compiled_cache_dir if compiled_cache_dir is not None else \
        bundle.parent / CACHE_DIR_NAME
    model: Any = (plugins.ranker if plugins is not None and plugins.ranker is not None else
                  load_ranker(bundle / RANKER_FILE, schema, mode=ranker, cache_dir=cache))
    enabled = [gens[name] for name in GENERATOR_ORDER if cfg["candidates"].get(name, 0) > 0]
    quotas = dict(cfg["candidates"])
    if plugins is not None:
        from newsdesk.plugins.generators import PluginGenerator

        for name, plugin, quota in plugins.candidates:
            if quota > 0:
                enabled.append(PluginGenerator(ws, name, plugin))
                quotas[name] = quota
    serving = rerank.ServingConfig.model_validate(cfg["serving"])
    emb_impl = embedder or _LazyEmbedder(emb["short_name"], emb["name"], int(emb["dim"]))
    rec = NewsRecommender(ws, enabled, quotas, model, serving,
                          version=manifest["version"], embedder=emb_impl)
    rec.coclick = gens["coclick"]  # type: ignore[assignment]
    rec.cf = gens["collaborative"]  # type: ignore[assignment]
    rec.content = gens["content"]  # type: ignore[assignment]
    return rec
