"""Batch event pipeline: fake event generation and exactly-once aggregation into PostgreSQL."""

# The package's one version (pyproject.toml reads it); generate-events prints it first, so a
# pipeline pod's log says which build it ran.
__version__ = "0.1.0"
