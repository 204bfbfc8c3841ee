"""The Kubernetes edge: the only package that imports kubernetes_asyncio.

- :mod:`.client`: :func:`connect` and :class:`KubeClient`, verbs on plain JSON dicts, and
  :class:`Resource` with the kinds lbctl uses (``SERVICES``, ``NODES``, ...).
- :mod:`.errors`: the error tree; no client-library exception leaves this package.
- :mod:`.informer`: :class:`Informer`, list + watch into a cache with handlers, indexes,
  resume from the last resourceVersion and relist on 410.
- :mod:`.events`: :class:`EventRecorder`, core/v1 Events with repeats aggregated.
- :mod:`.lease`: :class:`KubeLeaseStore`, leader election's ``LeaseStore`` on a Lease.
"""

from lbctl.kube.client import (
    CONFIGMAPS,
    ENDPOINTSLICES,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    SERVICES,
    KubeClient,
    PatchKind,
    Resource,
    connect,
)
from lbctl.kube.errors import (
    AlreadyExists,
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    KubeError,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
    Unauthorized,
)
from lbctl.kube.events import EventRecorder, EventType
from lbctl.kube.informer import Informer, ListWatcher, object_key
from lbctl.kube.lease import KubeLeaseStore

__all__ = [
    "CONFIGMAPS",
    "ENDPOINTSLICES",
    "EVENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "SERVICES",
    "AlreadyExists",
    "BadRequest",
    "ConfigError",
    "Conflict",
    "EventRecorder",
    "EventType",
    "Forbidden",
    "Gone",
    "Informer",
    "Invalid",
    "KubeClient",
    "KubeError",
    "KubeLeaseStore",
    "ListWatcher",
    "NotFound",
    "PatchKind",
    "Resource",
    "ServerError",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "connect",
    "object_key",
]
