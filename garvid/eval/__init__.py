"""Benchmarks of published GAR numbers, run through garvid's own answering code.
Sits on top of the pipeline (imports output and everything below, never batch)."""
