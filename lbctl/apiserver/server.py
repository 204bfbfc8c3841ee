"""The embedded API server: HTTP edge, authentication, bootstrap and background loops."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import logging
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from lbctl.allocators.findings import Finding
from lbctl.allocators.nodeport import PortRange
from lbctl.apimachinery import discovery, tables
from lbctl.apimachinery.resources import Registry, ResourceType, default_registry
from lbctl.apiserver import errors
from lbctl.apiserver.certs import ensure_serving_cert
from lbctl.apiserver.handlers import Handlers
from lbctl.apiserver.meta import now_rfc3339
from lbctl.apiserver.routing import Target, parse_bool, resolve
from lbctl.apiserver.services import ServiceRegistry
from lbctl.apiserver.store import Change, Delete, Put, Store
from lbctl.apiserver.watch import serve_watch

__all__ = ["APIServer", "APIServerConfig"]

log = logging.getLogger("lbctl.apiserver")
JSON = dict[str, Any]
MAX_BODY = 3 * 1024 * 1024
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_PUBLIC_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/version"})
_JSON_TYPES = ("application/json", "", "*/*")
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


@dataclass(slots=True)
class APIServerConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    """0 picks a free port."""
    service_cidrs: tuple[str, ...] = ("10.96.0.0/12",)
    port_range: PortRange = field(default_factory=lambda: PortRange.parse("30000-32767"))
    tls: bool = False
    token: str | None = None
    history_seconds: float = 300.0
    compact_seconds: float = 30.0
    repair_seconds: float = 180.0
    bookmark_seconds: float = 10.0
    extra_types: tuple[ResourceType, ...] = ()


class APIServer:
    def __init__(self, config: APIServerConfig) -> None:
        self.config = config
        self.registry: Registry = default_registry(config.extra_types)
        self.store = Store(config.data_dir / "state.db", history_seconds=config.history_seconds)
        self.services = ServiceRegistry(cidrs=config.service_cidrs, port_range=config.port_range)
        self.handlers = Handlers(
            store=self.store,
            services=self.services,
            on_namespace_terminating=self._schedule_namespace_cleanup,
        )
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._terminating: set[str] = set()
        self._cleanup_scheduled = False
        self._closing = asyncio.Event()
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------
    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{self.config.host}:{self.port}"

    @property
    def kubeconfig_path(self) -> Path:
        return self.config.data_dir / "kubeconfig"

    async def start(self) -> None:
        self.store.open()
        self._bootstrap()
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        ctx = None
        if self.config.tls:
            cert, key = ensure_serving_cert(self.config.data_dir)
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=ctx)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self._write_kubeconfig()
        self.store.subscribe(self._watch_namespaces)
        self._tasks = [
            asyncio.create_task(self._every(self.config.compact_seconds, self.store.compact)),
            asyncio.create_task(self._every(self.config.repair_seconds, self.repair)),
        ]
        log.info("API server listening on %s", self.url)

    async def stop(self) -> None:
        self._closing.set()  # open watches end within a second
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.store.close()

    async def _every(self, seconds: float, fn: Any) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                fn()
            except Exception:  # a background pass must never stop the server
                log.exception("background pass %s failed", getattr(fn, "__name__", fn))

    def _write_kubeconfig(self) -> None:
        cluster: JSON = {"server": self.url}
        if self.config.tls:
            pem = (self.config.data_dir / "apiserver.crt").read_bytes()
            cluster["certificate-authority-data"] = base64.b64encode(pem).decode()
        user: JSON = {"token": self.config.token} if self.config.token else {}
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lbctl", "cluster": cluster}],
            "users": [{"name": "lbctl-admin", "user": user}],
            "contexts": [
                {
                    "name": "lbctl",
                    "context": {"cluster": "lbctl", "user": "lbctl-admin", "namespace": "default"},
                }
            ],
            "current-context": "lbctl",
        }
        self.kubeconfig_path.parent.mkdir(parents=True, exist_ok=True)
        self.kubeconfig_path.write_text(yaml.safe_dump(doc, sort_keys=False))
        self.kubeconfig_path.chmod(0o600)

    # -- bootstrap and repair ------------------------------------------------------------
    def _rt(self, group: str, plural: str) -> ResourceType:
        for rt in self.registry:
            if (rt.group, rt.plural) == (group, plural):
                return rt
        raise KeyError(plural)

    def _bootstrap(self) -> None:
        ns_rt = self._rt("", "namespaces")
        for ns in SYSTEM_NAMESPACES:
            if self.store.get(("", "namespaces"), "", ns) is None:
                self.handlers.create(Target(ns_rt, ""), {"metadata": {"name": ns}}, dry_run=False)
        findings = self.services.rebuild(self.store.items(("", "services")), initial=True)
        self._report(findings)
        svc_rt = self._rt("", "services")
        if self.store.get(("", "services"), "default", "kubernetes") is None:
            first = str(self.services.cluster_ips.ranges[0].first())
            body = {
                "metadata": {
                    "name": "kubernetes",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": first,
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                },
            }
            self.handlers.create(Target(svc_rt, "default"), body, dry_run=False)
        cidr_rt = self._rt("networking.k8s.io", "servicecidrs")
        if self.store.get(("networking.k8s.io", "servicecidrs"), "", "kubernetes") is None:
            obj = {
                "apiVersion": cidr_rt.api_version,
                "kind": "ServiceCIDR",
                "metadata": {
                    "name": "kubernetes",
                    "uid": _uid(),
                    "creationTimestamp": now_rfc3339(),
                },
                "spec": {"cidrs": list(self.config.service_cidrs)},
                "status": {
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "lastTransitionTime": now_rfc3339(),
                            "reason": "",
                            "message": "Kubernetes Service CIDR is ready",
                        }
                    ]
                },
            }
            self.store.write([Put("networking.k8s.io", "servicecidrs", obj, True)])
        for ns in self._terminating_namespaces():
            self._terminating.add(ns)
        if self._terminating:
            self._schedule_namespace_cleanup("")

    def repair(self) -> list[Finding]:
        """Rebuild the allocators from the Services; report what did not add up."""
        findings = self.services.rebuild(self.store.items(("", "services")), initial=False)
        self._report(findings)
        return findings

    def _report(self, findings: list[Finding]) -> None:
        """Each finding becomes a Warning Event (on its Service, or in default)."""
        if not findings:
            return
        ops: list[Put | Delete] = []
        now = now_rfc3339()
        for f in findings:
            ns, _, name = f.owner.partition("/") if f.owner else ("default", "", "")
            involved = self.store.get(("", "services"), ns, name) if name else None
            meta = (involved or {}).get("metadata") or {}
            log.warning("repair: %s", f)
            ops.append(
                Put(
                    "",
                    "events",
                    {
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {
                            "name": f"{name or 'ipallocator'}.{_uid()[:16]}",
                            "namespace": ns,
                            "uid": _uid(),
                            "creationTimestamp": now,
                        },
                        "involvedObject": {
                            "kind": "Service",
                            "namespace": ns,
                            "name": name,
                            "uid": meta.get("uid", ""),
                            "apiVersion": "v1",
                        },
                        "reason": str(f.kind),
                        "message": f.message or str(f),
                        "type": "Warning",
                        "source": {"component": "lbctl-apiserver-repair"},
                        "reportingComponent": "lbctl-apiserver-repair",
                        "firstTimestamp": now,
                        "lastTimestamp": now,
                        "count": 1,
                    },
                    True,
                )
            )
        self.store.write(ops)

    # -- namespaces --------------------------------------------------------------------
    def _terminating_namespaces(self) -> list[str]:
        return [
            o["metadata"]["name"]
            for o in self.store.items(("", "namespaces"))
            if o["metadata"].get("deletionTimestamp")
        ]

    def _watch_namespaces(self, changes: Any) -> None:
        if any(isinstance(c, Change) and c.namespace in self._terminating for c in changes):
            self._schedule_namespace_cleanup("")

    def _schedule_namespace_cleanup(self, name: str) -> None:
        if name:
            self._terminating.add(name)
        if self._cleanup_scheduled:
            return
        self._cleanup_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._cleanup_namespaces)
        except RuntimeError:  # no loop yet (bootstrap): run at once
            self._cleanup_namespaces()

    def _cleanup_namespaces(self) -> None:
        """Empty every Terminating namespace; finalize the ones that are empty."""
        self._cleanup_scheduled = False
        ns_rt = self._rt("", "namespaces")
        for ns in sorted(self._terminating):
            left = 0
            for (group, plural), obj in list(self.store.namespaces_in_use(ns)):
                rt = self._rt(group, plural)
                meta = obj["metadata"]
                left += 1
                if meta.get("deletionTimestamp"):
                    continue
                with contextlib.suppress(errors.APIError):
                    self.handlers.delete(Target(rt, ns, meta["name"]), {}, dry_run=False)
            if left and any(True for _ in self.store.namespaces_in_use(ns)):
                continue
            self._terminating.discard(ns)
            ns_obj = self.store.get(("", "namespaces"), "", ns)
            if ns_obj is None:
                continue
            spec = dict(ns_obj.get("spec") or {})
            spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
            with contextlib.suppress(errors.APIError):
                self.handlers.update(
                    Target(ns_rt, "", ns, "finalize"), {**ns_obj, "spec": spec}, dry_run=False
                )

    # -- HTTP ------------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        token = self.config.token
        if token is None or request.path in _PUBLIC_PATHS:
            return True
        header = request.headers.get("Authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else ""
        return hmac.compare_digest(given.encode(), token.encode())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            if not self._authorized(request):
                raise errors.unauthorized()
            return await self._dispatch(request)
        except errors.APIError as e:
            return _json(e.body(), status=e.code)
        except web.HTTPRequestEntityTooLarge:
            return _json(errors.too_large(MAX_BODY).body(), status=413)
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as e:  # never a traceback to the client
            log.exception("internal error on %s %s", request.method, request.path)
            return _json(errors.internal(f"{type(e).__name__}: {e}").body(), status=500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok", content_type="text/plain")
        if path == "/version":
            return _json(discovery.version_info())
        if path == "/openapi/v2":
            return web.Response(
                body=discovery.OPENAPI_V2_PROTOBUF, content_type=discovery.OPENAPI_V2_CONTENT_TYPE
            )
        parts = [p for p in path.split("/") if p]
        accept = request.headers.get("Accept", "")
        if parts[:1] == ["api"]:
            group, version, rest = "", (parts[1] if len(parts) > 1 else ""), parts[2:]
        elif parts[:1] == ["apis"]:
            group = parts[1] if len(parts) > 1 else ""
            version = parts[2] if len(parts) > 2 else ""
            rest = parts[3:]
        else:
            raise _not_found()
        if request.method == "GET" and not rest:
            return self._discovery(group, version, parts[0] == "api", accept)
        if not version or not rest:
            raise _not_found()
        target = resolve(self.registry, group, version, rest)
        return await self._resource(request, target, accept)

    def _discovery(self, group: str, version: str, legacy: bool, accept: str) -> web.Response:
        if not version and (legacy or not group):
            if discovery.accepts_aggregated(accept):
                return _json(
                    discovery.aggregated_discovery(self.registry, legacy=legacy),
                    content_type=discovery.AGGREGATED_CONTENT_TYPE,
                )
            if legacy:
                return _json(discovery.api_versions(f"{self.config.host}:{self.port}"))
            return _json(discovery.api_group_list(self.registry))
        doc: JSON | None
        if not version:
            doc = discovery.api_group(self.registry, group)
        else:
            doc = discovery.api_resource_list(self.registry, group, version)
        if doc is None:
            raise _not_found()
        return _json(doc)

    async def _body(self, request: web.Request) -> JSON:
        raw = await request.read()
        ctype = (request.content_type or "").lower()
        try:
            if ctype in _YAML_TYPES:
                data = yaml.safe_load(raw.decode("utf-8"))
            elif ctype in _JSON_TYPES or ctype.endswith("+json"):
                data = json.loads(raw) if raw.strip() else None
            else:
                raise errors.unsupported_media_type(ctype)
        except (ValueError, yaml.YAMLError) as e:
            raise errors.bad_request(f"error decoding request body: {e}") from None
        if not isinstance(data, dict):
            raise errors.bad_request("the request body must be a JSON object")
        return data

    async def _resource(self, req: web.Request, t: Target, accept: str) -> web.StreamResponse:
        rt, q, method = t.rt, req.query, req.method
        dry = "All" in q.getall("dryRun", [])
        verb = _verb(method, t, q)
        if verb not in rt.verbs and not (t.subresource and verb in ("get", "update", "patch")):
            raise errors.method_not_allowed(
                "the server does not allow this method on the requested resource"
            )
        table = discovery.accepts_table(accept)
        if verb == "watch":
            ns = t.namespace if rt.namespaced and t.namespace else None
            return await serve_watch(
                req,
                store=self.store,
                rt=rt,
                namespace=ns,
                query=q,
                render=lambda typ, obj, first: (
                    self._render_one(rt, obj, q, first) if table else obj
                ),
                bookmark_seconds=self.config.bookmark_seconds,
                closing=self._closing,
            )
        if verb == "list":
            items, meta = self.handlers.list(t, q)
            if table:
                return _json(self._table(rt, items, q, meta))
            # Items of a list carry no kind/apiVersion (the list says it), as upstream.
            bare = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
            return _json(
                {
                    "kind": rt.list_kind,
                    "apiVersion": rt.api_version,
                    "metadata": meta,
                    "items": bare,
                }
            )
        if verb == "get":
            obj = self.handlers.get(t)
            return _json(
                self._table(rt, [obj], q, {"resourceVersion": str(self.store.rv)}) if table else obj
            )
        if verb == "create":
            return _json(self.handlers.create(t, await self._body(req), dry_run=dry), status=201)
        if verb == "update":
            obj, created = self.handlers.update(t, await self._body(req), dry_run=dry)
            return _json(obj, status=201 if created else 200)
        if verb == "patch":
            body = await req.read()
            return _json(self.handlers.patch(t, body, req.content_type or "", dry_run=dry))
        if verb == "delete":
            options = await self._delete_options(req)
            obj, code = self.handlers.delete(t, options, dry_run=dry)
            return _json(obj, status=code)
        if verb == "deletecollection":
            return _json(self.handlers.delete_collection(t, q, dry_run=dry))
        raise errors.method_not_allowed("the server does not allow this method")

    async def _delete_options(self, req: web.Request) -> JSON:
        raw = await req.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise errors.bad_request(f"error decoding DeleteOptions: {e}") from None
        return data if isinstance(data, dict) else {}

    def _table(self, rt: ResourceType, items: list[JSON], q: Any, meta: JSON) -> JSON:
        include = q.get("includeObject", "Metadata")
        try:
            out = tables.to_table(
                rt,
                items,
                resource_version=meta.get("resourceVersion", ""),
                now=datetime.now(UTC),
                include_object=include,
            )
        except tables.TableError as e:
            raise errors.bad_request(str(e)) from None
        if meta.get("continue"):
            out["metadata"]["continue"] = meta["continue"]
        return out

    def _render_one(self, rt: ResourceType, obj: JSON, q: Any, first: bool) -> JSON:
        out = self._table(
            rt, [obj], q, {"resourceVersion": obj["metadata"].get("resourceVersion", "")}
        )
        if not first:
            out["columnDefinitions"] = None
        return out


def _verb(method: str, t: Target, q: Any) -> str:
    if method == "GET":
        if t.is_collection:
            return "watch" if parse_bool(q, "watch") else "list"
        return "get"
    return {
        ("POST", True): "create",
        ("DELETE", True): "deletecollection",
        ("PUT", False): "update",
        ("PATCH", False): "patch",
        ("DELETE", False): "delete",
    }.get((method, t.is_collection), "unknown")


def _not_found() -> errors.APIError:
    return errors.APIError(404, "NotFound", "the server could not find the requested resource", {})


def _json(body: Any, *, status: int = 200, content_type: str = "application/json") -> web.Response:
    text = json.dumps(body, separators=(",", ":"))
    resp = web.Response(text=text, status=status)
    resp.headers["Content-Type"] = content_type
    return resp


def _uid() -> str:
    return str(uuid.uuid4())
