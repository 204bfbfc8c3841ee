"""``lbctl apiserver``: run the embedded API server until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

from lbctl.apimachinery.lbctl_kinds import LBCTL_TYPES
from lbctl.apiserver.server import APIServer, APIServerConfig
from lbctl.settings import Settings
from lbctl.telemetry.logs import configure_logging

__all__ = ["config_from_settings", "run_apiserver"]


def config_from_settings(settings: Settings) -> APIServerConfig:
    token = None
    if settings.token_file is not None:
        token = settings.token_file.read_text(encoding="utf-8").strip()
    return APIServerConfig(
        data_dir=settings.data_dir,
        host=settings.listen_host,
        port=settings.listen_port,
        service_cidrs=tuple(settings.service_cidrs),
        port_range=settings.port_range,
        tls=settings.tls,
        token=token,
        history_seconds=settings.watch_history_seconds,
        repair_seconds=settings.repair_interval_seconds,
        extra_types=LBCTL_TYPES,
    )


async def _serve(config: APIServerConfig) -> None:
    server = APIServer(config)
    await server.start()
    print(f"lbctl apiserver: serving on {server.url}", flush=True)
    print(f"  kubectl --kubeconfig {server.kubeconfig_path} get services -A", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def run_apiserver(settings: Settings) -> int:
    configure_logging(settings.log_level.value, settings.log_format.value)
    try:
        config = config_from_settings(settings)
    except OSError as e:
        print(f"lbctl: token_file (LBCTL_TOKEN_FILE): {e}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(config))
    except OSError as e:
        print(
            f"lbctl: listen (LBCTL_LISTEN): cannot serve on {settings.listen}: {e}", file=sys.stderr
        )
        return 1
    return 0
