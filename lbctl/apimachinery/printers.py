"""Server-side printing of the built-in kinds other than Events.

Columns (name, type, format, description, priority) and cell rules are those of
kube-apiserver's ``pkg/printers/internalversion/printers.go``, rendered "wide" as
the server always does (kubectl hides priority-1 columns unless ``-o wide``).
Descriptions are the API field documentation upstream takes from ``SwaggerDoc()``.

Two upstream quirks are kept on purpose: an IPAddress row has three cells (Name,
ParentRef, Age) for two column definitions (kubectl ignores the extra cell), and a
Service's Cluster-IP is ``clusterIPs[0]`` (falling back to ``clusterIP``, which
defaulting copies into ``clusterIPs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from lbctl.apimachinery.printing import (
    AGE,
    JSON,
    NAME,
    Printer,
    age,
    column,
    format_labels,
    get,
    items,
    list_with_more,
    name,
    string,
    strings,
)

__all__ = [
    "CONFIGMAP",
    "ENDPOINTSLICE",
    "IPADDRESS",
    "LEASE",
    "NAMESPACE",
    "NODE",
    "SERVICE",
    "SERVICECIDR",
    "node_roles",
    "node_status",
    "service_external_ip",
    "service_ports",
]

# -- Service ---------------------------------------------------------------------------

_SERVICE_COLUMNS: Final = (
    NAME,
    column(
        "Type",
        "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are"
        ' ExternalName, ClusterIP, NodePort, and LoadBalancer. "ClusterIP" allocates a'
        " cluster-internal IP address for load-balancing to endpoints. Endpoints are determined"
        " by the selector or if that is not specified, by manual construction of an Endpoints"
        ' object or EndpointSlice objects. If clusterIP is "None", no virtual IP is allocated'
        " and the endpoints are published as a set of endpoints rather than a virtual IP."
        ' "NodePort" builds on ClusterIP and allocates a port on every node which routes to the'
        ' same endpoints as the clusterIP. "LoadBalancer" builds on NodePort and creates an'
        " external load-balancer (if supported in the current cloud) which routes to the same"
        ' endpoints as the clusterIP. "ExternalName" aliases this service to the specified'
        " externalName. Several other fields do not apply to ExternalName services. More info:"
        " https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types",
    ),
    column(
        "Cluster-IP",
        "clusterIP is the IP address of the service and is usually assigned randomly. If an"
        " address is specified manually, is in-range (as per system configuration), and is not"
        " in use, it will be allocated to the service; otherwise creation of the service will"
        " fail. This field may not be changed through updates unless the type field is also"
        " being changed to ExternalName (which requires this field to be blank) or the type"
        " field is being changed from ExternalName (in which case this field may optionally be"
        ' specified, as describe above).  Valid values are "None", empty string (""), or a'
        ' valid IP address. Setting this to "None" makes a "headless service" (no virtual IP),'
        " which is useful when direct endpoint connections are preferred and proxying is not"
        " required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field"
        " is specified when creating a Service of type ExternalName, creation will fail. This"
        " field will be wiped when updating a Service to type ExternalName. More info:"
        " https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    column(
        "External-IP",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept"
        " traffic for this service.  These IPs are not managed by Kubernetes.  The user is"
        " responsible for ensuring that traffic arrives at a node with this IP.  A common"
        " example is external load-balancers that are not part of the Kubernetes system.",
    ),
    column(
        "Port(s)",
        "The list of ports that are exposed by this service. More info:"
        " https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies",
    ),
    AGE,
    column(
        "Selector",
        "Route service traffic to pods with label keys and values matching this selector. If"
        " empty or not present, the service is assumed to have an external process managing its"
        " endpoints, which Kubernetes will not modify. Only applies to types ClusterIP,"
        " NodePort, and LoadBalancer. Ignored if type is ExternalName. More info:"
        " https://kubernetes.io/docs/concepts/services-networking/service/",
        priority=1,
    ),
)


def service_external_ip(svc: JSON) -> str:
    """``getServiceExternalIP`` (wide: load-balancer addresses are never clipped)."""
    spec = get(svc, "spec") or {}
    kind = string(spec.get("type")) or "ClusterIP"
    external = [ip for ip in items(spec.get("externalIPs")) if isinstance(ip, str)]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = set()
        for entry in items(get(svc, "status", "loadBalancer", "ingress")):
            address = string(get(entry, "ip")) or string(get(entry, "hostname"))
            if address:
                ingress.add(address)
        shown = sorted(ingress) + external
        return ",".join(shown) or "<pending>"
    if kind == "ExternalName":
        return string(spec.get("externalName"))
    return "<unknown>"


def service_ports(svc: JSON) -> str:
    """``makePortString``: ``80/TCP``, ``80:31234/TCP``, comma-joined, or ``<none>``."""
    pieces = []
    for port in items(get(svc, "spec", "ports")):
        number, protocol = get(port, "port"), string(get(port, "protocol")) or "TCP"
        node_port = get(port, "nodePort")
        if isinstance(node_port, int) and node_port > 0:
            pieces.append(f"{number}:{node_port}/{protocol}")
        else:
            pieces.append(f"{number}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service(svc: JSON, now: datetime) -> list[Any]:
    spec = get(svc, "spec") or {}
    ips = [ip for ip in items(spec.get("clusterIPs")) if isinstance(ip, str)]
    if not ips and string(spec.get("clusterIP")):
        ips = [spec["clusterIP"]]
    return [
        name(svc),
        string(spec.get("type")) or "ClusterIP",
        ips[0] if ips else "<none>",
        service_external_ip(svc),
        service_ports(svc),
        age(svc, now),
        format_labels(spec.get("selector")),
    ]


# -- Node ------------------------------------------------------------------------------

_NODE_ADDRESSES_DOC: Final = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More"
    " info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field"
    " is declared as mergeable, but the merge key is not sufficiently unique, which can cause"
    " data corruption when it is merged. Callers should instead use a full-replacement patch."
    " See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can"
    " change during the lifetime of a Node. However, there are some exceptions where this may"
    " not be possible, such as Pods that inherit a Node's address in its own status or"
    " consumers of the downward API (status.hostIP)."
)
_NODE_COLUMNS: Final = (
    NAME,
    column("Status", "The status of the node"),
    column("Roles", "The roles of the node"),
    AGE,
    column("Version", "Kubelet Version reported by the node."),
    column("Internal-IP", _NODE_ADDRESSES_DOC, priority=1),
    column("External-IP", _NODE_ADDRESSES_DOC, priority=1),
    column(
        "OS-Image",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
        priority=1,
    ),
    column(
        "Kernel-Version",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
        priority=1,
    ),
    column(
        "Container-Runtime",
        "ContainerRuntime Version reported by the node through runtime remote API"
        " (e.g. containerd://1.4.2).",
        priority=1,
    ),
)
_ROLE_PREFIX: Final = "node-role.kubernetes.io/"


def node_status(node: JSON) -> str:
    """``Ready`` / ``NotReady`` / ``Unknown``, plus ``,SchedulingDisabled`` if cordoned."""
    ready = None
    for condition in items(get(node, "status", "conditions")):
        if get(condition, "type") == "Ready":
            ready = condition  # the last one wins, as in upstream's map
    if ready is None:
        status = ["Unknown"]
    else:
        status = ["Ready" if get(ready, "status") == "True" else "NotReady"]
    if get(node, "spec", "unschedulable") is True:
        status.append("SchedulingDisabled")
    return ",".join(status)


def node_roles(node: JSON) -> str:
    """Roles from ``node-role.kubernetes.io/<role>`` and ``kubernetes.io/role`` labels."""
    roles = set()
    labels = get(node, "metadata", "labels")
    for key, value in labels.items() if isinstance(labels, Mapping) else ():
        if key.startswith(_ROLE_PREFIX) and key[len(_ROLE_PREFIX) :]:
            roles.add(key[len(_ROLE_PREFIX) :])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: JSON, kind: str) -> str:
    for address in items(get(node, "status", "addresses")):
        if get(address, "type") == kind:
            return string(get(address, "address"))
    return "<none>"


def _node(node: JSON, now: datetime) -> list[Any]:
    info = get(node, "status", "nodeInfo") or {}
    return [
        name(node),
        node_status(node),
        node_roles(node),
        age(node, now),
        string(get(info, "kubeletVersion")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        string(get(info, "osImage")) or "<unknown>",
        string(get(info, "kernelVersion")) or "<unknown>",
        string(get(info, "containerRuntimeVersion")) or "<unknown>",
    ]


SERVICE: Final = Printer(_SERVICE_COLUMNS, _service)
NODE: Final = Printer(_NODE_COLUMNS, _node)

# -- Namespace, ConfigMap, Lease -------------------------------------------------------

NAMESPACE: Final = Printer(
    (NAME, column("Status", "The status of the namespace"), AGE),
    lambda ns, now: [name(ns), string(get(ns, "status", "phase")), age(ns, now)],
)


def _configmap(cm: JSON, now: datetime) -> list[Any]:
    sizes = [len(v) for v in (get(cm, "data"), get(cm, "binaryData")) if isinstance(v, Mapping)]
    return [name(cm), sum(sizes), age(cm, now)]


CONFIGMAP: Final = Printer(
    (
        NAME,
        column(
            "Data",
            "Data contains the configuration data. Each key must consist of alphanumeric"
            " characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the"
            " BinaryData field. The keys stored in Data must not overlap with the keys in the"
            " BinaryData field, this is enforced during validation process.",
        ),
        AGE,
    ),
    _configmap,
)

LEASE: Final = Printer(
    (
        NAME,
        column(
            "Holder",
            "holderIdentity contains the identity of the holder of a current lease. If"
            " Coordinated Leader Election is used, the holder identity must be equal to the"
            " elected LeaseCandidate.metadata.name field.",
        ),
        AGE,
    ),
    lambda lease, now: [name(lease), string(get(lease, "spec", "holderIdentity")), age(lease, now)],
)

# -- EndpointSlice ---------------------------------------------------------------------


def _slice_ports(eps: JSON) -> str:
    """``formatDiscoveryPorts``: the port number, else its name, else ``*``."""
    shown = []
    for port in items(get(eps, "ports")):
        number, port_name = get(port, "port"), get(port, "name")
        if isinstance(number, int) and not isinstance(number, bool):
            shown.append(str(number))
        elif isinstance(port_name, str):
            shown.append(port_name)
        else:
            shown.append("*")
    return list_with_more(shown)


def _slice_endpoints(eps: JSON) -> str:
    """``formatDiscoveryEndpoints``: every address of every endpoint, flattened."""
    return list_with_more(
        [a for ep in items(get(eps, "endpoints")) for a in strings(get(ep, "addresses"))]
    )


ENDPOINTSLICE: Final = Printer(
    (
        NAME,
        column(
            "AddressType",
            "addressType specifies the type of address carried by this EndpointSlice. All"
            " addresses in this slice must be the same type. This field is immutable after"
            " creation. The following address types are currently supported: * IPv4: Represents"
            " an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully"
            " Qualified Domain Name.",
        ),
        column(
            "Ports",
            "ports specifies the list of network ports exposed by each endpoint in this slice."
            " Each port must have a unique name. When ports is empty, it indicates that there are"
            ' no defined ports. When a port is defined with a nil port value, it indicates "all'
            ' ports". Each slice may include a maximum of 100 ports.',
        ),
        column(
            "Endpoints",
            "endpoints is a list of unique endpoints in this slice. Each slice may include a"
            " maximum of 1000 endpoints.",
        ),
        AGE,
    ),
    lambda eps, now: [
        name(eps),
        string(get(eps, "addressType")),
        _slice_ports(eps),
        _slice_endpoints(eps),
        age(eps, now),
    ],
)

# -- ServiceCIDR, IPAddress ------------------------------------------------------------

SERVICECIDR: Final = Printer(
    (
        NAME,
        column(
            "CIDRs",
            'CIDRs defines the IP blocks in CIDR notation (e.g. "192.168.0.0/24" or'
            ' "2001:db8::/64") from which to assign service cluster IPs. Max of two CIDRs is'
            " allowed, one of each IP family. This field is immutable.",
        ),
        AGE,
    ),
    lambda cidr, now: [
        name(cidr),
        ",".join(strings(get(cidr, "spec", "cidrs"))),
        age(cidr, now),
    ],
)


def _parent_ref(ip: JSON) -> str:
    """``resource[.group][/namespace]/name``, lower-cased group/resource, or ``<none>``."""
    ref = get(ip, "spec", "parentRef")
    if not isinstance(ref, Mapping):
        return "<none>"
    group, resource = string(ref.get("group")), string(ref.get("resource"))
    text = (f"{resource}.{group}" if group else resource).lower()
    if namespace := string(ref.get("namespace")):
        text += "/" + namespace
    return f"{text}/{string(ref.get('name'))}"


IPADDRESS: Final = Printer(
    (
        NAME,
        column(
            "ParentRef",
            "parentRef references the resource that an IPAddress is attached to. An IPAddress"
            " must reference a parent object.",
        ),
    ),
    lambda ip, now: [name(ip), _parent_ref(ip), age(ip, now)],  # sic: no Age column upstream
)
