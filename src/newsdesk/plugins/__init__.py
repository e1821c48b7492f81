"""Plug-ins from other installed packages: candidate generators, ranking features and rankers
found by Python entry points, named in the train config, saved in the bundle, served unchanged
(see `plugins.base` for the contracts and docs/plugins.md for the guide).

    base        CandidatePlugin, FeaturePlugin, RankerPlugin, FitContext (the contracts)
    registry    entry point groups newsdesk.candidates / .features / .rankers
    config      the train config's `plugins:` entries
    features    FeatureBuilder + the plug-ins' columns (one build call in training and serving)
    generators  a candidate plug-in as a pipeline generator
    lifecycle   resolve, fit, save into the bundle, load back
    nrms        the built-in NRMS-style neural user model (candidates + feature)
"""

from newsdesk.plugins.base import (
    CandidatePlugin,
    FeaturePlugin,
    FitContext,
    RankerPlugin,
    TrainablePlugin,
)
from newsdesk.plugins.config import PluginSpec

__all__ = ["CandidatePlugin", "FeaturePlugin", "FitContext", "PluginSpec", "RankerPlugin",
           "TrainablePlugin"]
