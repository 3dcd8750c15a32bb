"""Harness for tests and benchmarks that need real network namespaces and real BGP daemons."""
