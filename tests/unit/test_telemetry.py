"""lbctl.telemetry: Prometheus rendering, the controller observer, logs, health server,
tracing."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import aiohttp
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from lbctl.runtime.clock import FakeClock
from lbctl.runtime.controller import Controller, ReconcileObserver, Result, RetryAfter
from lbctl.runtime.workqueue import WorkQueue
from lbctl.telemetry import tracing
from lbctl.telemetry.http import HealthServer
from lbctl.telemetry.logs import configure_logging, current_key, reconcile_context
from lbctl.telemetry.metrics import CONTENT_TYPE, Metrics
from lbctl.telemetry.tracing import configure_tracing, provider_span, reconcile_span

DEADLINE = 2.0  # real seconds before a test counts as hung
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: bytes) -> tuple[Samples, dict[str, str]]:
    """Samples keyed by (name, labels), and the ``# TYPE`` of each metric family."""
    samples: Samples = {}
    types: dict[str, str] = {}
    for line in text.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(_LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def lbl(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


# -- metrics -----------------------------------------------------------------------------
def test_render_has_every_instrument_with_its_labels() -> None:
    m = Metrics()
    m.reconciled("svc", "ns/a", "success", 0.2)
    m.reconciled("svc", "ns/b", "success", 0.03)
    m.reconciled("svc", "ns/c", "error", 1.5)
    m.reconciled("svc", "ns/d", "terminal", 0.0)
    m.queue_waited("svc", 0.5)
    depth = [3]
    m.watch_queue("svc", lambda: depth[0])
    m.observe_allocations(lambda: [("10.0.0.0/24", 5, 249), ('we"ird\\', 1, 0)])
    m.provider_call("memory", "ensure", "success")
    m.provider_call("memory", "ensure", "success")
    m.provider_call("memory", "delete", "error")

    samples, types = parse(m.render())

    assert types == {
        "lbctl_reconcile_total": "counter",
        "lbctl_reconcile_errors_total": "counter",
        "lbctl_reconcile_duration_seconds": "histogram",
        "lbctl_workqueue_wait_seconds": "histogram",
        "lbctl_provider_calls_total": "counter",
        "lbctl_workqueue_depth": "gauge",
        "lbctl_allocations": "gauge",
    }
    assert samples[("lbctl_reconcile_total", lbl(controller="svc", result="success"))] == 2
    assert samples[("lbctl_reconcile_total", lbl(controller="svc", result="error"))] == 1
    assert samples[("lbctl_reconcile_errors_total", lbl(controller="svc"))] == 2
    ok = lbl(controller="svc", result="success")
    assert samples[("lbctl_reconcile_duration_seconds_count", ok)] == 2
    assert samples[("lbctl_reconcile_duration_seconds_sum", ok)] == pytest.approx(0.23)
    assert samples[("lbctl_reconcile_duration_seconds_bucket", ok | {("le", "0.05")})] == 1
    assert samples[("lbctl_reconcile_duration_seconds_bucket", ok | {("le", "0.25")})] == 2
    assert samples[("lbctl_reconcile_duration_seconds_bucket", ok | {("le", "+Inf")})] == 2
    assert samples[("lbctl_workqueue_wait_seconds_count", lbl(name="svc"))] == 1
    assert samples[("lbctl_workqueue_depth", lbl(name="svc"))] == 3
    assert samples[("lbctl_allocations", lbl(range="10.0.0.0/24", state="used"))] == 5
    assert samples[("lbctl_allocations", lbl(range="10.0.0.0/24", state="free"))] == 249
    assert samples[("lbctl_allocations", lbl(range='we\\"ird\\\\', state="used"))] == 1
    calls = "lbctl_provider_calls_total"
    assert samples[(calls, lbl(provider="memory", operation="ensure", outcome="success"))] == 2
    assert samples[(calls, lbl(provider="memory", operation="delete", outcome="error"))] == 1
    assert not any("key" in dict(labels) for _, labels in samples)

    depth[0] = 7  # gauges are read from the callback at every render
    samples, _ = parse(m.render())
    assert samples[("lbctl_workqueue_depth", lbl(name="svc"))] == 7
    # counters are cumulative, not reset by a render
    assert samples[("lbctl_reconcile_total", lbl(controller="svc", result="success"))] == 2


def test_failing_callbacks_do_not_break_render() -> None:
    m = Metrics()

    def boom() -> int:
        raise RuntimeError("boom")

    m.watch_queue("bad", boom)
    m.watch_queue("good", lambda: 1)

    def broken_ranges() -> Iterator[tuple[str, int, int]]:
        yield ("r", 1, 2)
        raise RuntimeError("store gone")

    m.observe_allocations(broken_ranges)
    samples, _ = parse(m.render())
    assert samples[("lbctl_workqueue_depth", lbl(name="good"))] == 1
    assert ("lbctl_workqueue_depth", lbl(name="bad")) not in samples
    assert not any(name == "lbctl_allocations" for name, _ in samples)


def test_separate_instances_do_not_share_data() -> None:
    a, b = Metrics(), Metrics()
    a.provider_call("memory", "ensure", "success")
    assert b"lbctl_provider_calls_total" in a.render()
    assert b"lbctl_provider_calls_total" not in b.render()


async def test_metrics_observe_a_real_controller() -> None:
    m: Metrics = Metrics()
    observer: ReconcileObserver = m  # the protocol, statically
    finished: list[str] = []
    all_done = asyncio.Event()

    def on_done(key: str, _seconds: float) -> None:  # runs after the observer
        finished.append(key)
        if len(finished) == 4:
            all_done.set()

    clock = FakeClock()
    queue: WorkQueue[str] = WorkQueue(
        name="svc", clock=clock, on_get=m.queue_observer("svc"), on_done=on_done
    )
    m.watch_queue("svc", lambda: len(queue))

    async def reconcile(key: str) -> Result | None:
        if key == "ns/later":
            return Result(requeue_after=60)
        if key == "ns/retry":
            raise RetryAfter(30)
        if key == "ns/bad":
            raise RuntimeError("provider exploded")
        return None

    ctl = Controller("svc", reconcile, queue=queue, clock=clock, observer=observer)
    for key in ("ns/ok", "ns/later", "ns/retry", "ns/bad"):
        ctl.enqueue(key)
    assert parse(m.render())[0][("lbctl_workqueue_depth", lbl(name="svc"))] == 4

    stop = asyncio.Event()
    run = asyncio.create_task(ctl.run(stop))
    await asyncio.wait_for(all_done.wait(), DEADLINE)
    stop.set()
    await asyncio.wait_for(run, DEADLINE)

    samples, _ = parse(m.render())
    total = "lbctl_reconcile_total"
    for result in ("success", "requeue_after", "requeue", "error"):
        assert samples[(total, lbl(controller="svc", result=result))] == 1, result
    assert (total, lbl(controller="svc", result="terminal")) not in samples
    assert samples[("lbctl_reconcile_errors_total", lbl(controller="svc"))] == 1
    assert samples[("lbctl_workqueue_wait_seconds_count", lbl(name="svc"))] == 4
    assert samples[("lbctl_workqueue_depth", lbl(name="svc"))] == 0  # the rest are parked


# -- logs --------------------------------------------------------------------------------
@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)


def test_json_logs_carry_key_and_reconcile_id(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = logging.getLogger("lbctl.test")
    log.info("outside")
    with reconcile_context("ns/web") as rid:
        assert current_key() == "ns/web"
        log.info("inside %d", 1)
    with reconcile_context("ns/web") as rid2:
        log.warning("again")
    log.debug("hidden")
    assert current_key() is None

    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["message"] for r in records] == ["outside", "inside 1", "again"]
    assert set(records[0]) == {"time", "level", "logger", "message"}
    assert records[1]["key"] == "ns/web"
    assert records[1]["reconcile_id"] == rid
    assert records[1]["level"] == "INFO"
    assert records[1]["logger"] == "lbctl.test"
    assert records[2]["reconcile_id"] == rid2 != rid
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", records[0]["time"])


async def test_reconcile_context_is_per_task(restore_logging: None) -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", stream=out)
    log = logging.getLogger("lbctl.test")
    entered = asyncio.Barrier(2)

    async def one(key: str) -> None:
        with reconcile_context(key):
            await entered.wait()  # both contexts are active at once
            log.info("working")

    await asyncio.wait_for(asyncio.gather(one("ns/a"), one("ns/b")), DEADLINE)
    keys = sorted(json.loads(line)["key"] for line in out.getvalue().splitlines())
    assert keys == ["ns/a", "ns/b"]


def test_text_logs_and_replacing_the_handler(restore_logging: None) -> None:
    first, out = io.StringIO(), io.StringIO()
    configure_logging("DEBUG", "json", stream=first)
    configure_logging("DEBUG", "text", stream=out)  # replaces the first handler
    log = logging.getLogger("lbctl.test")
    with reconcile_context("ns/web") as rid:
        log.debug("hello")
    log.info("bye")
    assert first.getvalue() == ""
    lines = out.getvalue().splitlines()
    assert re.fullmatch(rf"\S+Z DEBUG lbctl\.test: hello key=ns/web reconcile={rid}", lines[0]), (
        lines[0]
    )
    assert lines[1].endswith(" INFO lbctl.test: bye")
    with pytest.raises(ValueError, match="log_format"):
        configure_logging("INFO", "xml")
    with pytest.raises(ValueError, match="log_level"):
        configure_logging("LOUD", "text")


# -- health server -----------------------------------------------------------------------
async def test_health_server_over_http() -> None:
    m = Metrics()
    m.provider_call("memory", "ensure", "success")
    ready = False
    server = HealthServer(m, lambda: ready, host="127.0.0.1", port=0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        timeout = aiohttp.ClientTimeout(total=DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.get(f"{base}/healthz") as r:
                assert r.status == 200
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 503
            ready = True
            async with http.get(f"{base}/readyz") as r:
                assert r.status == 200
            async with http.get(f"{base}/metrics") as r:
                assert r.status == 200
                assert r.headers["Content-Type"] == CONTENT_TYPE
                assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                samples, _ = parse(await r.read())
            async with http.get(f"{base}/nope") as r:
                assert r.status == 404
    finally:
        await server.stop()
    key = lbl(provider="memory", operation="ensure", outcome="success")
    assert samples[("lbctl_provider_calls_total", key)] == 1
    with pytest.raises(RuntimeError):
        _ = server.port


async def test_readyz_is_503_when_the_check_raises() -> None:
    def broken() -> bool:
        raise RuntimeError("informer gone")

    server = HealthServer(None, broken)
    await server.start()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=DEADLINE)) as http,
            http.get(f"http://127.0.0.1:{server.port}/readyz") as r,
        ):
            assert r.status == 503
    finally:
        await server.stop()


# -- tracing -----------------------------------------------------------------------------
@pytest.fixture
def reset_tracing() -> Iterator[None]:
    yield
    tracing.reset_tracing()


async def test_tracing_none_is_off(reset_tracing: None) -> None:
    assert configure_tracing("none") is None
    async with reconcile_span("ns/web") as span:
        assert not span.is_recording()


def test_tracing_rejects_unknown_and_missing_otlp(reset_tracing: None) -> None:
    with pytest.raises(ValueError, match="tracing_exporter"):
        configure_tracing("zipkin")
    try:
        import opentelemetry.exporter.otlp  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"tracing_exporter.*opentelemetry-exporter-otlp"):
            configure_tracing("otlp")


async def test_console_tracing_records_reconcile_and_child_provider_span(
    reset_tracing: None,
) -> None:
    console = io.StringIO()
    provider = configure_tracing("console", service_name="lbctl-test", console_out=console)
    assert provider is not None
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))

    async with reconcile_span("ns/web", controller="svc") as outer:
        assert outer.is_recording()
        async with provider_span("ensure", provider="memory"):
            pass
    with pytest.raises(RuntimeError):
        async with reconcile_span("ns/bad"):
            raise RuntimeError("nope")

    finished = memory.get_finished_spans()
    assert [s.name for s in finished] == ["provider.ensure", "reconcile", "reconcile"]
    child, parent, failed = finished
    assert parent.attributes == {"lbctl.service.key": "ns/web", "lbctl.controller": "svc"}
    assert child.attributes == {"lbctl.provider.operation": "ensure", "lbctl.provider": "memory"}
    assert parent.context is not None and child.context is not None
    assert child.parent is not None
    assert child.parent.span_id == parent.context.span_id
    assert child.context.trace_id == parent.context.trace_id
    assert failed.parent is None  # a new trace per reconcile
    assert parent.resource.attributes["service.name"] == "lbctl-test"
    assert not failed.status.is_ok
    assert failed.events and failed.events[0].name == "exception"
    assert '"name": "reconcile"' in console.getvalue()
