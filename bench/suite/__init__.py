"""duly's benchmark suite (see docs/benchmarks.md)."""
