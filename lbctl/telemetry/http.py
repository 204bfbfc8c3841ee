"""The health and metrics endpoint: ``/metrics``, ``/healthz``, ``/readyz``.

``/healthz`` answers 200 while the process (its event loop) runs; ``/readyz`` answers
200 once the readiness callback returns true (e.g. informers synced and, with leader
election, the manager running), else 503; ``/metrics`` is :meth:`Metrics.render`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiohttp import web

from lbctl.telemetry.metrics import CONTENT_TYPE, Metrics

__all__ = ["HealthServer"]

log = logging.getLogger("lbctl.telemetry.http")


class HealthServer:
    """A small aiohttp server bound to ``host:port`` (port 0: any free port)."""

    def __init__(
        self,
        metrics: Metrics | None = None,
        ready: Callable[[], bool] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.metrics = metrics
        self.ready = ready
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self.app = app

    @property
    def port(self) -> int:
        """The port actually bound (known after ``start``)."""
        if self._port is None:
            raise RuntimeError("HealthServer is not started")
        return self._port

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("HealthServer already started")
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        self._port = int(address[1])
        log.info("serving /metrics, /healthz, /readyz on %s:%d", self.host, self._port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        self._port = None
        if runner is not None:
            await runner.cleanup()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        try:
            ok = self.ready() if self.ready is not None else True
        except Exception:
            log.exception("readiness check failed")
            ok = False
        if ok:
            return web.Response(text="ok\n")
        return web.Response(status=503, text="not ready\n")

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = self.metrics.render() if self.metrics is not None else b""
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
