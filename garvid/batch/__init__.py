"""Batch runs: many videos, models loaded once, resumable, locally or on Ray.
Sits on top of the pipeline (imports output and everything below, never eval)."""
