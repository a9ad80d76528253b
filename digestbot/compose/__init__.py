"""Compose stage: what a digest shows, its templates, and the message bytes."""
