"""Self-signed certificates (EC P-256, SHA-256): the embedded API server's serving
certificate and the local AWS's ACM certificate are both made here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["self_signed"]


def self_signed(
    common_name: str,
    sans: Sequence[x509.GeneralName],
    *,
    valid: dt.timedelta,
    backdate: dt.timedelta,
    ca: bool = False,
) -> tuple[bytes, bytes]:
    """``(certificate PEM, PKCS#8 private key PEM)``, valid from ``backdate`` ago for
    ``valid``; ``ca``: also its own CA (basicConstraints CA:true, critical)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - backdate)
        .not_valid_after(now + valid)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=None), critical=True
        )
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem
