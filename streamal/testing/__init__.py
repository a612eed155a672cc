"""Harnesses for tests and benchmarks: a real Kafka broker, a real Label Studio."""
