"""Shipped examples of the model contract (`streamal.model.StreamModel`) over raw payloads,
each with a generated stream to learn from: nothing is downloaded."""
