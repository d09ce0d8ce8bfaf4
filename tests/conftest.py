"""Shared pytest configuration. Markers (`slow`) are registered in pyproject.toml."""
