"""``lbctl speaker``: one per node, against any API server."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from lbctl.kube.client import connect
from lbctl.kube.errors import KubeError
from lbctl.settings import Settings
from lbctl.speaker.announcer import AnnouncerConfig
from lbctl.speaker.app import SpeakerOptions, run_speaker
from lbctl.telemetry import HealthServer, Metrics, configure_logging

__all__ = ["options_from_settings", "run_speaker_command"]


def options_from_settings(settings: Settings) -> SpeakerOptions:
    return SpeakerOptions(
        node=settings.node_name,
        namespace=settings.speaker_namespace,
        default_class=settings.default_class,
        heartbeat_host=settings.heartbeat_host,
        heartbeat_port=settings.heartbeat_port,
        heartbeat_address=settings.speaker_heartbeat_address,
        heartbeat_interval=settings.speaker_heartbeat_interval_seconds,
        dead_after=settings.speaker_dead_after_seconds,
        lease_duration=settings.speaker_lease_duration_seconds,
        announcer=AnnouncerConfig(
            gratuitous_count=settings.speaker_gratuitous_count,
            gratuitous_interval=settings.speaker_gratuitous_interval_seconds,
            refresh=settings.speaker_refresh_seconds,
            probe_count=settings.speaker_probe_count,
            probe_interval=settings.speaker_probe_interval_seconds,
            recheck=settings.speaker_conflict_recheck_seconds,
            interfaces=tuple(settings.speaker_interfaces),
        ),
    )


async def _run(settings: Settings, kubeconfig: Path | None) -> int:
    metrics = Metrics("lbctl-speaker")
    ready = asyncio.Event()
    health = HealthServer(
        metrics, ready=ready.is_set, host=settings.metrics_host, port=settings.metrics_port
    )
    try:
        await health.start()
    except OSError as e:
        print(f"lbctl: metrics_listen (LBCTL_METRICS_LISTEN): {e}", file=sys.stderr)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    qps = settings.api_qps or None
    try:
        async with await connect(
            kubeconfig=kubeconfig, qps=qps, burst=max(1, int(settings.api_qps * 2))
        ) as client:
            try:
                await run_speaker(
                    client, options_from_settings(settings), metrics=metrics, stop=stop, ready=ready
                )
            except OSError as e:
                print(
                    "lbctl: speaker_heartbeat_listen (LBCTL_SPEAKER_HEARTBEAT_LISTEN): "
                    f"{settings.speaker_heartbeat_listen}: {e}",
                    file=sys.stderr,
                )
                return 1
    finally:
        await health.stop()
        metrics.shutdown()
    return 0


def run_speaker_command(settings: Settings, kubeconfig: Path | None) -> int:
    if not settings.node_name:
        print(
            "lbctl: node_name (LBCTL_NODE_NAME, --node-name): the speaker needs the name of "
            "the node it runs on",
            file=sys.stderr,
        )
        return 2
    if kubeconfig is not None and not kubeconfig.is_file():
        print(f"lbctl: --kubeconfig: {kubeconfig}: no such file", file=sys.stderr)
        return 2
    configure_logging(settings.log_level.value, settings.log_format.value)
    try:
        return asyncio.run(_run(settings, kubeconfig))
    except KubeError as e:
        print(f"lbctl: API error: {e}", file=sys.stderr)
        return 1
