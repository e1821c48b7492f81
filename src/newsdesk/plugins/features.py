"""newsdesk's `FeatureBuilder` with feature plug-ins' columns appended.

Training (`build_features`) and serving (`NewsRecommender._build`) both call
`builder.build(...)`, so putting this builder in their place is all the train/serve parity a
feature plug-in needs: the same call computes its columns on both paths.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from newsdesk.errors import ConfigError
from newsdesk.features.ranking_features import (
    FEATURE_NAMES,
    CatalogArrays,
    FeatureBuilder,
    PairScorer,
    RankingInputs,
)
from newsdesk.plugins.base import FeaturePlugin

_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # what LightGBM keeps as a feature name


def feature_schema(plugins: Sequence[tuple[str, FeaturePlugin]]) -> list[str]:
    """FEATURE_NAMES then each plug-in's columns; ConfigError on a bad or repeated name."""
    names = list(FEATURE_NAMES)
    for plugin_name, plugin in plugins:
        for col in plugin.feature_names:
            if not _COLUMN.match(col):
                raise ConfigError(f"plugins: {plugin_name!r}: feature name {col!r} must be "
                                  "letters, digits and '_', starting with a letter")
            if col in names:
                raise ConfigError(f"plugins: {plugin_name!r}: feature name {col!r} is taken")
            names.append(col)
    return names


class PluginFeatureBuilder(FeatureBuilder):
    """`FeatureBuilder.build` + the plug-ins' columns, in config order. `params()` is the base
    builder's (the manifest's `feature_params`); `names` the full schema."""

    def __init__(self, base_params: dict[str, Any],
                 plugins: Sequence[tuple[str, FeaturePlugin]]) -> None:
        super().__init__(**base_params)
        self.plugins = list(plugins)
        self.names = feature_schema(self.plugins)

    def build(self, inputs: RankingInputs, catalog: CatalogArrays, *,
              coclick: PairScorer | None = None, cf: PairScorer | None = None,
              profiles: tuple[np.ndarray, np.ndarray] | None = None,
              article_embeddings: np.ndarray | None = None) -> np.ndarray:
        base = super().build(inputs, catalog, coclick=coclick, cf=cf, profiles=profiles,
                             article_embeddings=article_embeddings)
        if not self.plugins:
            return base
        n = len(base)
        parts = [base]
        for name, plugin in self.plugins:
            cols = np.asarray(plugin.compute(inputs, catalog, article_embeddings),
                              dtype=np.float32)
            want = (n, len(plugin.feature_names))
            if cols.shape != want:  # a contract breach: name the plug-in, not numpy
                raise ValueError(f"feature plug-in {name!r} returned shape {cols.shape}, "
                                 f"expected {want}")
            parts.append(cols)
        return np.hstack(parts)
