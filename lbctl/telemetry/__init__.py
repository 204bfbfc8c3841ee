"""Observability: structured logs, Prometheus metrics, optional OpenTelemetry tracing,
and the small HTTP server exposing ``/metrics``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

from lbctl.telemetry.http import HealthServer
from lbctl.telemetry.logs import (
    configure_logging,
    current_key,
    current_reconcile_id,
    reconcile_context,
)
from lbctl.telemetry.metrics import CONTENT_TYPE, Metrics
from lbctl.telemetry.tracing import configure_tracing, provider_span, reconcile_span, tracer

__all__ = [
    "CONTENT_TYPE",
    "HealthServer",
    "Metrics",
    "configure_logging",
    "configure_tracing",
    "current_key",
    "current_reconcile_id",
    "provider_span",
    "reconcile_context",
    "reconcile_span",
    "tracer",
]
