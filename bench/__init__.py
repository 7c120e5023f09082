"""Benchmarks against the running local stack: each figure a ratio against a baseline of the same run."""
