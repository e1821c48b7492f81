"""A candidate plug-in as one of the pipeline's generators (`IndexedGenerator`)."""

from __future__ import annotations

import numpy as np

from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace
from newsdesk.plugins.base import CandidatePlugin


class PluginGenerator(IndexedGenerator):
    """Named by the plug-in's config name (the `source` of what it proposes)."""

    def __init__(self, ws: Workspace, name: str, plugin: CandidatePlugin) -> None:
        super().__init__(ws)
        self.name = name
        self.plugin = plugin

    def propose(self, view: UserView, n: int) -> tuple[np.ndarray, np.ndarray]:
        idx, scores = self.plugin.propose(view, n)
        idx = np.asarray(idx, dtype=np.int64)[:n]
        return idx, np.asarray(scores, dtype=np.float64)[: len(idx)]

    def reason(self, view: UserView, i: int) -> str:
        return self.plugin.reason(view, i)
