"""The Synap emulator's certificate authority: :mod:`synapse_sdk.emulator._ca`, shared with the
backend emulator's HTTPS mode (kept here so existing imports keep working)."""

from synapse_sdk.emulator._ca import CertificateAuthority, InvalidCSRError

__all__ = ["CertificateAuthority", "InvalidCSRError"]
