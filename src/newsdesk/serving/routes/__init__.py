"""One router per resource: recommendations, articles, events, health, admin."""
