"""The test suite, as a package: its helpers (``tests.clips``, ``tests.standin``, ...) are imported by module
name, by the tests and by the benchmark (``python -m benchmarks.bench_edit`` from the repository root),
without anyone editing ``sys.path``."""
