"""The web dashboard served at /dashboard (see `routes` for the pages and their data)."""

from newsdesk.serving.dashboard.routes import router

__all__ = ["router"]
