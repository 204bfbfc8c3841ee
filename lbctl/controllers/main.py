"""``lbctl controller``: only the controller, against any API server."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from lbctl.controllers.app import ControllerOptions, run_controller
from lbctl.kube.client import connect
from lbctl.kube.errors import KubeError
from lbctl.settings import Settings
from lbctl.telemetry import HealthServer, Metrics, configure_logging
from providers.base import ConfigError, Provider, load_provider

__all__ = [
    "config_error_line",
    "options_from_settings",
    "provider_from_settings",
    "run_controller_command",
    "shared_provider_settings",
]


def options_from_settings(settings: Settings, class_name: str) -> ControllerOptions:
    return ControllerOptions(
        class_name=class_name,
        default_class=settings.default_class,
        workers=settings.workers,
        resync_seconds=settings.resync_seconds,
        leader_election=settings.leader_elect,
        lease_namespace=settings.lease_namespace,
        lease_duration=settings.lease_duration_seconds,
        renew_deadline=settings.renew_deadline_seconds,
        retry_period=settings.retry_period_seconds,
        cluster_name=settings.cluster_name,
    )


def shared_provider_settings(settings: Settings) -> dict[str, object]:
    """lbctl-wide settings a provider's factory takes when it has a parameter so named:
    the cluster id, and the NodePort range (the AWS provider opens it to its NLBs)."""
    return {"cluster_name": settings.cluster_name, "node_port_range": settings.node_port_range}


def provider_from_settings(settings: Settings) -> Provider:
    """The configured provider; :class:`ConfigError` names what is wrong."""
    return load_provider(
        settings.provider,
        shared=shared_provider_settings(settings),
        **settings.provider_options,
    )


def config_error_line(e: ConfigError) -> str:
    """One line naming the setting: the provider itself, or one of its options."""
    if e.setting == "provider":
        return f"lbctl: provider (LBCTL_PROVIDER): {e.message}"
    if e.setting == "provider_options":
        return f"lbctl: invalid setting provider_options (LBCTL_PROVIDER_OPTIONS): {e.message}"
    return (
        f"lbctl: invalid setting provider_options.{e.setting} (LBCTL_PROVIDER_OPTIONS): {e.message}"
    )


async def _run(settings: Settings, kubeconfig: Path | None) -> int:
    provider = provider_from_settings(settings)
    metrics = Metrics()
    started = asyncio.Event()
    health = HealthServer(
        metrics, ready=started.is_set, host=settings.metrics_host, port=settings.metrics_port
    )
    await health.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # graceful: in-flight reconciles finish
    qps = settings.api_qps or None
    try:
        async with await connect(
            kubeconfig=kubeconfig, qps=qps, burst=max(1, int(settings.api_qps * 2))
        ) as client:
            await run_controller(
                client=client,
                provider=provider,
                stop=stop,
                ready=started,
                metrics=metrics,
                options=options_from_settings(settings, provider.load_balancer_class),
            )
    finally:
        await provider.close()
        await health.stop()
    return 0


def run_controller_command(settings: Settings, kubeconfig: Path | None) -> int:
    configure_logging(settings.log_level.value, settings.log_format.value)
    try:
        return asyncio.run(_run(settings, kubeconfig))
    except ConfigError as e:
        print(config_error_line(e), file=sys.stderr)
        return 2
    except KubeError as e:
        print(f"lbctl: API error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"lbctl: metrics_listen (LBCTL_METRICS_LISTEN): {e}", file=sys.stderr)
        return 1
