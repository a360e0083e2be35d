"""Scale benchmarks: a deterministic synthetic estate generator (``generate``) and the figures (``run``)."""
