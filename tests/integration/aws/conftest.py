"""Fixtures: one moto server on 127.0.0.1 for the session, reset before each test that
asks for ``moto_url``, and AWSClients that talk to it with dummy credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import boto3
import pytest

from providers.aws.client import AWSClient
from providers.aws.localaws import DUMMY_CREDENTIALS, MotoServer

REGION = "us-east-1"


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto_url(moto_server: MotoServer) -> str:
    """The endpoint URL of a moto server with no resources in it."""
    moto_server.reset()
    return moto_server.url


@pytest.fixture
def boto_session() -> Any:
    return boto3.Session(region_name=REGION, **DUMMY_CREDENTIALS)


@pytest.fixture
async def make_client(moto_url: str, boto_session: Any) -> AsyncIterator[Callable[..., AWSClient]]:
    """``make_client(**options)``: an AWSClient on the moto server, closed after the test."""
    made: list[AWSClient] = []

    def make(**options: Any) -> AWSClient:
        options.setdefault("region", REGION)
        options.setdefault("endpoint_url", moto_url)
        options.setdefault("session", boto_session)
        options.setdefault("max_backoff", 0.01)
        client = AWSClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
