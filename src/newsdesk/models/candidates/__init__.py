"""Candidate generators: each proposes live articles for a user (see `base.IndexedGenerator`).

    trending       decayed clicks x smoothed CTR from the online store
    recency        newest live articles (cold-start articles)
    content        nearest live articles to the user's embedding profile (cold-start articles)
    coclick        co-visitation within sessions (item-to-item)
    collaborative  implicit ALS factors
    category       favourite categories; exploration for users without history
"""

from newsdesk.models.candidates.base import IndexedGenerator, UserView, Workspace
from newsdesk.models.candidates.category import CategoryGenerator
from newsdesk.models.candidates.coclick import CoClickGenerator
from newsdesk.models.candidates.collaborative import CollaborativeGenerator
from newsdesk.models.candidates.content import ContentGenerator
from newsdesk.models.candidates.recency import RecencyGenerator
from newsdesk.models.candidates.trending import TrendingGenerator

__all__ = [
    "CategoryGenerator",
    "CoClickGenerator",
    "CollaborativeGenerator",
    "ContentGenerator",
    "IndexedGenerator",
    "RecencyGenerator",
    "TrendingGenerator",
    "UserView",
    "Workspace",
]
