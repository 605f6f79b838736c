"""Benchmarks, run as modules from the repository root (``python -m benchmarks.bench_edit``), so that they
import the test suite's stand-in weights and clip makers (``tests.standin``, ``tests.clips``) by name."""
