"""Small helpers shared by the AWS provider's edge modules (tags, tolerated error codes)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from botocore.exceptions import BotoCoreError

from providers.aws.client import AWSClient, AWSError, ServiceName
from providers.base import ConfigError, ProviderError, TransientError, UnsupportedError

__all__ = [
    "READ_PREFIXES",
    "USER_ERRORS",
    "call_tolerating",
    "is_mutation",
    "provider_errors",
    "reason_of",
    "tags_from_aws",
    "tags_to_aws",
]

READ_PREFIXES: Final = ("describe_", "list_", "get_", "Describe", "List", "Get")
"""Operations with these prefixes only read; every other one changes something."""

USER_ERRORS: Final = frozenset(
    {
        "CertificateNotFound",
        "SSLPolicyNotFound",
        "UnsupportedCertificate",
        "InvalidConfigurationRequest",
        "ValidationError",
        "AllocationIdNotFound",
        "InvalidAllocationID.NotFound",
        "InvalidSubnet",
        "SubnetNotFound",
        "RulesPerSecurityGroupLimitExceeded",
    }
)
"""AWS error codes a change to the Service (its annotations, its source ranges) can fix."""
NAME_TAKEN: Final = frozenset({"DuplicateLoadBalancerName", "DuplicateTargetGroupName"})


def is_mutation(operation: str) -> bool:
    """True if ``operation`` (boto3 or API name) changes something in AWS."""
    return not operation.startswith(READ_PREFIXES)


def tags_from_aws(items: Iterable[Mapping[str, Any]] | None) -> dict[str, str]:
    """``[{"Key": k, "Value": v}, ...]`` as a dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in items or ()}


def tags_to_aws(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """A dict as ``[{"Key": k, "Value": v}, ...]``, sorted by key."""
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def reason_of(code: str) -> str:
    """An AWS error code as a condition reason: ``InvalidAllocationID.NotFound`` ->
    ``InvalidAllocationIDNotFound``."""
    cleaned = "".join(c for c in code if c.isalnum())
    return cleaned if cleaned[:1].isalpha() else "AWSError"


async def call_tolerating(
    client: AWSClient,
    codes: Collection[str],
    service: ServiceName,
    operation: str,
    **kwargs: Any,
) -> dict[str, Any] | None:
    """:meth:`AWSClient.call`, but None when AWS answers with one of ``codes`` (a
    not-found on a delete, a duplicate on an authorize: the wanted state holds)."""
    try:
        return await client.call(service, operation, **kwargs)
    except AWSError as e:
        if e.code in codes:
            return None
        raise


@contextmanager
def provider_errors(what: str, on_failure: Callable[[bool], None]) -> Iterator[None]:
    """Let only provider errors out, ``what`` prefixing their message: an
    :class:`AWSError` a changed Service can fix (:data:`USER_ERRORS`, a name taken) is
    :class:`UnsupportedError`, any other one and a botocore error
    :class:`TransientError`; a ``vpc_id`` :class:`ConfigError` (the VPC cannot be
    told) is ``UnsupportedError("VPCNotFound")``. ``on_failure(unexpected)`` runs first;
    ``unexpected`` is True when AWS answered something the caches may not know."""
    try:
        yield
    except AWSError as e:
        on_failure(True)
        if e.code in NAME_TAKEN:
            raise UnsupportedError("NameConflict", f"{what}: {e}") from e
        if e.code in USER_ERRORS:
            raise UnsupportedError(reason_of(e.code), f"{what}: {e}") from e
        raise TransientError(f"{what}: {e}") from e
    except BotoCoreError as e:
        on_failure(True)
        raise TransientError(f"{what}: {type(e).__name__}: {e}") from e
    except ConfigError as e:
        on_failure(True)
        if e.setting == "vpc_id":
            raise UnsupportedError("VPCNotFound", f"{what}: {e}") from e
        raise
    except ProviderError:
        on_failure(False)
        raise
