"""A self-signed serving certificate for the embedded API server, made on first start."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

from cryptography import x509

from lbctl.pki import self_signed

__all__ = ["ensure_serving_cert"]


def ensure_serving_cert(
    directory: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> tuple[Path, Path]:
    """Return ``(cert, key)`` paths in ``directory``, creating them if absent.

    The certificate is its own CA (clients trust it through the kubeconfig's
    ``certificate-authority-data``), valid for ten years, for ``hosts``.
    """
    cert_path, key_path = directory / "apiserver.crt", directory / "apiserver.key"
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    cert_bytes, key_bytes = self_signed(
        "lbctl-apiserver",
        sans,
        valid=dt.timedelta(days=3650),
        backdate=dt.timedelta(minutes=5),
        ca=True,
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert_bytes)
    return cert_path, key_path
