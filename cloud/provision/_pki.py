"""A small X.509 authority for the broker's TLS: CA, server and client certificates, the CRL.

Built on the ``cryptography`` package (the reference Python binding to OpenSSL's X.509 code)
rather than on the ``openssl`` command: no shell quoting, no config files, and errors that
arrive as exceptions. Keys are ECDSA P-256: small, fast to verify on a 32-bit gateway, and
accepted by every TLS stack Mosquitto and Python link against. Everything here is pure
(PEM bytes in, PEM bytes out); :mod:`._site` decides where files go.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Certificates are back-dated a little so that a gateway whose clock lags still accepts them.
_BACKDATE = dt.timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Issued:
    """A key and its certificate, PEM-encoded; ``key_pem`` is a secret."""

    key_pem: bytes
    cert_pem: bytes
    serial: int


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(*, common_name: str, organisation: str, days: int) -> Issued:
    """A self-signed CA that may sign end-entity certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, organisation)
    now = _now()
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM), serial)


def _load_ca(ca: Issued) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key(ca.key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an EC key made by `atp pki init`")
    return key, x509.load_pem_x509_certificate(ca.cert_pem)


def _san(hostnames: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _issue(
    ca: Issued,
    *,
    common_name: str,
    organisation: str,
    days: int,
    usage: x509.ObjectIdentifier,
    hostnames: Iterable[str] = (),
) -> Issued:
    ca_key, ca_cert = _load_ca(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    serial = x509.random_serial_number()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organisation))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    hostnames = list(hostnames)
    if hostnames:
        builder = builder.add_extension(_san(hostnames), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM), serial)


def make_server_cert(
    ca: Issued, *, hostnames: Iterable[str], organisation: str, days: int
) -> Issued:
    """The broker's certificate; ``hostnames`` (DNS names or IP addresses) go in its SAN."""
    hostnames = list(hostnames)
    if not hostnames:
        raise ValueError("a server certificate needs at least one hostname")
    return _issue(
        ca,
        common_name=hostnames[0],
        organisation=organisation,
        days=days,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        hostnames=hostnames,
    )


def make_client_cert(ca: Issued, *, common_name: str, organisation: str, days: int) -> Issued:
    """A client certificate whose common name is the account id (the MQTT username)."""
    return _issue(
        ca,
        common_name=common_name,
        organisation=organisation,
        days=days,
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )


def make_crl(ca: Issued, *, revoked: Iterable[tuple[int, dt.datetime]], days: int = 365) -> bytes:
    """A CRL listing the ``(serial, revoked_at)`` pairs, signed by the CA, PEM-encoded."""
    ca_key, ca_cert = _load_ca(ca)
    now = _now()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - _BACKDATE)
        .next_update(now + dt.timedelta(days=days))
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
