"""``lbctl controller``: only the controller, against any API server."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import connect
from lbctl.kube.errors import KubeError
from lbctl.settings import Settings
from providers.base import ConfigError, load_provider

__all__ = ["options_from_settings", "run_controller_command"]


def options_from_settings(settings: Settings, class_name: str) -> ControllerOptions:
    return ControllerOptions(
        class_name=class_name,
        default_class=settings.default_class,
        workers=settings.workers,
        resync_seconds=settings.resync_seconds,
        leader_election=settings.leader_elect,
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
    )


async def _run(settings: Settings, kubeconfig: Path | None) -> int:
    provider = load_provider(settings.provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with await connect(kubeconfig=kubeconfig) as client:
            await run_controller(
                client=client,
                provider=provider,
                stop=stop,
                options=options_from_settings(settings, provider.load_balancer_class),
            )
    finally:
        await provider.close()
    return 0


def run_controller_command(settings: Settings, kubeconfig: Path | None) -> int:
    logging.basicConfig(
        level=settings.log_level.value,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_run(settings, kubeconfig))
    except ConfigError as e:
        print(f"lbctl: provider (LBCTL_PROVIDER): {e}", file=sys.stderr)
        return 2
    except KubeError as e:
        print(f"lbctl: API error: {e}", file=sys.stderr)
        return 1
