"""Batch event pipeline: fake event generation and exactly-once aggregation into PostgreSQL."""
