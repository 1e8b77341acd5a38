"""Hostile and broken NeuroML inputs, generated on demand (see `generate`): never committed as files."""
