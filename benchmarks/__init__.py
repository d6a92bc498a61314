"""kitbridge benchmarks: time each operation against the reference on the same bytes, in one run."""
