"""Use cases for assets (to be built)."""
