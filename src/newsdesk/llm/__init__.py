"""LLM features: providers, prompts, enrichment, explanations, headline tests, re-ranking."""
