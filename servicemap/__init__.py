"""servicemap: OpenTelemetry traces in, service maps out."""

__version__ = "0.1.0"
