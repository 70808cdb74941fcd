"""Prefect flows over the DVC stages (filled in by the orchestration issue); no torch, no library imports."""
