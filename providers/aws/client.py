"""An async wrapper around boto3: worker threads, client-side token buckets, one retry layer.

Every AWS call of the provider goes through :meth:`AWSClient.call`:

1. wait for the call class's token bucket (:mod:`providers.aws.ratelimit`);
2. run the blocking boto3 call in a :class:`~concurrent.futures.ThreadPoolExecutor`, so
   the event loop never blocks;
3. retry throttling, HTTP 5xx and connection failures with tenacity (exponential backoff
   with full jitter), each retry taking a token again; botocore's own retries are off, so
   this is the only retry layer;
4. report every attempt as ``(operation, outcome)`` to ``on_call`` and to :attr:`calls`.

Errors: a non-retryable ``ClientError`` becomes :class:`AWSError` at once; exhausted
retries become :class:`providers.base.TransientError`; no region, or no credentials,
becomes :class:`providers.base.ConfigError`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Literal

import boto3
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from providers.aws.ratelimit import DEFAULT_LIMITS, CallClass, RateLimiter
from providers.base import ConfigError, TransientError

__all__ = ["THROTTLING_CODES", "AWSClient", "AWSError", "ServiceName"]

log = logging.getLogger(__name__)

ServiceName = Literal["elbv2", "ec2", "acm"]
SERVICES: Final[tuple[ServiceName, ...]] = ("elbv2", "ec2", "acm")

THROTTLING_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
    }
)
"""Error codes AWS uses for "slow down" (ELBv2, EC2, ACM, S3-style)."""

_BASE_BACKOFF: Final = 0.5
"""Upper bound of the first retry's random wait; doubles per attempt up to max_backoff."""


class AWSError(Exception):
    """A ClientError that retrying will not fix (not found, invalid, in use, ...)."""

    def __init__(self, code: str, message: str, operation: str, status: int | None) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.code = code
        self.message = message
        self.operation = operation
        self.status = status


class _Retryable(Exception):
    """One failed attempt worth retrying; carries what the final TransientError says."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _error_fields(error: ClientError) -> tuple[str, str, int | None]:
    response: Mapping[str, Any] = getattr(error, "response", None) or {}
    info: Mapping[str, Any] = response.get("Error") or {}
    meta: Mapping[str, Any] = response.get("ResponseMetadata") or {}
    status = meta.get("HTTPStatusCode")
    code = str(info.get("Code") or "Unknown")
    message = str(info.get("Message") or error)
    return code, message, status if isinstance(status, int) else None


def _is_throttling(code: str, status: int | None) -> bool:
    return code in THROTTLING_CODES or status == 429


class AWSClient:
    """Async access to ELBv2, EC2 and ACM with rate limits, retries and call metrics.

    ``region`` and ``endpoint_url`` override the standard boto3 chain (environment,
    profile, instance metadata); ``session`` supplies credentials (default: a new
    ``boto3.Session()``). ``max_backoff`` caps each retry's wait; ``max_attempts``
    counts the first try. ``clock`` feeds the token buckets.
    """

    def __init__(
        self,
        *,
        region: str | None,
        endpoint_url: str | None,
        session: boto3.Session | None = None,
        limits: Mapping[CallClass, tuple[float, int]] = DEFAULT_LIMITS,
        max_attempts: int = 8,
        max_backoff: float = 20.0,
        on_call: Callable[[str, str], None] | None = None,
        max_threads: int = 8,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if max_backoff < 0:
            raise ValueError(f"max_backoff must be >= 0, got {max_backoff}")
        self._session = session if session is not None else boto3.Session()
        resolved = region or self._session.region_name
        if not resolved:
            raise ConfigError(
                "aws_region",
                "no AWS region configured: set the provider's aws_region, AWS_REGION "
                "(or AWS_DEFAULT_REGION), or a region in the AWS profile",
            )
        self.region: str = resolved
        self.endpoint_url = endpoint_url
        self._config = Config(
            region_name=resolved,
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=max_threads,
            user_agent_extra="lbctl",
        )
        self._limiter = RateLimiter(clock, limits)
        self._max_attempts = max_attempts
        self._max_backoff = max_backoff
        self._on_call = on_call
        self._executor = ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="lbctl-aws")
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._waited: dict[str, float] = {}
        self._page_tokens: dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...]] | None]
        self._page_tokens = {}
        self._models: Any = None  # a botocore session, only for paginator models
        self._closed = False

    # --- metrics -------------------------------------------------------------------

    @property
    def calls(self) -> Counter[tuple[str, str]]:
        """Attempts so far, by ``(operation, outcome)``; a copy."""
        return Counter(self._calls)

    @property
    def limiter_wait(self) -> dict[str, float]:
        """Seconds spent waiting for the token buckets, by operation; a copy."""
        return dict(self._waited)

    def _record(self, operation: str, outcome: str) -> None:
        self._calls[(operation, outcome)] += 1
        if self._on_call is not None:
            self._on_call(operation, outcome)

    # --- boto3 clients -------------------------------------------------------------

    def boto_client(self, service: ServiceName) -> Any:
        """The underlying boto3 client (created once, thread-safely); for hooks and tests."""
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r} (known: {', '.join(SERVICES)})")
        with self._lock:
            client = self._clients.get(service)
            if client is None:
                client = self._session.client(
                    service, endpoint_url=self.endpoint_url, config=self._config
                )
                self._clients[service] = client
            return client

    def _invoke(self, service: ServiceName, method: str, kwargs: dict[str, Any]) -> Any:
        return getattr(self.boto_client(service), method)(**kwargs)

    # --- calls ---------------------------------------------------------------------

    async def call(self, service: ServiceName, operation: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``operation`` (boto3 method name, e.g. ``describe_load_balancers``; the API
        name also works) with rate limiting and retries; the response without its
        ``ResponseMetadata``."""
        if self._closed:
            raise RuntimeError("AWSClient is closed")
        method = xform_name(operation)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_random_exponential(
                multiplier=min(_BASE_BACKOFF, self._max_backoff), max=self._max_backoff
            ),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(service, method, operation, kwargs)
        except _Retryable as e:
            raise TransientError(
                f"{operation}: gave up after {self._max_attempts} attempt(s); "
                f"last error {e.code}: {e.message}"
            ) from e
        raise AssertionError("unreachable: tenacity neither returned nor raised")

    async def _attempt(
        self, service: ServiceName, method: str, operation: str, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        delay = self._limiter.reserve(operation)
        if delay > 0:
            self._waited[operation] = self._waited.get(operation, 0.0) + delay
            await asyncio.sleep(delay)
        loop = asyncio.get_running_loop()
        try:
            response = await loop.run_in_executor(
                self._executor, functools.partial(self._invoke, service, method, kwargs)
            )
        except ClientError as e:
            code, message, status = _error_fields(e)
            if _is_throttling(code, status):
                self._record(operation, "throttled")
                log.debug("%s throttled (%s), will retry", operation, code)
                raise _Retryable(code, message) from e
            self._record(operation, code)
            if status is not None and status >= 500:
                log.debug("%s failed with %s (HTTP %s), will retry", operation, code, status)
                raise _Retryable(code, message) from e
            raise AWSError(code, message, operation, status) from e
        except (BotoConnectionError, HTTPClientError) as e:
            code = type(e).__name__
            self._record(operation, code)
            log.debug("%s: %s, will retry", operation, e)
            raise _Retryable(code, str(e)) from e
        except NoCredentialsError as e:
            self._record(operation, "NoCredentials")
            raise ConfigError(
                "aws_credentials", f"no AWS credentials found for {operation}: {e}"
            ) from e
        self._record(operation, "success")
        result = dict(response)
        result.pop("ResponseMetadata", None)
        return result

    async def paginate(
        self, service: ServiceName, operation: str, result_key: str, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """All items under ``result_key`` across pages. Page tokens come from boto3's
        paginator model; each page is one :meth:`call` (rate-limited, retried). An
        operation without a paginator is a single call."""
        tokens = await self._tokens(service, xform_name(operation))
        if tokens is None:
            page = await self.call(service, operation, **kwargs)
            return list(page.get(result_key) or [])
        inputs, outputs = tokens
        params = dict(kwargs)
        items: list[dict[str, Any]] = []
        seen: set[tuple[Any, ...]] = set()
        while True:
            page = await self.call(service, operation, **params)
            items.extend(page.get(result_key) or [])
            next_tokens = tuple(page.get(key) for key in outputs)
            if not any(next_tokens):
                return items
            if next_tokens in seen:
                raise AWSError(
                    "RepeatedPaginationToken",
                    f"the service returned the token {next_tokens!r} twice",
                    operation,
                    None,
                )
            seen.add(next_tokens)
            for key, value in zip(inputs, next_tokens, strict=True):
                if value:
                    params[key] = value
                else:
                    params.pop(key, None)

    async def _tokens(
        self, service: ServiceName, method: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        key = (service, method)
        if key not in self._page_tokens:
            loop = asyncio.get_running_loop()
            self._page_tokens[key] = await loop.run_in_executor(
                self._executor, self._load_tokens, service, method
            )
        return self._page_tokens[key]

    def _load_tokens(
        self, service: ServiceName, method: str
    ) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        client = self.boto_client(service)
        if not client.can_paginate(method):
            return None
        api_name = client.meta.method_to_api_mapping[method]
        with self._lock:
            if self._models is None:
                self._models = botocore.session.get_session()
            model = self._models.get_paginator_model(service)
        config = model.get_paginator(api_name)
        inputs = _as_tuple(config["input_token"])
        outputs = _as_tuple(config["output_token"])
        if len(inputs) != len(outputs) or not all(t.isidentifier() for t in inputs + outputs):
            raise ValueError(f"{service}.{method}: unsupported pagination tokens {config}")
        return inputs, outputs

    async def close(self) -> None:
        """Finish running calls, stop the threads and close the HTTP connections."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        for client in clients:
            client.close()


def _as_tuple(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)
