"""The Synap client: bootstrap, mutual-TLS certificates, sessions, memories, context, listening.

::

    client = SynapClient("inst_0123456789abcdef", url="https://synap.example", trust_root=ca_pem)
    client.initialize(bootstrap_token=token)        # first run: key, CSR, certificate, session
    client.ingest(["prefers tea"], user_id="u-1")
    context = client.get_context(user_id="u-1")     # ContextNotFoundError: treat as empty state
    client.listen(on_message=print)                 # gRPC server stream, reconnects by itself
    client.stop_listening()

Every call after ``initialize`` goes over mutual TLS with the stored client certificate and
carries the session token. Before each call the certificate's lifetime is checked on the
client's clock: with less than 30 % of its 7-day TTL left it is renewed first; past the TTL but
inside the 48-hour grace period it can still be renewed; beyond that,
:class:`~synapse_sdk.exceptions.CertificateExpiredError` until a fresh bootstrap. Transient
failures (rate limits, outages, the agent restarting, timeouts) are retried under
``SDKConfig.retry_policy`` and surface only when the policy gives up. See ``docs/synap.md``.
Every call goes through the SDK's HTTP transport (:mod:`synapse_sdk.clients._transport`), like
the backend client's: it maps errors, retries, and reads answers up to a bound, never whole (at
most 64 KiB of an error body and 32 MiB of a success body).

:class:`SynapClient` is synchronous (its listening stream runs on a private event loop in a
thread); :class:`AsyncSynapClient` is the asyncio twin with the same methods as coroutines.

The package's private modules, one concern each:

==================  ====================================================================
``_client``         ``SynapClient`` / ``AsyncSynapClient``: locks, streams, the transport
``_core``           state and the multi-step procedures (bootstrap, renewal, session)
``_credentials``    keys, CSRs and the credential files (0600, atomic)
``_protocol``       the requests, reading ``data`` answers, the gRPC error mapping
``_listen``         the listening stream (gRPC server stream, reconnects)
``_types``          the values the client returns
==================  ====================================================================
"""

from synapse_sdk.clients.synap._client import (
    DEFAULT_CREDENTIALS_DIR,
    AsyncSynapClient,
    SynapClient,
)
from synapse_sdk.clients.synap._types import (
    CertificateStatus,
    Context,
    IngestResult,
    ListenMessage,
    ListenStatus,
    Memory,
    SessionInfo,
)

__all__ = [
    "DEFAULT_CREDENTIALS_DIR",
    "AsyncSynapClient",
    "CertificateStatus",
    "Context",
    "IngestResult",
    "ListenMessage",
    "ListenStatus",
    "Memory",
    "SessionInfo",
    "SynapClient",
]
