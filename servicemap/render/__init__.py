"""Renderers: each takes a ServiceGraph and returns text or bytes."""
