"""Simulation: a simulated annotator and generated streams, for tests, `simulate` and `demo`."""
