"""Benchmarks that print numbers (never assert timings): `python -m bench.ingest|inbox|live`."""
