"""The ``lbctl.providers`` entry point ``aws``: :func:`create` checks every option, then
builds an :class:`~providers.aws.provider.AWSProvider` (boto3 is imported only then)."""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import TYPE_CHECKING, Final

from providers.aws.annotations import Scheme
from providers.aws.sgrules import parse_port_range
from providers.base import ConfigError

if TYPE_CHECKING:
    from providers.aws.provider import AWSProvider

__all__ = ["create"]

_CLUSTER_RE: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_REGION_RE: Final = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]+")
_SG_RE: Final = re.compile(r"sg-[0-9a-f]{8,17}")
_VPC_RE: Final = re.compile(r"vpc-[0-9a-f]{8,17}")


def _optional(setting: str, value: object, pattern: re.Pattern[str], example: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise ConfigError(setting, f"must look like {example}, got {value!r}")


def create(
    *,
    cluster_name: str = "lbctl",
    region: str | None = None,
    endpoint_url: str | None = None,
    default_scheme: str = "internet-facing",
    orphan_sweep: bool = True,
    node_security_group_id: str | None = None,
    vpc_id: str | None = None,
    provisioning_requeue_seconds: float = 15.0,
    node_port_range: str = "30000-32767",
) -> AWSProvider:
    """Build the AWS NLB provider; :class:`ConfigError` naming the first bad option.

    ``cluster_name``: the cluster id in ownership tags; ``region``/``endpoint_url``:
    override boto3's chain (``endpoint_url`` for a local AWS such as moto);
    ``default_scheme``: for Services without a scheme annotation; ``orphan_sweep``:
    delete resources of Services that are gone; ``node_security_group_id``: the group
    to open instead of discovering it per node; ``vpc_id``: instead of discovering it;
    ``provisioning_requeue_seconds``: how soon to look again at a provisioning NLB;
    ``node_port_range``: the cluster's ``--service-node-port-range`` (``from-to``),
    opened in the node security groups from the NLBs' backend security group.
    """
    if not isinstance(cluster_name, str) or _CLUSTER_RE.fullmatch(cluster_name) is None:
        raise ConfigError(
            "cluster_name",
            f"must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a "
            f"letter or digit, got {cluster_name!r}",
        )
    _optional("region", region, _REGION_RE, "us-east-1")
    if endpoint_url is not None:
        parts = urllib.parse.urlsplit(endpoint_url) if isinstance(endpoint_url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError("endpoint_url", f"must be an http(s) URL, got {endpoint_url!r}")
    try:
        scheme = Scheme(default_scheme)
    except ValueError:
        raise ConfigError(
            "default_scheme", f"must be internet-facing or internal, got {default_scheme!r}"
        ) from None
    if not isinstance(orphan_sweep, bool):
        raise ConfigError("orphan_sweep", f"must be true or false, got {orphan_sweep!r}")
    _optional("node_security_group_id", node_security_group_id, _SG_RE, "sg-0123456789abcdef0")
    _optional("vpc_id", vpc_id, _VPC_RE, "vpc-0123456789abcdef0")
    seconds = provisioning_requeue_seconds
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise ConfigError(
            "provisioning_requeue_seconds", f"must be a positive number, got {seconds!r}"
        )
    try:
        port_range = parse_port_range(node_port_range)
    except ValueError as e:
        raise ConfigError("node_port_range", str(e)) from None

    from providers.aws.provider import AWSProvider  # noqa: PLC0415 - boto3 only when used

    try:
        return AWSProvider(
            cluster_name=cluster_name,
            region=region,
            endpoint_url=endpoint_url,
            default_scheme=scheme,
            orphan_sweep=orphan_sweep,
            node_security_group_id=node_security_group_id,
            vpc_id=vpc_id,
            provisioning_requeue_seconds=float(seconds),
            node_port_range=port_range,
        )
    except ConfigError as e:
        if e.setting == "aws_region":  # the client's name for it
            raise ConfigError("region", e.message) from e
        raise
