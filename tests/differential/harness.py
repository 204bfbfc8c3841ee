"""Run one case against a server through kubernetes_asyncio's ApiClient and normalise what
came back, so the embedded server and the real kube-apiserver can be compared."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from kubernetes_asyncio import client

SERVICE_NET = ipaddress.ip_network("10.96.0.0/16")
_VOLATILE_META = (
    "uid",
    "creationTimestamp",
    "resourceVersion",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "generateName",
)
_AGE = re.compile(r"^(\d+[smhdy])+$|^<invalid>$")


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    """Relative to the API root; ``{ns}`` is the case's namespace."""
    body: Any = None
    ctype: str = "application/json"
    query: dict[str, str] = field(default_factory=dict)
    accept: str = "application/json"
    compare: bool = True
    watch_from: int | None = None
    """For a watch step: the index of the step whose resourceVersion to watch from."""


@dataclass(frozen=True)
class Case:
    id: str
    steps: tuple[Step, ...]


def requested_values(case: Case) -> set[str]:
    """IPs and ports the case asks for by hand: those are compared as they are."""
    found: set[str] = set()

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for val in v.values():
                walk(val)
        elif isinstance(v, list):
            for val in v:
                walk(val)
        elif isinstance(v, (str, int)) and not isinstance(v, bool):
            found.add(str(v))

    for s in case.steps:
        body = s.body
        if isinstance(body, str):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        walk(body)
    return found


def normalise(value: Any, keep: set[str], ns: str, key: str = "") -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("uid", "storageVersionHash"):
                continue
            if k == "metadata" and isinstance(v, dict):
                kept = {mk: mv for mk, mv in v.items() if mk not in _VOLATILE_META}
                out[k] = normalise(kept, keep, ns, k)
            else:
                out[k] = normalise(v, keep, ns, k)
        return out
    if isinstance(value, list):
        return [normalise(v, keep, ns, key) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and key in ("nodePort", "healthCheckNodePort"):
        return value if str(value) in keep else "<port>"
    if isinstance(value, str):
        text = value.replace(ns, "<ns>")
        try:
            if ipaddress.ip_address(text) in SERVICE_NET and text not in keep:
                return "<ip>"
        except ValueError:
            pass
        if key == "" and _AGE.match(text):
            return "<age>"
        return re.sub(
            r"\b3[0-2]\d{3}\b", lambda m: m.group(0) if m.group(0) in keep else "<port>", text
        )
    return value


async def call(
    api: client.ApiClient, step: Step, ns: str, rv: str | None = None
) -> tuple[int, Any]:
    headers = {"Accept": step.accept}
    body = step.body
    if body is not None:
        headers["Content-Type"] = step.ctype
        if isinstance(body, (dict, list)):
            body = json.loads(json.dumps(body).replace("{ns}", ns))
    query = dict(step.query)
    if rv is not None:
        query.update(watch="1", resourceVersion=rv, timeoutSeconds=query.get("timeoutSeconds", "1"))
    resp = await api.call_api(
        step.path.replace("{ns}", ns),
        step.method,
        header_params=headers,
        body=body,
        query_params=list(query.items()),
        auth_settings=["BearerToken"],
        _preload_content=False,
    )
    raw = await resp.read()
    if rv is not None:
        events = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
        return resp.status, [
            (e["type"], (e["object"].get("metadata") or {}).get("name")) for e in events
        ]
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, raw.decode(errors="replace")


async def run_case(api: client.ApiClient, case: Case, ns: str) -> list[tuple[int, Any]]:
    keep = requested_values(case)
    out: list[tuple[int, Any]] = []
    rvs: list[str | None] = []
    for step in case.steps:
        rv = None
        if step.watch_from is not None:
            rv = rvs[step.watch_from]
        status, body = await call(api, step, ns, rv)
        rvs.append(
            ((body or {}).get("metadata") or {}).get("resourceVersion")
            if isinstance(body, dict)
            else None
        )
        if step.compare:
            out.append((status, normalise(body, keep, ns)))
    return out
