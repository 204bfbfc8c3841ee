"""lbctl's settings: flags > ``LBCTL_*`` environment > config file > defaults.

Every field says its unit and why its default is what it is. A config file is YAML
(``.yaml``/``.yml``) or TOML (``.toml``), named by ``--config`` or ``LBCTL_CONFIG``;
its keys are the field names below. List settings in the environment are comma
separated: ``LBCTL_SERVICE_CIDRS=10.96.0.0/12,fd00:10:96::/108``.

A bad value is a :class:`SettingsError` whose one-line message names the setting and
what is wrong; the CLI prints it and exits with status 2.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from lbctl.allocators.nodeport import PortRange

__all__ = ["LogFormat", "LogLevel", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX: Final = "LBCTL_"
MIN_RANGE_ADDRESSES: Final = 8
MAX_CIDR_BITS: Final = 20
"""A bitmap range may hold at most 2**20 values: an IPv4 mask >= /12, IPv6 >= /108."""


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class SettingsError(Exception):
    """A setting has a bad value; ``str()`` is one line naming it."""


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything lbctl can be configured with."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
    )
    file_values: ClassVar[dict[str, Any]] = {}

    # -- cluster networking (the embedded API server's allocators) -----------------
    service_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["10.96.0.0/12"],
        description=(
            "Service (ClusterIP) ranges as CIDRs: one, or two of different IP families for "
            "dual-stack; the first is the primary family. IPv4 masks must be /12../29 and "
            "IPv6 /108../125 (at least 8 addresses, at most 2^20). Default 10.96.0.0/12, the "
            "range kubeadm and kind use, so manifests written for them work unchanged."
        ),
    )
    node_port_range: str = Field(
        default="30000-32767",
        description=(
            "NodePort range, inclusive, as FIRST-LAST. Default 30000-32767, "
            "kube-apiserver's default, so NodePort Services move between clusters as they are."
        ),
    )

    # -- local state ---------------------------------------------------------------
    data_dir: Path = Field(
        default=Path(".lbctl"),
        description=(
            "Directory for the embedded API server's database, kubeconfig and certificates. "
            "Default .lbctl in the working directory: a local run leaves nothing elsewhere."
        ),
    )

    # -- embedded API server --------------------------------------------------------
    listen: str = Field(
        default="127.0.0.1:6443",
        description=(
            "HOST:PORT the embedded API server binds. Default 127.0.0.1:6443: "
            "kube-apiserver's port, on loopback only, so nothing is exposed by accident. "
            "Port 0 picks a free port."
        ),
    )
    tls: bool = Field(
        default=False,
        description=(
            "Serve HTTPS with a self-signed certificate made on first start in data_dir. "
            "Default false: a local, loopback-only server needs no certificate."
        ),
    )
    token_file: Path | None = Field(
        default=None,
        description=(
            "File holding the bearer token clients must present (compared in constant "
            "time; 401 otherwise). Default none: no authentication on loopback."
        ),
    )
    watch_history_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds of change history kept for watches to resume from; older "
            "resourceVersions get 410 Expired. Default 300 s, etcd's usual compaction interval."
        ),
    )
    repair_interval_seconds: float = Field(
        default=180.0,
        gt=0,
        description=(
            "Seconds between allocation repair passes (leaks, duplicates, out-of-range "
            "values reported as Warning Events). Default 180 s, as kube-apiserver."
        ),
    )

    # -- controller -----------------------------------------------------------------
    provider: str = Field(
        default="memory",
        description=(
            "Load-balancer provider, by its name in the lbctl.providers entry-point group "
            "(memory; aws and baremetal as they land). Default memory: runs anywhere."
        ),
    )
    provider_options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Options for the provider's factory, by name (a mapping; JSON in "
            "LBCTL_PROVIDER_OPTIONS). memory: network_v4, provisioning_rounds; aws: region, "
            "endpoint_url, default_scheme, orphan_sweep, node_security_group_id. Default "
            "empty: each provider's own defaults."
        ),
    )
    cluster_name: str = Field(
        default="lbctl",
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "This cluster's id (a DNS label): providers tag what they create with it and "
            "never touch what carries another. Default lbctl; set it per cluster when "
            "several share one cloud account."
        ),
    )
    default_class: bool = Field(
        default=False,
        description=(
            "Also take LoadBalancer Services with no loadBalancerClass (CCM-sidecar mode). "
            "Default false: only Services of the provider's class, so lbctl never fights "
            "another controller for unclassed Services."
        ),
    )
    workers: int = Field(
        default=4,
        ge=1,
        le=256,
        description="Concurrent reconciles. Default 4: provider calls are I/O-bound.",
    )
    resync_seconds: float = Field(
        default=600.0,
        gt=0,
        description=(
            "Seconds between drift-repair passes over every Service (an idle pass makes no "
            "mutating provider call). Default 600 s (10 min)."
        ),
    )
    api_qps: float = Field(
        default=200.0,
        ge=0,
        description=(
            "Client-side limit on API requests per second (burst: twice as many); 0 turns "
            "it off. Default 200/s: enough to converge 10,000 Services in a minute, while "
            "kube-apiserver's priority and fairness still protects a shared cluster."
        ),
    )
    metrics_listen: str = Field(
        default="127.0.0.1:8080",
        description=(
            "HOST:PORT of the controller's /metrics (Prometheus text), /healthz and /readyz. "
            "Default 127.0.0.1:8080: loopback only until a deployment opens it."
        ),
    )
    leader_elect: bool = Field(
        default=True,
        description="Elect one active controller through a Lease. Default true (safe with "
        "replicas).",
    )
    lease_namespace: str = Field(
        default="kube-system",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Namespace of the leader-election Lease (lbctl-controller). Default "
        "kube-system; deploy/ sets the controller's own namespace, so its Role stays there.",
    )
    lease_duration_seconds: float = Field(
        default=15.0,
        gt=0,
        description="Lease duration in seconds. Default 15 s, client-go's default.",
    )
    renew_deadline_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Seconds the leader keeps trying to renew before giving up. Default 10 s.",
    )
    retry_period_seconds: float = Field(
        default=2.0,
        gt=0,
        description="Seconds between lease attempts. Default 2 s, client-go's default.",
    )

    # -- layer-2 speaker (lbctl speaker) ----------------------------------------------
    node_name: str = Field(
        default="",
        pattern=r"^$|^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$",
        description=(
            "This node's name (the Node object the speaker runs on; --node-name). Required "
            "by the speaker; the DaemonSet sets it from spec.nodeName. Default empty."
        ),
    )
    speaker_namespace: str = Field(
        default="lbctl-speaker",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description=(
            "Namespace of the speakers' Leases (one per speaker, lbctl-speaker-<node>). "
            "Default lbctl-speaker, where deploy/ runs the DaemonSet: its Role over Leases "
            "then reaches no other Lease."
        ),
    )
    speaker_interfaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Interfaces to answer ARP/NDP on, overriding the L2Advertisements' lists "
            "(comma separated). Default empty: what the L2Advertisements name, else every "
            "usable physical interface."
        ),
    )
    speaker_heartbeat_listen: str = Field(
        default="0.0.0.0:7946",
        description=(
            "HOST:PORT (UDP) where the speaker hears its peers' heartbeats. Default "
            "0.0.0.0:7946 (memberlist's port, which firewalls for MetalLB already open)."
        ),
    )
    speaker_heartbeat_address: str = Field(
        default="",
        description=(
            "Address peers send heartbeats to, published in this speaker's Lease. Default "
            "empty: the listen host, or the Node's InternalIP when it listens on 0.0.0.0."
        ),
    )
    speaker_heartbeat_interval_seconds: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description=(
            "Seconds between heartbeats to each peer. Default 0.1 s: a 60-byte datagram per "
            "peer, cheap, and it lets a dead peer be noticed in half a second."
        ),
    )
    speaker_dead_after_seconds: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description=(
            "Seconds without a heartbeat after which a peer is dead and its addresses move. "
            "Default 0.5 s (5 heartbeats): failover well under MetalLB's 4-10 s, while a "
            "few lost datagrams do not move anything."
        ),
    )
    speaker_lease_duration_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Duration of each speaker's Lease, renewed every third of it: the durable record "
            "of who is a speaker and where to reach it. Default 10 s: 0.3 writes/s per node."
        ),
    )
    speaker_gratuitous_count: int = Field(
        default=5,
        ge=0,
        le=100,
        description=(
            "Gratuitous ARP / unsolicited NA rounds sent when an address is taken over "
            "(the first at once). Default 5, as MetalLB: one lost frame does not matter."
        ),
    )
    speaker_gratuitous_interval_seconds: float = Field(
        default=1.1,
        gt=0,
        description=(
            "Seconds between those rounds. Default 1.1 s: longer than Linux's ARP locktime "
            "(1 s), so a neighbour that ignored one round takes the next."
        ),
    )
    speaker_refresh_seconds: float = Field(
        default=0.0,
        ge=0,
        description=(
            "Seconds between periodic gratuitous announcements of every owned address "
            "(keeps switch FDBs and router ARP caches fresh). Default 0: off."
        ),
    )
    speaker_probe_count: int = Field(
        default=3,
        ge=0,
        le=10,
        description=(
            "ARP probes (RFC 5227) / DAD solicitations sent before first announcing a newly "
            "assigned address; 0 turns probing off. Default 3, RFC 5227's PROBE_NUM."
        ),
    )
    speaker_probe_interval_seconds: float = Field(
        default=0.2,
        gt=0,
        description=(
            "Seconds between probes, and waited after the last one for an answer. Default "
            "0.2 s: a LAN host answers in milliseconds; RFC 5227's 1-2 s would delay new "
            "Services by 5 s."
        ),
    )
    speaker_conflict_recheck_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds between probes of an address found in use, until it is free. Default 10 s."
        ),
    )

    # -- logging -------------------------------------------------------------------
    log_level: LogLevel = Field(
        default=LogLevel.INFO,
        description="Lowest log level written: DEBUG, INFO, WARNING or ERROR. Default INFO.",
    )
    log_format: LogFormat = Field(
        default=LogFormat.TEXT,
        description="Log line format: text (for people) or json (for collectors). Default text.",
    )

    @field_validator("service_cidrs", "speaker_interfaces", mode="before")
    @classmethod
    def _split_cidrs(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("service_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        if not 1 <= len(value) <= 2:
            raise ValueError(f"expected one or two CIDRs (one per IP family), got {len(value)}")
        families: set[int] = set()
        for cidr in value:
            try:
                net = ipaddress.ip_network(cidr, strict=True)
            except ValueError as e:
                raise ValueError(f"{cidr!r} is not a CIDR: {e}") from None
            bits = net.max_prefixlen
            if net.prefixlen < bits - MAX_CIDR_BITS:
                raise ValueError(
                    f"{cidr} is too large; for {bits}-bit addresses, the mask must be "
                    f">= {bits - MAX_CIDR_BITS}"
                )
            if net.num_addresses < MIN_RANGE_ADDRESSES:
                raise ValueError(
                    f"{cidr} is too small; a service range needs at least "
                    f"{MIN_RANGE_ADDRESSES} addresses"
                )
            if net.version in families:
                raise ValueError("two CIDRs of the same IP family; dual-stack needs one of each")
            families.add(net.version)
        return [str(ipaddress.ip_network(c)) for c in value]

    @field_validator("node_port_range")
    @classmethod
    def _check_port_range(cls, value: str) -> str:
        rng = PortRange.parse(value)
        return str(rng)

    @field_validator("listen", "metrics_listen", "speaker_heartbeat_listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:6443)")
        return value

    @property
    def listen_host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def metrics_host(self) -> str:
        return self.metrics_listen.rpartition(":")[0].strip("[]")

    @property
    def metrics_port(self) -> int:
        return int(self.metrics_listen.rpartition(":")[2])

    @property
    def heartbeat_host(self) -> str:
        return self.speaker_heartbeat_listen.rpartition(":")[0].strip("[]")

    @property
    def heartbeat_port(self) -> int:
        return int(self.speaker_heartbeat_listen.rpartition(":")[2])

    @property
    def port_range(self) -> PortRange:
        return PortRange.parse(self.node_port_range)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls, cls.file_values))


class _FileSource(PydanticBaseSettingsSource):
    """The values read from the config file (already parsed by :func:`_read_config`)."""

    def __init__(self, settings_cls: type[BaseSettings], values: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._values = values

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._values)


def _read_config(path: Path) -> dict[str, Any]:
    if path.suffix not in (".yaml", ".yml", ".toml"):
        raise SettingsError(f"config file {path}: must end in .yaml, .yml or .toml")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        raise SettingsError(f"config file {path}: {' '.join(str(e).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path}: must be a mapping of setting names to values")
    return data


def _setting_name(loc: tuple[int | str, ...]) -> str:
    field = str(loc[0]) if loc else "settings"
    return f"{field} ({ENV_PREFIX}{field.upper()})"


def load_settings(config: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; raise :class:`SettingsError` with a one-line message.

    ``config`` (or ``LBCTL_CONFIG``) names a YAML or TOML file; ``overrides`` are
    values from flags and win over everything else (``None`` values are ignored).
    """
    path_text = config if config is not None else os.environ.get(f"{ENV_PREFIX}CONFIG")
    file_values = _read_config(Path(path_text)) if path_text else {}
    given = {k: v for k, v in overrides.items() if v is not None}
    # The file's values reach settings_customise_sources through a per-call subclass.
    cls = type("Settings", (Settings,), {"file_values": file_values})
    try:
        return cls(**given)  # type: ignore[no-any-return]
    except ValidationError as e:
        parts = []
        for err in e.errors():
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            if err.get("type") == "extra_forbidden":
                msg = "unknown setting"
            parts.append(f"{_setting_name(tuple(err.get('loc', ())))}: {msg}")
        raise SettingsError("invalid setting " + "; ".join(parts)) from None
