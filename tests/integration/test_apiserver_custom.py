"""lbctl's own kinds through the registry: schema validation, defaults, printer columns,
status subresource, generation; plus deletecollection and the repair pass."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from lbctl.apimachinery.resources import PrinterColumn, ResourceType
from lbctl.apiserver.server import APIServer
from lbctl.testing import embedded_apiserver

WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "minimum": 1},
                "colour": {"type": "string", "enum": ["red", "blue"], "default": "red"},
            },
        },
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
WIDGETS = ResourceType(
    "test.lbctl.io",
    "v1alpha1",
    "Widget",
    "widgets",
    "widget",
    True,
    ("wd",),
    status_subresource=True,
    generation=True,
    schema=WIDGET_SCHEMA,
    unconditional_update=False,
    printer_columns=(
        PrinterColumn("Size", "integer", ".spec.size"),
        PrinterColumn("Colour", "string", ".spec.colour"),
        PrinterColumn("Age", "date", ".metadata.creationTimestamp"),
    ),
)
GROUP, VERSION, PLURAL = "test.lbctl.io", "v1alpha1", "widgets"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[APIServer]:
    async with embedded_apiserver(tmp_path / "d", extra_types=(WIDGETS,)) as s:
        yield s


@pytest.fixture
async def custom(server: APIServer) -> AsyncIterator[client.CustomObjectsApi]:
    cfg = client.Configuration()
    await config.load_kube_config(config_file=str(server.kubeconfig_path), client_configuration=cfg)
    async with client.ApiClient(configuration=cfg) as api:
        yield client.CustomObjectsApi(api)


def widget(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": spec,
    }


async def test_schema_defaults_pruning_and_422(custom: client.CustomObjectsApi) -> None:
    got = await custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("w", size=2, unknown="x")
    )
    assert got["spec"] == {"size": 2, "colour": "red"}, "defaulted and pruned"
    assert got["metadata"]["generation"] == 1
    with pytest.raises(ApiException) as info:
        await custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, widget("bad", size="big", colour="green")
        )
    assert info.value.status == 422
    causes = json.loads(info.value.body)["details"]["causes"]
    assert {(c["field"], c["reason"]) for c in causes} == {
        ("spec.size", "FieldValueTypeInvalid"),
        ("spec.colour", "FieldValueNotSupported"),
    }


async def test_status_subresource_and_generation(custom: client.CustomObjectsApi) -> None:
    await custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("g", size=1)
    )
    merge = "application/merge-patch+json"
    got = await custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "g",
        {"status": {"ready": True}, "spec": {"size": 9}},
        _content_type=merge,
    )
    assert got["status"] == {"ready": True} and got["spec"]["size"] == 1
    assert got["metadata"]["generation"] == 1, "status never bumps generation"
    got = await custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "g",
        {"spec": {"size": 3}, "status": {"ready": False}},
        _content_type=merge,
    )
    assert got["metadata"]["generation"] == 2 and got["status"] == {"ready": True}
    got = await custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "g",
        {"metadata": {"labels": {"a": "b"}}},
        _content_type=merge,
    )
    assert got["metadata"]["generation"] == 2, "metadata changes do not bump generation"


async def test_put_needs_resource_version_and_smp_is_415(
    server: APIServer, custom: client.CustomObjectsApi
) -> None:
    await custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("p", size=1)
    )
    url = f"{server.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}/p"
    async with aiohttp.ClientSession() as s:
        async with s.put(url, json=widget("p", size=5)) as r:
            assert r.status == 422
            assert (await r.json())["details"]["causes"][0]["field"] == "metadata.resourceVersion"
        async with s.patch(
            url, data="{}", headers={"Content-Type": "application/strategic-merge-patch+json"}
        ) as r:
            assert r.status == 415


async def test_printer_columns_in_tables(
    server: APIServer, custom: client.CustomObjectsApi
) -> None:
    await custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, widget("t", size=4, colour="blue")
    )
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with (
        aiohttp.ClientSession() as s,
        s.get(
            f"{server.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}",
            headers={"Accept": accept},
        ) as r,
    ):
        table = await r.json()
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Size", "Colour", "Age"]
    assert table["rows"][0]["cells"][:3] == ["t", 4, "blue"]


async def test_discovery_lists_custom_kinds(server: APIServer) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{server.url}/apis/{GROUP}/{VERSION}") as r:
            doc = await r.json()
        names = {res["name"] for res in doc["resources"]}
        assert names == {"widgets", "widgets/status"}
        async with s.get(
            f"{server.url}/apis",
            headers={
                "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
            },
        ) as r:
            assert r.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io")
            agg = await r.json()
        assert GROUP in {item["metadata"]["name"] for item in agg["items"]}


async def test_deletecollection_by_label(server: APIServer) -> None:
    base = f"{server.url}/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession() as s:
        for name, tier in (("a", "x"), ("b", "x"), ("c", "y")):
            async with s.post(base, json={"metadata": {"name": name, "labels": {"t": tier}}}) as r:
                assert r.status == 201
        async with s.delete(base, params={"labelSelector": "t=x"}) as r:
            assert r.status == 200
            assert sorted(i["metadata"]["name"] for i in (await r.json())["items"]) == ["a", "b"]
        async with s.get(base) as r:
            assert [i["metadata"]["name"] for i in (await r.json())["items"]] == ["c"]


async def test_repair_reports_duplicates_as_warning_events(tmp_path: Path) -> None:
    data = tmp_path / "d"
    async with (
        embedded_apiserver(data) as server,
        aiohttp.ClientSession() as s,
        s.post(
            f"{server.url}/api/v1/namespaces/default/services",
            json={"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80}]}},
        ) as r,
    ):
        ip = (await r.json())["spec"]["clusterIP"]
    # Forge a second Service holding the same IP behind the server's back.
    db = sqlite3.connect(data / "state.db")
    (body,) = db.execute(
        "SELECT body FROM objects WHERE resource='services' AND name='one'"
    ).fetchone()
    twin = json.loads(body)
    twin["metadata"]["name"] = "twin"
    db.execute(
        "INSERT INTO objects VALUES ('', 'services', 'default', 'twin', 999, ?)",
        (json.dumps(twin),),
    )
    db.commit()
    db.close()
    async with embedded_apiserver(data) as server:
        async with (
            aiohttp.ClientSession() as s,
            s.get(
                f"{server.url}/api/v1/namespaces/default/events",
                params={"fieldSelector": "involvedObject.name=twin"},
            ) as r,
        ):
            events = (await r.json())["items"]
        assert [(e["type"], e["reason"]) for e in events] == [
            ("Warning", "ClusterIPAlreadyAllocated")
        ]
        assert ip in events[0]["message"]
        assert server.services.cluster_ips.has(ip)
