"""The rule catalogue: pure functions of (person state, now, calendar) returning findings."""

from streams.rules.base import Finding, Rule, RuleSpec
from streams.rules.catalogue import BY_ID, CATALOGUE, evaluate, resolution_reason

__all__ = ["BY_ID", "CATALOGUE", "Finding", "Rule", "RuleSpec", "evaluate", "resolution_reason"]
