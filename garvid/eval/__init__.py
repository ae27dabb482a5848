"""Benchmarks of published GAR numbers, run through garvid's own answering code."""
