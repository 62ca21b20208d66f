"""A local Synap Cloud for tests, docs and the CLI.

:class:`SynapEmulator` runs the Synap HTTPS API (uvicorn) and the gRPC listening stream on
127.0.0.1, with its own certificate authority, single-use bootstrap tokens, certificate renewal
with the grace rule, revocation, credential rotation, sessions, a SQLite memory/context store and
deterministic fault injection for every transient error. Share a
:class:`~synapse_sdk.emulator.FakeClock` between the emulator and the client to travel in time::

    clock = FakeClock(1_767_225_600)  # 2026-01-01T00:00:00Z
    with SynapEmulator(clock=clock) as emu:
        instance_id = emu.register_instance()
        token = emu.issue_bootstrap_token(instance_id)
        client = SynapClient(instance_id, credentials_dir=tmp, **emu.client_options())
        client.initialize(bootstrap_token=token)
        clock.advance(6 * 86_400)      # six days later: the next call renews the certificate
"""

from synapse_sdk.emulator._ca import CertificateAuthority
from synapse_sdk.emulator.synap._faults import OPERATIONS, Fault, FaultKind, FaultPlan
from synapse_sdk.emulator.synap._server import SynapEmulator
from synapse_sdk.emulator.synap._service import Lifetimes

__all__ = [
    "OPERATIONS",
    "CertificateAuthority",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "Lifetimes",
    "SynapEmulator",
]
