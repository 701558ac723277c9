"""Benchmarks that print tables and write reports (not tests)."""
