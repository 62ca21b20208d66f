"""The telemetry tests' fixtures: the SDK's spans and metrics on in-memory exporters."""

from synapse_testkit.otel import metrics, spans

__all__ = ["metrics", "spans"]
