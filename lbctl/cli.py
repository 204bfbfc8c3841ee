"""The ``lbctl`` command: argument parsing and wiring, no logic of its own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from lbctl import __version__
from lbctl.apiserver.main import run_apiserver
from lbctl.controllers.main import run_controller_command
from lbctl.settings import Settings, SettingsError, load_settings
from lbctl.speaker.main import run_speaker_command
from lbctl.up import UpOptions, run_up

__all__ = ["main"]

EXIT_USAGE = 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="YAML or TOML settings file (LBCTL_CONFIG)")
    p.add_argument(
        "--service-cidrs", metavar="CIDR[,CIDR]", help="service ranges (LBCTL_SERVICE_CIDRS)"
    )
    p.add_argument(
        "--node-port-range", metavar="FIRST-LAST", help="NodePort range (LBCTL_NODE_PORT_RANGE)"
    )
    p.add_argument("--data-dir", metavar="DIR", help="local state directory (LBCTL_DATA_DIR)")
    p.add_argument(
        "--log-level", metavar="LEVEL", help="DEBUG|INFO|WARNING|ERROR (LBCTL_LOG_LEVEL)"
    )
    p.add_argument("--log-format", metavar="FORMAT", help="text|json (LBCTL_LOG_FORMAT)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lbctl",
        description="A Kubernetes controller for LoadBalancer and NodePort Services.",
    )
    parser.add_argument("--version", action="version", version=f"lbctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="run the embedded API server, the controller and a provider; print the Services",
        description=(
            "Start the embedded API server and the Service LB controller with a provider in "
            "one process, apply the example Services, wait until they converge and print "
            "them as a table; then keep serving until Ctrl-C (--once: exit after the table)."
        ),
    )
    _common(up)
    up.add_argument("--listen", metavar="HOST:PORT", help="API server address (LBCTL_LISTEN)")
    up.add_argument("--provider", metavar="NAME", help="provider (LBCTL_PROVIDER)")
    up.add_argument("--once", action="store_true", help="exit after printing the table")
    up.add_argument(
        "--examples",
        metavar="DIR",
        default="deploy/examples",
        help="directory of example manifests (default: deploy/examples)",
    )

    ctl = sub.add_parser(
        "controller",
        help="run only the Service LB controller against any API server",
        description="Run the controller against the API server of KUBECONFIG (in-cluster "
        "config when none is given).",
    )
    _common(ctl)
    ctl.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    ctl.add_argument("--provider", metavar="NAME", help="provider (LBCTL_PROVIDER)")
    ctl.add_argument(
        "--default-class",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also take Services without loadBalancerClass (LBCTL_DEFAULT_CLASS)",
    )

    spk = sub.add_parser(
        "speaker",
        help="run the layer-2 speaker of one node (answers ARP/NDP for its LoadBalancer IPs)",
        description=(
            "Answer ARP and IPv6 NDP for the LoadBalancer IPs this node is elected to "
            "announce (bare-metal provider). One per node, with hostNetwork and CAP_NET_RAW."
        ),
    )
    _common(spk)
    spk.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: in-cluster)")
    spk.add_argument("--node-name", metavar="NAME", help="this node's name (LBCTL_NODE_NAME)")
    spk.add_argument(
        "--interfaces",
        metavar="IF[,IF]",
        help="answer only on these interfaces, whatever the L2Advertisements say "
        "(LBCTL_SPEAKER_INTERFACES)",
    )
    spk.add_argument(
        "--heartbeat-listen",
        metavar="HOST:PORT",
        help="UDP address for peers' heartbeats (LBCTL_SPEAKER_HEARTBEAT_LISTEN)",
    )
    spk.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help="/metrics, /healthz, /readyz address (LBCTL_METRICS_LISTEN)",
    )
    spk.add_argument(
        "--default-class",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also announce Services without loadBalancerClass (LBCTL_DEFAULT_CLASS)",
    )

    api = sub.add_parser(
        "apiserver",
        help="run the embedded Kubernetes-compatible API server",
        description=(
            "Serve a Kubernetes-compatible API (SQLite-backed) that kubectl and "
            "kubernetes_asyncio can use; writes DATA_DIR/kubeconfig on start."
        ),
    )
    _common(api)
    api.add_argument("--listen", metavar="HOST:PORT", help="bind address (LBCTL_LISTEN)")
    api.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve HTTPS with a self-signed certificate (LBCTL_TLS)",
    )
    api.add_argument("--token-file", metavar="FILE", help="bearer token file (LBCTL_TOKEN_FILE)")

    show = sub.add_parser("settings", help="print the effective settings as JSON")
    _common(show)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        service_cidrs=args.service_cidrs,
        node_port_range=args.node_port_range,
        data_dir=args.data_dir,
        log_level=args.log_level,
        log_format=args.log_format,
        listen=getattr(args, "listen", None),
        provider=getattr(args, "provider", None),
        default_class=getattr(args, "default_class", None),
        tls=getattr(args, "tls", None),
        token_file=getattr(args, "token_file", None),
        node_name=getattr(args, "node_name", None),
        speaker_interfaces=getattr(args, "interfaces", None),
        speaker_heartbeat_listen=getattr(args, "heartbeat_listen", None),
        metrics_listen=getattr(args, "metrics_listen", None),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        settings = _settings(args)
    except SettingsError as e:
        print(f"lbctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "settings":
        print(json.dumps(settings.model_dump(mode="json"), indent=2))
        return 0
    if args.command == "up":
        return run_up(
            settings,
            UpOptions(
                # Not chosen anywhere (flag, LBCTL_PROVIDER, config file): up's default.
                provider=settings.provider if "provider" in settings.model_fields_set else None,
                examples=Path(args.examples),
                once=args.once,
            ),
        )
    if args.command == "controller":
        return run_controller_command(settings, Path(args.kubeconfig) if args.kubeconfig else None)
    if args.command == "apiserver":
        return run_apiserver(settings)
    if args.command == "speaker":
        return run_speaker_command(settings, Path(args.kubeconfig) if args.kubeconfig else None)
    parser.error(f"unknown command {args.command}")
    return EXIT_USAGE  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
