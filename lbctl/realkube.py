"""A real kube-apiserver + etcd on loopback, for tests (what controller-runtime's envtest does).

The binaries are built by ``scripts/k8s-binaries.sh`` from the Go module proxy into a
cache outside the repository, or taken from ``KUBEBUILDER_ASSETS``. :class:`RealKube`
starts etcd and kube-apiserver on free 127.0.0.1 ports with a generated CA and serving
certificate, token authentication (``tokens.csv``), RBAC, and the service CIDR and
NodePort range the embedded server uses, and writes an admin kubeconfig.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

__all__ = ["DEFAULT_K8S_VERSION", "RealKube", "binaries_dir", "missing_binaries_message"]

DEFAULT_K8S_VERSION = "1.34.2"
BINARIES = ("kube-apiserver", "etcd", "kubectl")


def binaries_dir() -> Path | None:
    """Where kube-apiserver, etcd and kubectl are, or None if they are not built."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets:
        d = Path(assets)
    else:
        root = os.environ.get("LBCTL_K8S_CACHE") or str(
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lbctl" / "k8s"
        )
        d = Path(root) / f"v{os.environ.get('K8S_VERSION', DEFAULT_K8S_VERSION)}"
    if all((d / b).is_file() and os.access(d / b, os.X_OK) for b in BINARIES[:2]):
        return d
    return None


def missing_binaries_message() -> str:
    return (
        "no kube-apiserver/etcd binaries: run scripts/k8s-binaries.sh (needs Go and the Go "
        "module proxy; ~20 min the first time) or set KUBEBUILDER_ASSETS to a directory "
        "holding kube-apiserver, etcd and kubectl"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_pki(d: Path) -> None:
    """CA, serving certificate (127.0.0.1, localhost) and service-account key."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("lbctl-test-ca"))
        .issuer_name(_name("lbctl-test-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sans = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (d / "serving.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "serving.key").write_bytes(_pem_key(key))
    (d / "sa.key").write_bytes(_pem_key(sa))


@dataclass(slots=True)
class RealKube:
    """etcd + kube-apiserver in child processes; ``kubeconfig`` once :meth:`start` returns."""

    workdir: Path
    bin_dir: Path
    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Extra identities: token -> (user name, comma-separated groups)."""
    admin_token: str = field(default_factory=lambda: secrets.token_hex(16))
    url: str = ""
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def kubectl(self) -> Path | None:
        path = self.bin_dir / "kubectl"
        return path if path.is_file() else None

    def start(self, *, timeout: float = 120.0) -> RealKube:
        d = self.workdir
        d.mkdir(parents=True, exist_ok=True)
        _write_pki(d)
        lines = [f'{self.admin_token},admin,admin,"system:masters"']
        lines += [f'{tok},{user},{user},"{groups}"' for tok, (user, groups) in self.tokens.items()]
        (d / "tokens.csv").write_text("\n".join(lines) + "\n")
        client, peer, secure = _free_port(), _free_port(), _free_port()
        etcd_url = f"http://127.0.0.1:{client}"
        self._spawn(
            "etcd",
            [
                str(self.bin_dir / "etcd"),
                "--data-dir",
                str(d / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level",
                "error",
            ],
        )
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={secure}",
                f"--tls-cert-file={d / 'serving.crt'}",
                f"--tls-private-key-file={d / 'serving.key'}",
                f"--client-ca-file={d / 'ca.crt'}",
                f"--service-cluster-ip-range={self.service_cidr}",
                f"--service-node-port-range={self.node_port_range}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.key'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                "--authorization-mode=RBAC",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--allow-privileged=true",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--v=0",
            ],
        )
        self.url = f"https://127.0.0.1:{secure}"
        self._write_kubeconfig(self.kubeconfig, self.admin_token)
        self._wait_ready(timeout)
        return self

    def kubeconfig_for(self, token: str, path: Path) -> Path:
        """A kubeconfig for another identity (one of ``tokens``)."""
        self._write_kubeconfig(path, token)
        return path

    def _write_kubeconfig(self, path: Path, token: str) -> None:
        ca = base64.b64encode((self.workdir / "ca.crt").read_bytes()).decode()
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "real",
                            "cluster": {"server": self.url, "certificate-authority-data": ca},
                        }
                    ],
                    "users": [{"name": "u", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "real",
                            "context": {"cluster": "real", "user": "u", "namespace": "default"},
                        }
                    ],
                    "current-context": "real",
                }
            )
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for p in self._procs:
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{p.args!r} exited: see the logs in {self.workdir}")
            req = urllib.request.Request(
                self.url + "/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
            )
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last}")

    def stop(self) -> None:
        for p in reversed(self._procs):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self._procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        self._procs.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)
