"""Data: the canonical schema, dataset directories, importers and the event log."""

from newsdesk.data.dataset import Dataset, DatasetWriter
from newsdesk.data.schema import Article, Impression, Interaction, InteractionType

__all__ = ["Article", "Dataset", "DatasetWriter", "Impression", "Interaction", "InteractionType"]
