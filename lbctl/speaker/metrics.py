"""The speaker's instruments, on the process's :class:`~lbctl.telemetry.Metrics`.

Names follow MetalLB's layer-2 metrics so dashboards carry over::

    lbctl_speaker_requests_received_total{protocol,interface}   ARP requests / NS seen
    lbctl_speaker_responses_sent_total{protocol,interface}      replies for owned IPs
    lbctl_speaker_gratuitous_sent_total{protocol,interface}     gratuitous ARP / unsolicited NA
    lbctl_speaker_dropped_total{reason}                         frames not answered, by reason
    lbctl_speaker_conflicts_total{protocol}                     probes another host answered
    lbctl_speaker_announced_ips                                 IPs this node answers for
    lbctl_speaker_announced{service,ip,node}                    1 per announced Service IP
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.metrics import CallbackOptions, Observation

from lbctl.telemetry import Metrics

__all__ = ["SpeakerMetrics"]

Announced = Callable[[], Mapping[str, tuple[str, ...]]]
"""IP -> the Services it is announced for (by this node)."""


class SpeakerMetrics:
    def __init__(self, metrics: Metrics, node: str) -> None:
        self.node = node
        self._lock = threading.Lock()
        self._announced: Announced = dict
        meter = metrics.provider.get_meter("lbctl.speaker")
        self._requests = meter.create_counter(
            "lbctl_speaker_requests_received_total",
            description="ARP requests and Neighbor Solicitations received.",
        )
        self._responses = meter.create_counter(
            "lbctl_speaker_responses_sent_total",
            description="ARP replies and Neighbor Advertisements sent for owned IPs.",
        )
        self._gratuitous = meter.create_counter(
            "lbctl_speaker_gratuitous_sent_total",
            description="Gratuitous ARP and unsolicited Neighbor Advertisements sent.",
        )
        self._dropped = meter.create_counter(
            "lbctl_speaker_dropped_total",
            description="Frames received and not answered, by reason.",
        )
        self._conflicts = meter.create_counter(
            "lbctl_speaker_conflicts_total",
            description="Probes for a newly assigned IP that another host answered.",
        )
        meter.create_observable_gauge(
            "lbctl_speaker_announced_ips",
            callbacks=[self._observe_count],
            description="IPs this node answers ARP/NDP for.",
        )
        meter.create_observable_gauge(
            "lbctl_speaker_announced",
            callbacks=[self._observe_services],
            description="1 for each Service IP this node announces.",
        )

    def observe(self, fn: Announced) -> None:
        with self._lock:
            self._announced = fn

    def request(self, protocol: str, interface: str) -> None:
        self._requests.add(1, {"protocol": protocol, "interface": interface})

    def response(self, protocol: str, interface: str) -> None:
        self._responses.add(1, {"protocol": protocol, "interface": interface})

    def gratuitous(self, protocol: str, interface: str, count: int = 1) -> None:
        self._gratuitous.add(count, {"protocol": protocol, "interface": interface})

    def dropped(self, reason: str) -> None:
        self._dropped.add(1, {"reason": reason})

    def conflict(self, protocol: str) -> None:
        self._conflicts.add(1, {"protocol": protocol})

    def _snapshot(self) -> Mapping[str, tuple[str, ...]]:
        with self._lock:
            fn = self._announced
        return fn()

    def _observe_count(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(len(self._snapshot()))]

    def _observe_services(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(1, {"service": svc, "ip": ip, "node": self.node})
            for ip, svcs in sorted(self._snapshot().items())
            for svc in svcs
        ]
