"""streamal: stream-based active learning beside a Kafka stream."""

__version__ = "0.1.0"
