"""Optional OpenTelemetry tracing: off (``none``) by default.

``configure_tracing("console" | "otlp")`` builds a ``TracerProvider`` this module's
:func:`tracer` uses (the global provider is left alone). The controller wraps each
reconcile in ``async with reconcile_span(key):`` and each provider call in
``async with provider_span("ensure"):``, which becomes a child of the reconcile span.
With tracing off, both are no-op spans.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)

__all__ = [
    "EXPORTERS",
    "SETTING",
    "configure_tracing",
    "provider_span",
    "reconcile_span",
    "reset_tracing",
    "tracer",
]

EXPORTERS = ("none", "console", "otlp")
SETTING = "tracing_exporter (LBCTL_TRACING_EXPORTER)"
_OTLP_MODULES = (
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)


class _State:
    provider: TracerProvider | None = None


_state = _State()


def configure_tracing(
    exporter: str = "none",
    service_name: str = "lbctl",
    *,
    console_out: IO[str] | None = None,
) -> TracerProvider | None:
    """Set up tracing; ``none`` (the default) turns it off and returns ``None``.

    ``console`` writes finished spans to ``console_out`` (default stdout) as they end;
    ``otlp`` batches them to the OTLP endpoint from the standard ``OTEL_EXPORTER_OTLP_*``
    variables and needs ``opentelemetry-exporter-otlp`` installed. A previously
    configured provider is shut down.
    """
    name = str(exporter).lower()
    if name not in EXPORTERS:
        raise ValueError(f"{SETTING}: must be one of {', '.join(EXPORTERS)}, got {exporter!r}")
    span_exporter: SpanExporter | None = None
    if name == "otlp":
        span_exporter = _otlp_exporter()
    reset_tracing()
    if name == "none":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if name == "console":
        kwargs: dict[str, Any] = {"out": console_out} if console_out is not None else {}
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(**kwargs)))
    else:
        assert span_exporter is not None
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    _state.provider = provider
    return provider


def reset_tracing() -> None:
    """Shut down the configured provider (flushing its spans); tracing is off after."""
    provider, _state.provider = _state.provider, None
    if provider is not None:
        provider.shutdown()


def _otlp_exporter() -> SpanExporter:
    for module_name in _OTLP_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        exporter: SpanExporter = module.OTLPSpanExporter()
        return exporter
    raise ValueError(
        f"{SETTING}: 'otlp' needs the opentelemetry-exporter-otlp package, which is not "
        "installed; install it or use 'console' or 'none'"
    )


def tracer() -> trace.Tracer:
    """The ``lbctl`` tracer: the configured provider's, or a no-op one."""
    if _state.provider is not None:
        return _state.provider.get_tracer("lbctl")
    return trace.NoOpTracer()


@asynccontextmanager
async def reconcile_span(key: str, controller: str = "") -> AsyncIterator[trace.Span]:
    """A ``reconcile`` span for Service ``key``; records an escaping exception."""
    attrs = {"lbctl.service.key": key}
    if controller:
        attrs["lbctl.controller"] = controller
    with tracer().start_as_current_span("reconcile", attributes=attrs) as span:
        yield span


@asynccontextmanager
async def provider_span(operation: str, provider: str = "") -> AsyncIterator[trace.Span]:
    """A ``provider.<operation>`` span, a child of the current (reconcile) span."""
    attrs = {"lbctl.provider.operation": operation}
    if provider:
        attrs["lbctl.provider"] = provider
    with tracer().start_as_current_span(f"provider.{operation}", attributes=attrs) as span:
        yield span
