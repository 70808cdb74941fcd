"""Measurements on the base policy: per-prompt pass rates (difficulty) and the initial entropy H0."""
