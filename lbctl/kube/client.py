"""A thin client over plain JSON dicts: the one transport boundary to the API server.

Requests go through kubernetes_asyncio's ``ApiClient.call_api(..., _preload_content=False)``
(its auth, TLS and kubeconfig handling, none of its typed models): ``dict``s in and out,
exactly what the server sent; faster than the models and identical against the embedded
and the real kube-apiserver. Every failure is one of :mod:`lbctl.kube.errors`.

- :class:`Resource` says where a kind lives (constants ``SERVICES``, ``NODES``, ...).
- :func:`connect`: from a kubeconfig, a server URL + token, or the in-cluster account.
- :class:`KubeClient`: get / list (following ``continue``) / create / replace / patch /
  replace_status / delete, and a watch that reads the chunked stream line by line and
  raises the mapped error of an ERROR event (:class:`~.errors.Gone` for 410).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

from lbctl.kube import errors

__all__ = [
    "CONFIGMAPS", "ENDPOINTSLICES", "EVENTS", "IPPOOLS", "L2ADVERTISEMENTS", "LEASES",
    "NAMESPACES", "NODES", "SERVICES", "JSONDict", "KubeClient", "PatchKind", "Resource", "connect",
]  # fmt: skip

JSONDict = dict[str, Any]
PatchKind = Literal["merge", "strategic", "json"]

_PATCH_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
USER_AGENT = "lbctl/0.1"


@dataclass(frozen=True, slots=True)
class Resource:
    """A served kind: ``group`` ("" for core), ``version``, ``plural``, scope and ``kind``."""

    group: str
    version: str
    plural: str
    namespaced: bool
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path; a namespaced kind without ``namespace`` is the all-namespaces list."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        elif self.namespaced and name is not None:
            raise ValueError(f"{self.plural} are namespaced: a namespace is required")
        path = f"{base}/{self.plural}"
        if name is not None:
            if not name:
                raise ValueError("an empty name")
            path += f"/{name}"
            if subresource:
                path += f"/{subresource}"
        return path


SERVICES = Resource("", "v1", "services", True, "Service")
NODES = Resource("", "v1", "nodes", False, "Node")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", True, "EndpointSlice")
EVENTS = Resource("", "v1", "events", True, "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", True, "Lease")
NAMESPACES = Resource("", "v1", "namespaces", False, "Namespace")
CONFIGMAPS = Resource("", "v1", "configmaps", True, "ConfigMap")
IPPOOLS = Resource("lbctl.io", "v1alpha1", "ippools", False, "IPPool")
L2ADVERTISEMENTS = Resource("lbctl.io", "v1alpha1", "l2advertisements", False, "L2Advertisement")


class _TokenBucket:
    """Client-side rate limit (client-go's ``QPS``/``Burst``): ``burst`` at once, then ``qps``."""

    def __init__(self, qps: float, burst: int) -> None:
        self._qps, self._burst = qps, float(max(1, burst))
        self._tokens, self._last = self._burst, time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
            self._last = now
            if self._tokens >= 1:
                self._tokens -= 1
                return
            await asyncio.sleep((1 - self._tokens) / self._qps)
            self._tokens, self._last = 0.0, time.monotonic()


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _query(**params: str | int | None) -> list[tuple[str, str]]:
    """Query parameters (camelCase, as the API names them), unset ones left out."""
    return [(k, str(v)) for k, v in params.items() if v is not None and v != ""]


class KubeClient:
    """Plain-JSON verbs on one ``ApiClient``; build it with :func:`connect`."""

    def __init__(
        self, api: Any, *, qps: float | None = 50.0, burst: int = 100, timeout: float = 30.0
    ) -> None:
        """``api``: a kubernetes_asyncio ``ApiClient`` (owned: :meth:`close` closes it).

        ``qps``/``burst``: client-side rate limit (None = unlimited; 50/100 is generous for
        one controller, well under kube-apiserver's default priority-and-fairness shares).
        ``timeout``: seconds for one request, and for connecting a watch.
        """
        self._api = api
        self._api.user_agent = USER_AGENT
        self._limiter = _TokenBucket(qps, burst) if qps else None
        self._timeout = timeout

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- transport ---------------------------------------------------------------------
    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; return the (unread) response, or raise the mapped error."""
        if self._limiter is not None:
            await self._limiter.acquire()
        try:
            resp: aiohttp.ClientResponse = await self._api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout or aiohttp.ClientTimeout(total=self._timeout),
            )
            if resp.status < 300:
                return resp
            try:
                data = await resp.read()
            finally:
                resp.release()
        except errors.CLIENT_EXCEPTIONS as e:
            raise errors.map_exception(e) from e
        raise errors.from_response(resp.status, data, resp.headers)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSONDict:
        resp = await self._open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = await resp.read()
        except errors.CLIENT_EXCEPTIONS as e:
            raise errors.map_exception(e) from e
        finally:
            resp.release()
        try:
            out = json.loads(data) if data.strip() else {}
        except ValueError:
            out = None
        if not isinstance(out, dict):
            raise errors.TransportError(f"{method} {path}: not a JSON object: {data[:200]!r}")
        return out

    # -- verbs -------------------------------------------------------------------------
    async def get(self, res: Resource, name: str, namespace: str | None = None) -> JSONDict:
        return await self._call("GET", res.path(namespace, name))

    async def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[JSONDict], str]:
        """All matching objects (pages of ``limit`` joined) and the list's resourceVersion.

        The resourceVersion is the first page's: a watch from it misses nothing even where
        later pages are not one snapshot. Items get the ``kind``/``apiVersion`` a list
        leaves out, so listed and watched objects look alike. An expired continue token
        (410) falls back to one unpaginated list, as client-go's pager does.
        """
        base = _query(labelSelector=label_selector, fieldSelector=field_selector)
        items: list[JSONDict] = []
        rv = token = ""
        while True:
            query = [*base, *_query(limit=limit or None), *(("continue", t) for t in [token] if t)]
            try:
                page = await self._call("GET", res.path(namespace), query=query)
            except errors.Gone:
                if not token:
                    raise
                items, token, limit = [], "", None
                continue
            meta = _meta(page)
            if not token:
                rv = str(meta.get("resourceVersion") or "")
            for item in page.get("items") or []:
                items.append({"apiVersion": res.api_version, "kind": res.kind, **item})
            token = str(meta.get("continue") or "")
            if not token:
                return items, rv

    async def create(
        self, res: Resource, obj: Mapping[str, Any], namespace: str | None = None
    ) -> JSONDict:
        """POST ``obj``; ``namespace`` defaults to ``obj.metadata.namespace``."""
        ns = namespace or _meta(obj).get("namespace")
        if res.namespaced and not ns:
            raise ValueError(f"{res.plural} are namespaced: a namespace is required")
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return await self._call("POST", res.path(ns), body=body)

    async def replace(self, res: Resource, obj: Mapping[str, Any]) -> JSONDict:
        """PUT ``obj`` (its metadata.resourceVersion, if any, is the precondition)."""
        return await self._put(res, obj, None)

    async def replace_status(self, res: Resource, obj: Mapping[str, Any]) -> JSONDict:
        """PUT ``obj`` to the ``/status`` subresource."""
        return await self._put(res, obj, "status")

    async def _put(self, res: Resource, obj: Mapping[str, Any], sub: str | None) -> JSONDict:
        meta = _meta(obj)
        path = res.path(meta.get("namespace"), str(meta.get("name") or ""), sub)
        body = {"apiVersion": res.api_version, "kind": res.kind, **obj}
        return await self._call("PUT", path, body=body)

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        namespace: str | None = None,
        *,
        kind: PatchKind = "merge",
        subresource: str | None = None,
    ) -> JSONDict:
        """PATCH: ``merge`` (RFC 7386), ``strategic`` (built-in kinds) or ``json`` (RFC 6902,
        ``patch`` a list of operations)."""
        return await self._call(
            "PATCH",
            res.path(namespace, name, subresource),
            body=patch if isinstance(patch, Mapping) else list(patch),
            content_type=_PATCH_TYPES[kind],
        )

    async def delete(
        self,
        res: Resource,
        name: str,
        namespace: str | None = None,
        *,
        preconditions: Mapping[str, str] | None = None,
        propagation_policy: str | None = None,
    ) -> JSONDict:
        """DELETE; ``preconditions``: ``{"uid": ..., "resourceVersion": ...}`` (409 if stale).

        Returns what the server answers: the object (Services, or one held by finalizers)
        or a ``Status``.
        """
        opts = {"preconditions": preconditions, "propagationPolicy": propagation_policy}
        body = {k: v for k, v in opts.items() if v}
        if body:
            body = {"kind": "DeleteOptions", "apiVersion": "v1", **body}
        return await self._call("DELETE", res.path(namespace, name), body=body or None)

    async def watch(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int | None = None,
        allow_bookmarks: bool = True,
    ) -> AsyncGenerator[tuple[str, JSONDict], None]:
        """``(type, object)`` for each event after ``resource_version`` ("" or "0": the
        current objects as ADDED first), BOOKMARKs included, until the server ends the
        stream (``timeout_seconds``). An ERROR event raises its mapped error (410 ->
        :class:`~.errors.Gone`); a broken stream raises :class:`~.errors.TransportError`.
        """
        query = [("watch", "true"), ("resourceVersion", resource_version)]
        query += _query(
            allowWatchBookmarks="true" if allow_bookmarks else None,
            labelSelector=label_selector,
            fieldSelector=field_selector,
            timeoutSeconds=timeout_seconds,
        )
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self._timeout,
            sock_read=(timeout_seconds + self._timeout) if timeout_seconds else None,
        )
        resp = await self._open("GET", res.path(namespace), query=query, timeout=timeout)
        try:
            pending = b""
            while True:
                try:
                    chunk = await resp.content.readany()
                except errors.CLIENT_EXCEPTIONS as e:
                    raise errors.map_exception(e) from e
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    if line.strip():
                        yield _event(line)
            if pending.strip():
                yield _event(pending)
        finally:
            resp.close()


def _event(line: bytes) -> tuple[str, JSONDict]:
    try:
        ev = json.loads(line)
        typ, obj = str(ev["type"]), ev["object"]
    except (ValueError, KeyError, TypeError) as e:
        raise errors.TransportError(f"undecodable watch event: {line[:200]!r}") from e
    if not isinstance(obj, dict):
        raise errors.TransportError(f"watch event without an object: {line[:200]!r}")
    if typ == "ERROR":
        raise errors.from_status(0, obj)
    return typ, obj


def _resolve_proxy_once(api: Any, cfg: Any) -> None:
    """Read the proxy environment once, here, instead of on every request.

    kubernetes_asyncio's session has ``trust_env=True``: aiohttp then looks up the proxy
    variables and reads ``~/.netrc`` (in a thread) for every request, a third of the
    controller's CPU at 10,000 Services. The answer never changes for one API server,
    so ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` are honoured by resolving them now."""
    if cfg.proxy is None:
        host = urllib.parse.urlsplit(cfg.host).hostname or ""
        proxies = urllib.request.getproxies_environment()
        scheme = urllib.parse.urlsplit(cfg.host).scheme or "https"
        proxy = proxies.get(scheme)
        if proxy and not urllib.request.proxy_bypass(host):
            cfg.proxy = proxy
            api.rest_client.proxy = proxy
    session = getattr(api.rest_client, "pool_manager", None)
    if session is not None and hasattr(session, "_trust_env"):
        session._trust_env = False


async def connect(
    *,
    kubeconfig: Path | None = None,
    context: str | None = None,
    server: str | None = None,
    token: str | None = None,
    ca_file: Path | None = None,
    insecure: bool = False,
    qps: float | None = 50.0,
    burst: int = 100,
    timeout: float = 30.0,
) -> KubeClient:
    """A :class:`KubeClient` for ``server`` (+ ``token``, ``ca_file``), else ``kubeconfig``
    (+ ``context``), else the in-cluster service account. Raises
    :class:`~.errors.ConfigError` when that configuration is unusable."""
    cfg = k8s_client.Configuration()
    try:
        if server is not None:
            cfg.host = server.rstrip("/")
            if token:
                cfg.api_key["BearerToken"] = f"Bearer {token}"
            if ca_file is not None:
                cfg.ssl_ca_cert = str(ca_file)
            cfg.verify_ssl = not insecure
        elif kubeconfig is not None:
            await k8s_config.load_kube_config(
                config_file=str(kubeconfig),
                context=context,
                client_configuration=cfg,
                persist_config=False,
            )
        else:
            k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        api = k8s_client.ApiClient(configuration=cfg)
        _resolve_proxy_once(api, cfg)
    except (*errors.CLIENT_EXCEPTIONS, ValueError) as e:
        raise errors.ConfigError(f"{type(e).__name__}: {e}") from e
    return KubeClient(api, qps=qps, burst=burst, timeout=timeout)
