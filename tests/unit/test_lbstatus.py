"""The controller's desired Service status: conditions, generation, transition times."""

from __future__ import annotations

import dataclasses

from lbctl.domain.lbstatus import PORTS_ERROR, READY, DesiredIngress, desired_status
from lbctl.domain.service import Service


def _svc(generation: int | None = None) -> Service:
    meta: dict[str, object] = {"name": "web", "namespace": "default", "uid": "u1"}
    if generation is not None:
        meta["generation"] = generation
    return Service.from_dict(
        {"metadata": meta, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}
    )


def _status(svc: Service, now: str = "2026-01-01T00:00:00Z", ready: bool = True) -> object:
    return desired_status(
        svc,
        ingress=[DesiredIngress(ip="198.51.100.7", ip_mode="VIP")],
        port_errors=(),
        ready=ready,
        ready_reason="Active" if ready else "Provisioning",
        ready_message="m",
        ports_message="",
        now=now,
    )


def test_conditions_carry_the_generation_when_the_server_sets_one() -> None:
    # kube-apiserver 1.34 sets no metadata.generation on Services (checked against the
    # real server): then observedGeneration is omitted rather than invented.
    plain = _status(_svc())
    assert all(c.observed_generation is None for c in plain.conditions)  # type: ignore[attr-defined]
    with_gen = _status(_svc(generation=4))
    conds = {c.type: c for c in with_gen.conditions}  # type: ignore[attr-defined]
    assert conds[READY].observed_generation == 4
    assert conds[PORTS_ERROR].observed_generation == 4
    assert "observedGeneration" in conds[READY].to_dict()


def test_transition_time_moves_only_when_the_status_flips() -> None:
    svc = _svc()
    first = _status(svc, now="2026-01-01T00:00:00Z")
    svc = dataclasses.replace(svc, status=first)  # type: ignore[arg-type]
    same = _status(svc, now="2026-01-01T00:05:00Z")
    flipped = _status(svc, now="2026-01-01T00:09:00Z", ready=False)
    ready_of = lambda st: next(c for c in st.conditions if c.type == READY)  # noqa: E731
    assert ready_of(same).last_transition_time == "2026-01-01T00:00:00Z"
    assert ready_of(flipped).last_transition_time == "2026-01-01T00:09:00Z"
