"""Consumers of the output topics: alerts become owned tasks."""
