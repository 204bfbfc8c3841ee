"""Discovery documents, ``/version``, the minimal OpenAPI and Accept negotiation.

Legacy discovery (``apimachinery/pkg/apis/meta/v1/types.go``):

* ``GET /api``: :func:`api_versions` (``APIVersions``);
* ``GET /apis``: :func:`api_group_list` (``APIGroupList``);
* ``GET /apis/<g>``: :func:`api_group` (``APIGroup``);
* ``GET /api/v1``, ``GET /apis/<g>/<v>``: :func:`api_resource_list`
  (``APIResourceList``), resources sorted by name, the status subresource listed as
  ``<plural>/status`` with verbs get/patch/update.

Aggregated discovery (``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList``):
:func:`aggregated_discovery`, served with :data:`AGGREGATED_CONTENT_TYPE` when
:func:`accepts_aggregated` says the client prefers it.  With it kubectl needs no
per-group-version request.

:func:`accepts_aggregated` and :func:`accepts_table` negotiate the Accept header as
kube-apiserver does: clauses ordered by ``q`` (concrete types before wildcards), and
the first clause the server can serve wins, its ``as``/``g``/``v`` parameters
naming a conversion (``as=Table;g=meta.k8s.io;v=v1``) or none (plain JSON).
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from lbctl.apimachinery.resources import Registry, ResourceType

__all__ = [
    "AGGREGATED_CONTENT_TYPE",
    "OPENAPI_V2_CONTENT_TYPE",
    "OPENAPI_V2_PROTOBUF",
    "STATUS_VERBS",
    "TABLE_CONTENT_TYPE",
    "MediaRange",
    "accepts_aggregated",
    "accepts_table",
    "aggregated_discovery",
    "api_group",
    "api_group_list",
    "api_resource_list",
    "api_versions",
    "negotiate",
    "parse_accept",
    "version_info",
]

AGGREGATED_CONTENT_TYPE: Final = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
)
TABLE_CONTENT_TYPE: Final = "application/json;as=Table;v=v1;g=meta.k8s.io"
OPENAPI_V2_CONTENT_TYPE: Final = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
OPENAPI_V2_PROTOBUF: Final = bytes.fromhex("0a03322e30")
"""``{swagger: "2.0"}`` as an ``openapi_v2.Document``: field 1, length 3, ``2.0``.

Enough for ``kubectl apply``'s client-side validation to find no schema and move on.
"""

STATUS_VERBS: Final = ("get", "patch", "update")

_AGGREGATED: Final = ("apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList")
_TABLE: Final = ("meta.k8s.io", "v1", "Table")

# -- Accept negotiation ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One clause of an Accept header: ``type/subtype;param=value;q=0.5``."""

    type: str
    subtype: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def conversion(self) -> tuple[str, str, str] | None:
        """``(g, v, as)`` when the clause asks for a converted form, else None."""
        if "as" not in self.params:
            return None
        return (self.params.get("g", ""), self.params.get("v", ""), self.params["as"])


def _split(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for c in text:
        if c == '"':
            quoted = not quoted
        if c == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def parse_accept(header: str) -> list[MediaRange]:
    """The clauses of an Accept header, most preferred first (as goautoneg orders them)."""
    ranges: list[MediaRange] = []
    for clause in _split(header, ","):
        pieces = _split(clause, ";")
        media = pieces[0].strip().lower()
        if not media:
            continue
        kind, _, subtype = media.partition("/")
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif key:
                params[key] = value
        ranges.append(MediaRange(kind, subtype or "*", params, q))
    ranges.sort(key=lambda r: (-r.q, r.type == "*", r.subtype == "*"))
    return ranges


def negotiate(
    header: str, conversions: Sequence[tuple[str, str, str]]
) -> tuple[str, str, str] | None:
    """The JSON form the server answers with: one of ``conversions`` or None (plain).

    Clauses for other media types, with ``q=0`` or asking for a conversion the
    endpoint does not offer are passed over, as kube-apiserver passes them over.
    """
    for r in parse_accept(header):
        if r.q <= 0 or r.type not in ("application", "*") or r.subtype not in ("json", "*"):
            continue
        wanted = r.conversion
        if wanted is None:
            return None
        if wanted in conversions:
            return wanted
    return None


def accepts_aggregated(accept_header: str) -> bool:
    """Whether to answer ``/api`` or ``/apis`` with the v2 ``APIGroupDiscoveryList``."""
    return negotiate(accept_header, [_AGGREGATED]) == _AGGREGATED


def accepts_table(accept_header: str) -> bool:
    """Whether a get/list/watch should be answered with a ``meta.k8s.io/v1`` Table."""
    return negotiate(accept_header, [_TABLE]) == _TABLE


# -- legacy discovery ------------------------------------------------------------------


def api_versions(server_address: str, *, versions: Sequence[str] = ("v1",)) -> dict[str, Any]:
    """``GET /api``: the core group's versions and where to reach the server."""
    return {
        "kind": "APIVersions",
        "versions": list(versions),
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_doc(group: str, versions: Sequence[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(reg: Registry) -> dict[str, Any]:
    """``GET /apis``: every named group, its first registered version preferred."""
    groups = [_group_doc(g, vs) for g, vs in reg.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(reg: Registry, group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``, or None when the group is not served."""
    versions = reg.groups().get(group) if group else None
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(group, versions)}


def _legacy_resources(rt: ResourceType) -> list[dict[str, Any]]:
    main: dict[str, Any] = {
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": sorted(rt.verbs),
    }
    if rt.short_names:
        main["shortNames"] = list(rt.short_names)
    if rt.categories:
        main["categories"] = list(rt.categories)
    out = [main]
    if rt.status_subresource:
        out.append(
            {
                "name": f"{rt.plural}/status",
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": list(STATUS_VERBS),
            }
        )
    return out


def api_resource_list(reg: Registry, group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``GET /apis/<g>/<v>``, or None when nothing is served there."""
    types = reg.in_group_version(group, version)
    if not types:
        return None
    resources = sorted((e for rt in types for e in _legacy_resources(rt)), key=lambda e: e["name"])
    doc: dict[str, Any] = {"kind": "APIResourceList"}
    if group:  # the core group's list carries no apiVersion
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = f"{group}/{version}" if group else version
    doc["resources"] = resources
    return doc


# -- aggregated discovery --------------------------------------------------------------


def _aggregated_resource(rt: ResourceType) -> dict[str, Any]:
    kind = {"group": rt.group, "version": rt.version, "kind": rt.kind}
    doc: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": sorted(rt.verbs),
    }
    if rt.short_names:
        doc["shortNames"] = list(rt.short_names)
    if rt.categories:
        doc["categories"] = list(rt.categories)
    if rt.status_subresource:
        doc["subresources"] = [
            {"subresource": "status", "responseKind": dict(kind), "verbs": list(STATUS_VERBS)}
        ]
    return doc


def _aggregated_group(reg: Registry, group: str, versions: Sequence[str]) -> dict[str, Any]:
    # ObjectMeta's zero creationTimestamp serializes as null, upstream as here.
    metadata: dict[str, Any] = {"name": group} if group else {}
    metadata["creationTimestamp"] = None
    listed = []
    for version in versions:
        types = sorted(reg.in_group_version(group, version), key=lambda rt: rt.plural)
        listed.append(
            {
                "version": version,
                "resources": [_aggregated_resource(rt) for rt in types],
                "freshness": "Current",
            }
        )
    return {"metadata": metadata, "versions": listed}


def aggregated_discovery(reg: Registry, *, legacy: bool) -> dict[str, Any]:
    """The ``apidiscovery.k8s.io/v2`` ``APIGroupDiscoveryList`` for ``/api`` (``legacy``:
    one item, the core group, with no name) or ``/apis`` (every named group)."""
    groups = reg.groups()
    if legacy:
        items = [_aggregated_group(reg, "", groups[""])] if "" in groups else []
    else:
        items = [_aggregated_group(reg, g, vs) for g, vs in groups.items() if g]
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


# -- /version --------------------------------------------------------------------------

_ARCH: Final = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "AMD64": "amd64"}
_PLATFORM: Final = f"{sys.platform}/{_ARCH.get(platform.machine(), platform.machine().lower())}"


def version_info(
    *,
    major: str = "1",
    minor: str = "34",
    git_version: str | None = None,
    git_commit: str = "0" * 40,
    build_date: str = "1970-01-01T00:00:00Z",
) -> dict[str, str]:
    """``GET /version`` (``version.Info``): the Kubernetes version lbctl speaks.

    ``gitVersion`` defaults to ``v<major>.<minor>.0+lbctl``: semver build metadata
    marks the implementation without making it sort below ``v<major>.<minor>.0`` (a
    ``-lbctl`` pre-release would), so version checks in clients behave.
    """
    previous = str(int(minor) - 1) if minor.isdigit() and int(minor) > 0 else minor
    return {
        "major": major,
        "minor": minor,
        "emulationMajor": major,
        "emulationMinor": minor,
        "minCompatibilityMajor": major,
        "minCompatibilityMinor": previous,
        "gitVersion": git_version or f"v{major}.{minor}.0+lbctl",
        "gitCommit": git_commit,
        "gitTreeState": "clean",
        "buildDate": build_date,
        "goVersion": f"python{platform.python_version()}",
        "compiler": platform.python_implementation().lower(),
        "platform": _PLATFORM,
    }
