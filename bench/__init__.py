"""Benchmarks of the inference service (not part of the runtime package or the slug)."""
