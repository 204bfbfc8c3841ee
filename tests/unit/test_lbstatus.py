"""The controller's desired Service status: conditions, generation, transition times."""

from __future__ import annotations

import dataclasses

from lbctl.domain.lbstatus import (
    PORTS_ERROR,
    READY,
    DesiredIngress,
    desired_status,
    merge_conditions,
)
from lbctl.domain.service import Condition, Service, ServiceStatus


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


def test_merging_conditions_keeps_their_order() -> None:
    a, b, c = (Condition(type=t, status="True") for t in ("A", "B", "C"))
    b2 = Condition(type="B", status="False")
    d = Condition(type="D", status="True")
    assert merge_conditions((a, b, c), (d, b2)) == (a, b2, c, d)
    assert merge_conditions((), (a,)) == (a,)
    assert merge_conditions((a, b), ()) == (a, b)


def test_the_controller_does_not_move_another_writers_condition() -> None:
    """A condition of the speaker's written after the controller's stays where it is:
    the controller's next status is the same list, not a reordering of it."""
    svc = Service.from_dict(
        {
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        }
    )

    def want(s: Service) -> ServiceStatus:
        return desired_status(
            s,
            ingress=[DesiredIngress(ip="192.0.2.10")],
            port_errors=[],
            ready=True,
            ready_reason="Active",
            ready_message="the load balancer is active",
            ports_message="",
            now="2026-01-01T00:00:00Z",
        )

    first = want(svc)
    theirs = Condition(type="L2Announced", status="True", reason="Announcing")
    announced = dataclasses.replace(first, conditions=(*first.conditions, theirs))
    again = want(dataclasses.replace(svc, status=announced))
    assert [c.type for c in again.conditions] == [READY, PORTS_ERROR, "L2Announced"]
    assert again == announced
