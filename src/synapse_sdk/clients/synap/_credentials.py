"""Synap client credentials: key generation, the CSR, and the on-disk credential store.

Layout under the credentials directory (directories 0700, files 0600, written atomically)::

    <credentials_dir>/<instance_id>/credentials.json   key, certificate and lifetime metadata
    <credentials_dir>/<instance_id>/tls-identity.pem   key + certificate, derived, for ssl

``credentials.json`` is the single source of truth (one atomic replace per change, so a crash
never leaves a key that does not match its certificate); ``tls-identity.pem`` is rewritten from
it because :meth:`ssl.SSLContext.load_cert_chain` only reads files.

The certificate's SDK lifetime lives in the metadata, on the client's injectable clock:
``issued_at``, ``expires_at`` (issued + TTL), the grace period and the renewal fraction, as the
certificate authority stated them. The X.509 validity inside the certificate is deliberately
wider and follows the real clock (see ``docs/synap.md``, "Time travel").

Nothing here logs or puts key, certificate or token material into an exception message or repr.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from synapse_sdk.exceptions import AuthenticationError
from synapse_sdk.storage._local import atomic_write

__all__ = [
    "CertificateMeta",
    "CertificateState",
    "CredentialStore",
    "Credentials",
    "new_key_and_csr",
]

logger = logging.getLogger("synapse_sdk.clients.synap")

CertificateState = Literal["valid", "renew_due", "in_grace", "expired"]

_FORMAT_VERSION = 1
_CREDENTIALS_FILE = "credentials.json"
_IDENTITY_FILE = "tls-identity.pem"


def new_key_and_csr(instance_id: str) -> tuple[bytes, bytes]:
    """Generate a fresh EC P-256 private key and a CSR naming ``instance_id``.

    Returns ``(key_pem, csr_pem)``; the key never leaves this process except into the 0600
    credentials file.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, instance_id)]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class CertificateMeta:
    """A client certificate's SDK lifetime, in epoch seconds on the client's clock."""

    serial: str
    issued_at: float
    expires_at: float
    ttl_seconds: float
    grace_seconds: float
    renew_fraction: float

    @property
    def renew_at(self) -> float:
        """When renewal becomes due: once less than ``renew_fraction`` of the TTL remains."""
        return self.expires_at - self.renew_fraction * self.ttl_seconds

    @property
    def grace_ends_at(self) -> float:
        """After this instant the certificate cannot even be renewed."""
        return self.expires_at + self.grace_seconds

    def state(self, now: float) -> CertificateState:
        """``valid``, ``renew_due`` (< 30 % left), ``in_grace`` (expired, still renewable) or
        ``expired`` (past the grace period: only a fresh bootstrap helps)."""
        if now >= self.grace_ends_at:
            return "expired"
        if now >= self.expires_at:
            return "in_grace"
        if now >= self.renew_at:
            return "renew_due"
        return "valid"

    @classmethod
    def from_response(cls, data: Mapping[str, Any]) -> CertificateMeta:
        """Read the lifetime fields of a bootstrap or renewal response.

        Raises:
            ValueError: a field is missing or not a sensible number.
        """
        numbers: dict[str, float] = {}
        for name in ("issued_at", "expires_at", "ttl_seconds", "grace_seconds", "renew_fraction"):
            value = data.get(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"certificate response field {name!r} is missing or invalid")
            numbers[name] = float(value)
        serial = data.get("serial")
        if not isinstance(serial, str) or not serial:
            raise ValueError("certificate response field 'serial' is missing or invalid")
        if numbers["expires_at"] <= numbers["issued_at"] or not 0 < numbers["renew_fraction"] < 1:
            raise ValueError("certificate response has an impossible lifetime")
        return cls(serial=serial, **numbers)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An instance's private key, certificate and lifetime metadata (secrets hidden in repr)."""

    instance_id: str
    key_pem: bytes = field(repr=False)
    cert_pem: bytes = field(repr=False)
    meta: CertificateMeta
    identity_file: Path

    @property
    def key_and_cert(self) -> tuple[bytes, bytes]:
        """``(key_pem, cert_pem)`` for gRPC channel credentials."""
        return self.key_pem, self.cert_pem


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a 0600 temporary file and an atomic rename."""
    atomic_write(path, data, mode=0o600)


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o700)


class CredentialStore:
    """Reads and writes one instance's credentials under a directory.

    Raises (from :meth:`load`):
        AuthenticationError: no credentials are stored, or the stored ones are corrupted.
    """

    def __init__(self, directory: Path, instance_id: str) -> None:
        self.root = directory
        self.instance_id = instance_id
        self.directory = directory / instance_id
        self.path = self.directory / _CREDENTIALS_FILE
        self.identity_file = self.directory / _IDENTITY_FILE

    def __repr__(self) -> str:
        return f"CredentialStore(directory={str(self.directory)!r})"

    def exists(self) -> bool:
        """Whether a credentials file is present (it may still be corrupted)."""
        return self.path.exists()

    def save(self, key_pem: bytes, response: Mapping[str, Any]) -> Credentials:
        """Validate a bootstrap/renewal response against ``key_pem`` and store both.

        Raises:
            ValueError: the response is malformed or its certificate does not match the key or
                the instance.
            OSError: the directory or files cannot be written.
        """
        cert_text = response.get("certificate")
        if not isinstance(cert_text, str):
            raise ValueError("certificate response has no certificate")
        meta = CertificateMeta.from_response(response)
        cert_pem = cert_text.encode()
        problem = _mismatch(self.instance_id, key_pem, cert_pem, meta.serial)
        if problem is not None:
            raise ValueError(f"issued certificate is unusable: {problem}")
        document = {
            "version": _FORMAT_VERSION,
            "instance_id": self.instance_id,
            "private_key": key_pem.decode(),
            "certificate": cert_text,
            "meta": {
                "serial": meta.serial,
                "issued_at": meta.issued_at,
                "expires_at": meta.expires_at,
                "ttl_seconds": meta.ttl_seconds,
                "grace_seconds": meta.grace_seconds,
                "renew_fraction": meta.renew_fraction,
            },
        }
        _ensure_private_dir(self.root)
        _ensure_private_dir(self.directory)
        _atomic_write(self.path, json.dumps(document, indent=1).encode())
        _atomic_write(self.identity_file, key_pem + cert_pem)
        logger.debug(
            "synap.credentials.saved",
            extra={"instance_id": self.instance_id, "serial": meta.serial},
        )
        return Credentials(self.instance_id, key_pem, cert_pem, meta, self.identity_file)

    def load(self) -> Credentials:
        """Read and verify the stored credentials, refreshing the TLS identity file.

        Raises:
            AuthenticationError: missing, unreadable or corrupted credentials (the message says
                which, never what the file holds).
        """
        fail = _failure(self.instance_id, self.directory)
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            raise AuthenticationError(
                f"no stored credentials for instance {self.instance_id} in {self.directory}; "
                "initialize with a bootstrap token first"
            ) from None
        except OSError as exc:
            raise fail(f"the credentials file cannot be read ({type(exc).__name__})") from exc
        if stat.S_IMODE(self.path.stat().st_mode) & 0o077:
            logger.warning(
                "synap.credentials.permissions_tightened",
                extra={"instance_id": self.instance_id},
            )
            self.path.chmod(0o600)
        try:
            document = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise fail("the credentials file is not valid JSON") from None
        if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
            raise fail("the credentials file has an unknown format")
        if document.get("instance_id") != self.instance_id:
            raise fail("the credentials file belongs to another instance")
        key_text, cert_text = document.get("private_key"), document.get("certificate")
        if not isinstance(key_text, str) or not isinstance(cert_text, str):
            raise fail("the credentials file lacks the key or the certificate")
        meta_doc = document.get("meta")
        try:
            if not isinstance(meta_doc, dict):
                raise ValueError("meta")
            meta = CertificateMeta.from_response(meta_doc)
        except ValueError:
            raise fail("the certificate metadata is missing or invalid") from None
        key_pem, cert_pem = key_text.encode(), cert_text.encode()
        problem = _mismatch(self.instance_id, key_pem, cert_pem, meta.serial)
        if problem is not None:
            raise fail(problem)
        try:
            if not self.identity_file.exists() or self.identity_file.read_bytes() != (
                key_pem + cert_pem
            ):
                _atomic_write(self.identity_file, key_pem + cert_pem)
        except OSError as exc:
            raise fail(f"the TLS identity file cannot be written ({type(exc).__name__})") from exc
        return Credentials(self.instance_id, key_pem, cert_pem, meta, self.identity_file)


def _failure(instance_id: str, directory: Path) -> Callable[[str], AuthenticationError]:
    def build(reason: str) -> AuthenticationError:
        return AuthenticationError(
            f"stored credentials for instance {instance_id} in {directory} are corrupted: "
            f"{reason}; initialize with a new bootstrap token"
        )

    return build


def _mismatch(instance_id: str, key_pem: bytes, cert_pem: bytes, serial: str) -> str | None:
    """Why a key and certificate cannot be used together for ``instance_id`` (None if they can)."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        return "the private key cannot be parsed"
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return "the certificate cannot be parsed"
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return "the private key is not an EC key"
    public = cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or (
        public.public_numbers() != key.public_key().public_numbers()
    ):
        return "the certificate does not match the private key"
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names or names[0].value != instance_id:
        return "the certificate names another instance"
    if format(cert.serial_number, "x") != serial:
        return "the certificate does not match its metadata"
    return None
