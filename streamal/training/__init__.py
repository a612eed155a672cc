"""The periodic trainer: label store, training rounds, thresholds, drift."""
