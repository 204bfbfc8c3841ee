"""lbctl.kube.client against the embedded API server: verbs, patches, pagination, watch,
and every error mapped to lbctl.kube.errors."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client.exceptions import ApiException

from lbctl.apiserver.server import APIServer
from lbctl.kube import errors
from lbctl.kube.client import CONFIGMAPS, NAMESPACES, SERVICES, KubeClient, Resource, connect
from lbctl.testing import embedded_apiserver, wait_for_async


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d", bookmark_seconds=0.3) as s:
        yield s


@pytest.fixture
async def kube(server: APIServer) -> AsyncIterator[KubeClient]:
    async with await connect(kubeconfig=server.kubeconfig_path) as c:
        yield c


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"app": "x"}}, "data": dict(data)}


def svc(name: str, port: int = 80) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "a", "port": port}]},
    }


# -- resources ---------------------------------------------------------------------------
def test_resource_paths() -> None:
    assert SERVICES.path("ns", "web", "status") == "/api/v1/namespaces/ns/services/web/status"
    assert SERVICES.path() == "/api/v1/services"
    assert NAMESPACES.path(None, "x") == "/api/v1/namespaces/x"
    es = Resource("discovery.k8s.io", "v1", "endpointslices", True, "EndpointSlice")
    assert es.path("a") == "/apis/discovery.k8s.io/v1/namespaces/a/endpointslices"
    assert es.api_version == "discovery.k8s.io/v1"
    with pytest.raises(ValueError):
        SERVICES.path(None, "web")


# -- verbs -------------------------------------------------------------------------------
async def test_configmap_crud(kube: KubeClient) -> None:
    made = await kube.create(CONFIGMAPS, cm("c1", k="v"), "default")
    assert made["kind"] == "ConfigMap" and made["metadata"]["uid"]
    got = await kube.get(CONFIGMAPS, "c1", "default")
    assert got["data"] == {"k": "v"}
    got["data"]["k"] = "v2"
    replaced = await kube.replace(CONFIGMAPS, got)
    assert replaced["data"] == {"k": "v2"}
    assert int(replaced["metadata"]["resourceVersion"]) > int(made["metadata"]["resourceVersion"])
    items, rv = await kube.list(CONFIGMAPS, "default")
    assert [i["metadata"]["name"] for i in items] == ["c1"]
    assert items[0]["kind"] == "ConfigMap" and items[0]["apiVersion"] == "v1"
    assert int(rv) >= int(replaced["metadata"]["resourceVersion"])
    status = await kube.delete(CONFIGMAPS, "c1", "default")
    assert status["kind"] == "Status" and status["status"] == "Success"
    with pytest.raises(errors.NotFound) as info:
        await kube.get(CONFIGMAPS, "c1", "default")
    assert info.value.status == 404 and info.value.reason == "NotFound"
    assert "c1" in info.value.message


async def test_service_crud_and_status_replace(kube: KubeClient) -> None:
    made = await kube.create(
        SERVICES, {**svc("web"), "metadata": {"namespace": "default", "name": "web"}}
    )
    assert made["spec"]["clusterIP"] and made["spec"]["ports"][0]["nodePort"]
    body = {**made, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}}
    st = await kube.replace_status(SERVICES, body)
    assert [i["ip"] for i in st["status"]["loadBalancer"]["ingress"]] == ["192.0.2.10"]
    # The main resource ignores status; /status ignores spec.
    again = {**st, "status": {}, "spec": {**st["spec"], "externalTrafficPolicy": "Local"}}
    main = await kube.replace(SERVICES, again)
    assert main["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.10"
    assert main["spec"]["externalTrafficPolicy"] == "Local"
    deleted = await kube.delete(SERVICES, "web", "default")
    assert deleted["kind"] == "Service"


async def test_pagination_follows_continue(kube: KubeClient, server: APIServer) -> None:
    for i in range(7):
        await kube.create(CONFIGMAPS, cm(f"p{i}"), "default")
    await kube.create(CONFIGMAPS, {"metadata": {"name": "other"}}, "default")
    rv_before = str(server.store.rv)
    items, rv = await kube.list(CONFIGMAPS, "default", limit=2)
    assert [i["metadata"]["name"] for i in items] == ["other", *(f"p{i}" for i in range(7))]
    assert rv == rv_before
    picked, _ = await kube.list(CONFIGMAPS, "default", label_selector="app=x", limit=3)
    assert len(picked) == 7
    one, _ = await kube.list(CONFIGMAPS, field_selector="metadata.name=p3", limit=1)
    assert [o["metadata"]["name"] for o in one] == ["p3"]


async def test_three_patch_kinds(kube: KubeClient) -> None:
    await kube.create(SERVICES, svc("web"), "default")
    await kube.create(CONFIGMAPS, cm("c", a="1", b="2"), "default")
    # merge: null removes a key
    out = await kube.patch(CONFIGMAPS, "c", {"data": {"a": None, "c": "3"}}, "default")
    assert out["data"] == {"b": "2", "c": "3"}
    # strategic: ports merge by their "port" key (a merge patch would replace the list)
    out = await kube.patch(
        SERVICES,
        "web",
        {"spec": {"ports": [{"name": "b", "port": 81}]}},
        "default",
        kind="strategic",
    )
    assert sorted(p["port"] for p in out["spec"]["ports"]) == [80, 81]
    out = await kube.patch(
        SERVICES, "web", {"spec": {"ports": [{"name": "b", "port": 82}]}}, "default"
    )
    assert [p["port"] for p in out["spec"]["ports"]] == [82]
    # json patch, with a failing "test" op mapped too
    out = await kube.patch(
        CONFIGMAPS,
        "c",
        [
            {"op": "test", "path": "/data/b", "value": "2"},
            {"op": "replace", "path": "/data/b", "value": "9"},
        ],
        "default",
        kind="json",
    )
    assert out["data"] == {"b": "9", "c": "3"}
    with pytest.raises(errors.KubeError) as info:
        await kube.patch(
            CONFIGMAPS,
            "c",
            [{"op": "test", "path": "/data/b", "value": "0"}],
            "default",
            kind="json",
        )
    assert info.value.status in (409, 422, 500)
    # the status subresource through a patch
    out = await kube.patch(
        SERVICES,
        "web",
        {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}},
        "default",
        subresource="status",
    )
    assert out["status"]["loadBalancer"]["ingress"][0]["ip"] == "192.0.2.1"


# -- errors from the server --------------------------------------------------------------
async def test_conflict_vs_already_exists(kube: KubeClient) -> None:
    made = await kube.create(CONFIGMAPS, cm("c"), "default")
    with pytest.raises(errors.AlreadyExists) as exists:
        await kube.create(CONFIGMAPS, cm("c"), "default")
    assert exists.value.status == 409 and exists.value.reason == "AlreadyExists"
    assert not isinstance(exists.value, errors.Conflict)
    await kube.patch(CONFIGMAPS, "c", {"data": {"x": "1"}}, "default")
    with pytest.raises(errors.Conflict) as stale:
        await kube.replace(CONFIGMAPS, made)
    assert stale.value.status == 409 and stale.value.reason == "Conflict"
    with pytest.raises(errors.Conflict):
        await kube.delete(
            CONFIGMAPS,
            "c",
            "default",
            preconditions={"resourceVersion": made["metadata"]["resourceVersion"]},
        )
    await kube.get(CONFIGMAPS, "c", "default")  # still there


async def test_invalid_carries_causes(kube: KubeClient) -> None:
    with pytest.raises(errors.Invalid) as info:
        await kube.create(SERVICES, svc("bad", port=0), "default")
    e = info.value
    assert e.status == 422 and e.reason == "Invalid"
    assert any(c.field == "spec.ports[0].port" for c in e.causes)
    assert all(c.reason and c.message for c in e.causes)


async def test_not_found_namespace_and_missing_object(kube: KubeClient) -> None:
    with pytest.raises(errors.NotFound):
        await kube.create(CONFIGMAPS, cm("c"), "no-such-ns")
    with pytest.raises(errors.NotFound):
        await kube.patch(CONFIGMAPS, "nope", {"data": {}}, "default")
    with pytest.raises(errors.NotFound):
        await kube.delete(CONFIGMAPS, "nope", "default")


async def test_watch_from_compacted_rv_is_gone(kube: KubeClient, server: APIServer) -> None:
    await kube.create(CONFIGMAPS, cm("c"), "default")
    _, rv = await kube.list(CONFIGMAPS, "default")
    for i in range(3):
        await kube.patch(CONFIGMAPS, "c", {"data": {"i": str(i)}}, "default")
    server.store.history_seconds = 0

    async def compacted() -> bool:
        server.store.compact()
        return server.store.compacted_rv > int(rv)

    await wait_for_async(compacted, timeout=5, what="compaction")
    with pytest.raises(errors.Gone) as info:
        async for _ in kube.watch(CONFIGMAPS, "default", resource_version=rv, timeout_seconds=5):
            pass
    assert info.value.status == 410 and info.value.reason in ("Expired", "Gone")


async def test_unauthorized_with_wrong_token(tmp_path: Path) -> None:
    async with embedded_apiserver(tmp_path / "t", token="s3cret") as srv:
        async with await connect(server=srv.url, token="wrong") as bad:
            with pytest.raises(errors.Unauthorized) as info:
                await bad.get(NAMESPACES, "default")
            assert info.value.status == 401
        async with await connect(server=srv.url, token="s3cret") as good:
            ns = await good.get(NAMESPACES, "default")
            assert ns["metadata"]["name"] == "default"


async def test_connection_refused_is_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with await connect(server=f"http://127.0.0.1:{port}", timeout=5) as c:
        with pytest.raises(errors.TransportError) as info:
            await c.get(NAMESPACES, "default")
        assert info.value.status == 0
        with pytest.raises(errors.TransportError):
            async for _ in c.watch(NAMESPACES, resource_version=""):
                pass


async def test_bad_configuration_is_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(errors.ConfigError):
        await connect(kubeconfig=tmp_path / "missing")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(errors.ConfigError):
        await connect()


# -- watch -------------------------------------------------------------------------------
async def test_watch_streams_changes_and_bookmarks(kube: KubeClient) -> None:
    await kube.create(CONFIGMAPS, cm("before"), "default")
    _, rv = await kube.list(CONFIGMAPS, "default")
    seen: list[tuple[str, str]] = []
    bookmarks: list[str] = []
    started = asyncio.Event()

    async def consume() -> None:
        async for typ, obj in kube.watch(
            CONFIGMAPS, "default", resource_version=rv, timeout_seconds=2
        ):
            if typ == "BOOKMARK":
                bookmarks.append(obj["metadata"]["resourceVersion"])
                started.set()
                continue
            seen.append((typ, obj["metadata"]["name"]))

    async with asyncio.timeout(10):
        task = asyncio.create_task(consume())
        await started.wait()
        await kube.create(CONFIGMAPS, cm("a"), "default")
        await kube.patch(CONFIGMAPS, "a", {"data": {"k": "v"}}, "default")
        await kube.delete(CONFIGMAPS, "a", "default")
        await task  # ends by itself: timeoutSeconds
    assert seen == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert bookmarks and all(int(b) >= int(rv) for b in bookmarks)


async def test_watch_from_empty_rv_lists_first(kube: KubeClient) -> None:
    await kube.create(CONFIGMAPS, cm("x"), "default")
    async with asyncio.timeout(10):
        # A timeout, so the server ends its side soon: it only notices a client gone on a write.
        stream = kube.watch(
            CONFIGMAPS, "default", resource_version="", allow_bookmarks=False, timeout_seconds=1
        )
        typ, obj = await anext(aiter(stream))
        await stream.aclose()
    assert (typ, obj["metadata"]["name"]) == ("ADDED", "x")


# -- the mapping, table-driven -----------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "body", "headers", "cls"),
    [
        (400, {"reason": "BadRequest"}, None, errors.BadRequest),
        (401, {"reason": "Unauthorized"}, None, errors.Unauthorized),
        (403, {"reason": "Forbidden"}, None, errors.Forbidden),
        (404, {"reason": "NotFound"}, None, errors.NotFound),
        (409, {"reason": "Conflict"}, None, errors.Conflict),
        (409, {"reason": "AlreadyExists"}, None, errors.AlreadyExists),
        (410, {"reason": "Expired"}, None, errors.Gone),
        (410, {"reason": "Gone"}, None, errors.Gone),
        (422, {"reason": "Invalid", "details": {"causes": []}}, None, errors.Invalid),
        (429, {"reason": "TooManyRequests"}, {"Retry-After": "3"}, errors.TooManyRequests),
        (500, {"reason": "InternalError"}, None, errors.ServerError),
        (503, {"reason": "ServiceUnavailable"}, None, errors.ServerError),
        (405, {"reason": "MethodNotAllowed"}, None, errors.KubeError),
    ],
)
def test_status_mapping(
    status: int, body: dict[str, Any], headers: dict[str, str] | None, cls: type[errors.KubeError]
) -> None:
    e = errors.from_status(status, {**body, "message": "m", "code": status}, headers)
    assert type(e) is cls
    assert (e.status, e.reason, e.message) == (status, body["reason"], "m")
    if isinstance(e, errors.TooManyRequests):
        assert e.retry_after == 3.0


def test_watch_error_event_uses_its_code() -> None:
    e = errors.from_status(0, {"kind": "Status", "reason": "Expired", "code": 410, "message": "m"})
    assert isinstance(e, errors.Gone) and e.status == 410


def test_client_library_exceptions_are_mapped() -> None:
    api = ApiException(status=404, reason="Not Found")
    api.body = b'{"kind":"Status","reason":"NotFound","message":"x not found","code":404}'
    e = errors.map_exception(api)
    assert isinstance(e, errors.NotFound) and e.message == "x not found"
    assert isinstance(
        errors.map_exception(aiohttp.ClientConnectionError("refused")), errors.TransportError
    )
    assert isinstance(errors.map_exception(TimeoutError()), errors.TransportError)
    assert isinstance(errors.map_exception(ConnectionResetError()), errors.TransportError)
    retry = errors.from_response(429, b"not json", {"Retry-After": "7"})
    assert isinstance(retry, errors.TooManyRequests) and retry.retry_after == 7.0
    assert retry.message == "not json"


# -- proxy environment -----------------------------------------------------------------
async def test_the_proxy_environment_is_honoured_once_per_client(
    server: APIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP(S)_PROXY / NO_PROXY are read at connect time (not per request) and still
    decide whether requests go through the proxy."""
    from aiohttp import web

    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.Response(status=503, text="proxy says no")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        for var in ("http_proxy", "https_proxy", "no_proxy", "NO_PROXY"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        async with await connect(kubeconfig=server.kubeconfig_path) as via_proxy:
            with pytest.raises(errors.KubeError):
                await via_proxy.get(NAMESPACES, "default")
        assert seen, "the request did not go through HTTP(S)_PROXY"
        seen.clear()
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with await connect(kubeconfig=server.kubeconfig_path) as direct:
            got = await direct.get(NAMESPACES, "default")
        assert got["metadata"]["name"] == "default"
        assert not seen, "NO_PROXY was not honoured"
    finally:
        await runner.cleanup()
