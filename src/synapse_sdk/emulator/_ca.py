"""The emulators' certificate authority: a root that signs server and client certificates.

Shared by the Synap emulator (which makes the root at start or loads it from a state directory,
issues the server certificate both its listeners present and signs the client certificates that
bootstrap and renewal hand out) and the backend emulator's opt-in HTTPS mode (a fresh root and a
server certificate for the address it serves, made at every start).

Time travel: the X.509 validity of a client certificate is set on the *real* wall clock and is
generous (the SDK lifetime plus the grace period plus a day, starting an hour in the past),
because TLS stacks check it against the machine's real time, which a test cannot move. The SDK
lifetime — the 7-day TTL, the 48-hour grace period, renewal at 30 % remaining — is tracked on the
Synap emulator's injectable clock in its certificate registry, and the client tracks the same
numbers in its credentials metadata. Both sides enforce that lifetime; TLS only proves who is
talking.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertificateAuthority", "InvalidCSRError", "write_private"]

_HOUR = dt.timedelta(hours=1)
_CA_LIFETIME = dt.timedelta(days=3650)
_SERVER_LIFETIME = dt.timedelta(days=365)
_MIN_RSA_BITS = 2048
_ALLOWED_CURVES = (ec.SECP256R1, ec.SECP384R1)


class InvalidCSRError(ValueError):
    """A certificate signing request is not valid PEM, is badly signed or uses a weak key."""


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Synap Emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _real_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _subject_alt_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a new or truncated file created with mode 0600 (owner only)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


class CertificateAuthority:
    """A root key and certificate that sign the emulator's server and client certificates.

    The private key never leaves this object except through :meth:`save` (a 0600 file); ``repr``
    shows only the subject and fingerprint.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._key = key
        self.certificate = certificate

    @classmethod
    def generate(cls, common_name: str = "Synap Emulator Root CA") -> CertificateAuthority:
        """Create a fresh self-signed root (EC P-256), valid on the real clock for ten years."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _real_now()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _HOUR)
            .not_valid_after(now + _CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """Load the root from ``directory`` (``ca.key``, ``ca.pem``), creating and saving one
        there if it holds none.

        Raises:
            ValueError: the files exist but do not hold a matching EC key and certificate.
            OSError: the directory cannot be read or written.
        """
        key_path, cert_path = directory / "ca.key", directory / "ca.pem"
        if key_path.exists() and cert_path.exists():
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            public = cert.public_key()
            if (
                not isinstance(key, ec.EllipticCurvePrivateKey)
                or not isinstance(public, ec.EllipticCurvePublicKey)
                or key.public_key().public_numbers() != public.public_numbers()
            ):
                raise ValueError(f"{directory} holds a CA key and certificate that do not match")
            return cls(key, cert)
        authority = cls.generate()
        authority.save(directory)
        return authority

    def save(self, directory: Path) -> None:
        """Write ``ca.key`` (mode 0600) and ``ca.pem`` into ``directory`` (created 0700)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(directory / "ca.key", _private_pem(self._key))
        (directory / "ca.pem").write_bytes(self.certificate_pem)

    @property
    def certificate_pem(self) -> bytes:
        """The root certificate in PEM: the trust root clients and servers load."""
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue_server_certificate(
        self,
        hosts: Sequence[str] = ("localhost", "127.0.0.1"),
        *,
        common_name: str = "Synap Emulator Server",
    ) -> tuple[bytes, bytes]:
        """Return ``(key_pem, cert_pem)`` for a fresh server key valid for ``hosts``.

        Each host becomes a subject alternative name: an IP address SAN when it parses as one
        (``127.0.0.1``, ``::1``), a DNS name otherwise. The key PEM is a secret: write it only to
        a private (0600) file.

        Raises:
            ValueError: ``hosts`` is empty or holds an empty name.
        """
        if isinstance(hosts, str) or not hosts or not all(hosts):
            raise ValueError("hosts must be a non-empty sequence of non-empty host names")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _real_now()
        cert = (
            self._builder(common_name, key.public_key(), now, now + _SERVER_LIFETIME)
            .add_extension(
                x509.SubjectAlternativeName([_subject_alt_name(host) for host in hosts]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return _private_pem(key), cert.public_bytes(serialization.Encoding.PEM)

    def sign_client_csr(
        self, csr_pem: bytes, instance_id: str, *, x509_lifetime_seconds: float
    ) -> x509.Certificate:
        """Sign ``csr_pem`` into a client certificate whose subject is ``instance_id``.

        The requested subject is ignored: the authority decides who the certificate names.

        Raises:
            InvalidCSRError: not a PEM CSR, a bad self-signature, or a key weaker than RSA 2048 /
                EC P-256.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise InvalidCSRError("csr is not a PEM certificate signing request") from exc
        try:
            valid = csr.is_signature_valid
        except (InvalidSignature, ValueError) as exc:
            raise InvalidCSRError("csr signature cannot be verified") from exc
        if not valid:
            raise InvalidCSRError("csr signature is invalid")
        public = csr.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            if public.key_size < _MIN_RSA_BITS:
                raise InvalidCSRError("csr key is weaker than RSA 2048")
        elif isinstance(public, ec.EllipticCurvePublicKey):
            if not isinstance(public.curve, _ALLOWED_CURVES):
                raise InvalidCSRError("csr key must use the P-256 or P-384 curve")
        else:
            raise InvalidCSRError("csr key must be RSA or EC")
        now = _real_now()
        return (
            self._builder(
                instance_id,
                public,
                now,
                now + dt.timedelta(seconds=x509_lifetime_seconds),
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )

    def _builder(
        self,
        common_name: str,
        public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        now: dt.datetime,
        not_after: dt.datetime,
    ) -> x509.CertificateBuilder:
        issuer_public = self._key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _HOUR)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public), critical=False
            )
        )

    def __repr__(self) -> str:
        fingerprint = self.certificate.fingerprint(hashes.SHA256()).hex()[:16]
        subject = self.certificate.subject.rfc4514_string()
        return f"CertificateAuthority(subject={subject!r}, fingerprint={fingerprint!r})"
