"""Thin DVC stage entry points: `python -m pipeline.stages.<name>`.  Each loads params once, calls the
library, writes its outputs atomically and logs params, metrics and outputs to the tracker."""
