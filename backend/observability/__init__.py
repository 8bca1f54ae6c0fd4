"""What operators see of a running crewql: Prometheus metrics, OpenTelemetry traces, log context.

Every part is cross-cutting (the API, the services and the runner all report into it) and none
of it changes behaviour: recording a metric or a span never raises into the caller's path.
"""
