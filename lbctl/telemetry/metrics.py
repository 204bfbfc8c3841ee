"""Controller metrics on an OpenTelemetry ``MeterProvider``, rendered as Prometheus text.

Each :class:`Metrics` owns its ``MeterProvider`` (never the global one) read by an
in-memory reader; :meth:`Metrics.render` turns the collected data into the Prometheus
text exposition format (``CONTENT_TYPE``) without the global ``prometheus_client``
registry, so several instances (tests) never collide.

Instruments::

    lbctl_reconcile_total{controller,result}              counter
    lbctl_reconcile_errors_total{controller}              counter (result error|terminal)
    lbctl_reconcile_duration_seconds{controller,result}   histogram
    lbctl_workqueue_depth{name}                           gauge (callback: watch_queue)
    lbctl_workqueue_wait_seconds{name}                    histogram
    lbctl_allocations{range,state=used|free}              gauge (callback: observe_allocations)
    lbctl_provider_calls_total{provider,operation,outcome} counter
    lbctl_cloud_api_calls_total{provider,operation,outcome} counter (each attempt of a
                                                          provider's cloud API call)
    lbctl_orphans_deleted_total{provider}                 counter (orphan sweep)

A ``Metrics`` is a ``lbctl.runtime.controller.ReconcileObserver``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "ERROR_RESULTS", "AllocationFn", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds; controller-runtime's reconcile-time buckets, trimmed.
DURATION_BUCKETS: Sequence[float] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
#: Result labels counted in ``lbctl_reconcile_errors_total``.
ERROR_RESULTS = frozenset({"error", "terminal"})

AllocationFn = Callable[[], Iterable[tuple[str, int, int]]]
"""Returns ``(range_name, used, free)`` for every allocation range."""

log = logging.getLogger("lbctl.telemetry.metrics")


class Metrics:
    """The controller's instruments; see the module docstring."""

    def __init__(self, service_name: str = "lbctl") -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, Callable[[], int]] = {}
        self._allocations: AllocationFn | None = None
        self._reader = InMemoryMetricReader()
        self.provider = MeterProvider(
            metric_readers=[self._reader],
            resource=Resource.create({"service.name": service_name}),
        )
        meter = self.provider.get_meter("lbctl")
        self._reconcile_total = meter.create_counter(
            "lbctl_reconcile_total", description="Reconciles finished, by result."
        )
        self._reconcile_errors = meter.create_counter(
            "lbctl_reconcile_errors_total",
            description="Reconciles that ended in an error (retried or terminal).",
        )
        self._reconcile_duration = meter.create_histogram(
            "lbctl_reconcile_duration_seconds",
            unit="s",
            description="Time spent in one reconcile.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._queue_wait = meter.create_histogram(
            "lbctl_workqueue_wait_seconds",
            unit="s",
            description="Time a key waited in the work queue before a worker took it.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._provider_calls = meter.create_counter(
            "lbctl_provider_calls_total", description="Load-balancer provider calls, by outcome."
        )
        self._cloud_calls = meter.create_counter(
            "lbctl_cloud_api_calls_total",
            description="Cloud API call attempts made by the provider, by operation and outcome.",
        )
        self._orphans = meter.create_counter(
            "lbctl_orphans_deleted_total",
            description="Cloud resources the orphan sweep deleted (their Service is gone).",
        )
        meter.create_observable_gauge(
            "lbctl_workqueue_depth",
            callbacks=[self._observe_queues],
            description="Keys queued and ready to be handed to a worker.",
        )
        meter.create_observable_gauge(
            "lbctl_allocations",
            callbacks=[self._observe_allocations],
            description="Allocated (used) and free values per allocation range.",
        )

    # -- recording ----------------------------------------------------------------------
    def reconciled(self, controller: str, key: object, result_label: str, seconds: float) -> None:
        """``ReconcileObserver``: count one finished reconcile (``key`` is not a label)."""
        attrs = {"controller": controller, "result": result_label}
        self._reconcile_total.add(1, attrs)
        self._reconcile_duration.record(max(0.0, seconds), attrs)
        if result_label in ERROR_RESULTS:
            self._reconcile_errors.add(1, {"controller": controller})

    def queue_waited(self, name: str, seconds: float) -> None:
        """A key of queue ``name`` waited ``seconds`` before being handed out."""
        self._queue_wait.record(max(0.0, seconds), {"name": name})

    def queue_observer(self, name: str) -> Callable[[object, float], None]:
        """A ``WorkQueue(on_get=...)`` callback recording wait times for queue ``name``."""

        def on_get(_key: object, waited: float) -> None:
            self.queue_waited(name, waited)

        return on_get

    def watch_queue(self, name: str, depth_fn: Callable[[], int]) -> None:
        """Report ``depth_fn()`` (e.g. ``lambda: len(queue)``) as the depth of ``name``."""
        with self._lock:
            self._queues[name] = depth_fn

    def observe_allocations(self, fn: AllocationFn) -> None:
        """Report ``(range, used, free)`` triples from ``fn`` at every collection."""
        with self._lock:
            self._allocations = fn

    def provider_call(self, provider: str, operation: str, outcome: str) -> None:
        """Count one provider call (``outcome``: e.g. ``success``, ``error``, ``throttled``)."""
        self._provider_calls.add(
            1, {"provider": provider, "operation": operation, "outcome": outcome}
        )

    def cloud_call(self, provider: str, operation: str, outcome: str) -> None:
        """Count one attempt of a provider's cloud API call (``DescribeTags``, ``throttled``)."""
        self._cloud_calls.add(1, {"provider": provider, "operation": operation, "outcome": outcome})

    def orphans_deleted(self, provider: str, count: int) -> None:
        self._orphans.add(count, {"provider": provider})

    def shutdown(self) -> None:
        self.provider.shutdown()

    # -- callbacks ----------------------------------------------------------------------
    def _observe_queues(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            queues = list(self._queues.items())
        out = []
        for name, depth_fn in queues:
            try:
                out.append(Observation(int(depth_fn()), {"name": name}))
            except Exception:
                log.exception("work queue depth callback for %r failed", name)
        return out

    def _observe_allocations(self, _options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            fn = self._allocations
        if fn is None:
            return []
        try:
            ranges = list(fn())
        except Exception:
            log.exception("allocations callback failed")
            return []
        out = []
        for range_name, used, free in ranges:
            out.append(Observation(used, {"range": range_name, "state": "used"}))
            out.append(Observation(free, {"range": range_name, "state": "free"}))
        return out

    # -- exposition ---------------------------------------------------------------------
    def render(self) -> bytes:
        """Everything recorded so far, in the Prometheus text format (``CONTENT_TYPE``)."""
        data = self._reader.get_metrics_data()
        lines: list[str] = []
        if data is None:
            return b""
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    lines.extend(_render_metric(metric.name, metric.description or "", metric.data))
        return ("\n".join(lines) + "\n").encode() if lines else b""


def _render_metric(name: str, description: str, data: Any) -> list[str]:
    out: list[str] = []
    if description:
        out.append(f"# HELP {name} {_escape_help(description)}")
    if isinstance(data, Sum):
        out.append(f"# TYPE {name} {'counter' if data.is_monotonic else 'gauge'}")
        out.extend(_sample(name, p.attributes, p.value) for p in _numbers(data.data_points))
    elif isinstance(data, Gauge):
        out.append(f"# TYPE {name} gauge")
        out.extend(_sample(name, p.attributes, p.value) for p in _numbers(data.data_points))
    elif isinstance(data, Histogram):
        out.append(f"# TYPE {name} histogram")
        for p in data.data_points:
            assert isinstance(p, HistogramDataPoint)
            attrs = dict(p.attributes or {})
            cumulative = 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                cumulative += count
                out.append(_sample(f"{name}_bucket", {**attrs, "le": _fmt(bound)}, cumulative))
            out.append(_sample(f"{name}_bucket", {**attrs, "le": "+Inf"}, p.count))
            out.append(_sample(f"{name}_sum", attrs, p.sum))
            out.append(_sample(f"{name}_count", attrs, p.count))
    else:  # an aggregation this module never configures
        return []
    return out


def _numbers(points: Iterable[Any]) -> Iterable[NumberDataPoint]:
    return (p for p in points if isinstance(p, NumberDataPoint))


def _sample(name: str, attrs: Mapping[str, Any] | None, value: float) -> str:
    if attrs:
        labels = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sorted(attrs.items()))
        return f"{name}{{{labels}}} {_fmt(value)}"
    return f"{name} {_fmt(value)}"


def _fmt(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
