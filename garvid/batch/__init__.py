"""Batch runs: many videos, models loaded once, resumable, locally or on Ray."""
