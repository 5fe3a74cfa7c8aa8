"""Statistics, verb-noun diversity, Markdown/HTML rendering and fine-tuning exports (no Dagster)."""
