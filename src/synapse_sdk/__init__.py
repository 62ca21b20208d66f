"""synapse-sdk: a Python SDK that handles failure right.

The public surface re-exported here is the core: the error tree, the configuration values and
the retry engine (:class:`Retrying`; its decorator and testing switch live in
:mod:`synapse_sdk.retry`). Clients (:mod:`synapse_sdk.clients`), the emulator, actions and the CLI
live in submodules and load only when imported, so ``import synapse_sdk`` stays light.
"""

import logging

from synapse_sdk.config import RetryPolicy, SDKConfig, TimeoutConfig
from synapse_sdk.exceptions import (
    AgentUnavailableError,
    AuthenticationError,
    BackendError,
    BootstrapError,
    BootstrapKeyInvalidError,
    CertificateExpiredError,
    CertificateRenewalError,
    ContextNotFoundError,
    InvalidConversationIdError,
    InvalidInputError,
    InvalidInstanceIdError,
    ListeningAlreadyActiveError,
    ListeningNotActiveError,
    NetworkTimeoutError,
    RateLimitError,
    ServiceUnavailableError,
    SessionExpiredError,
    SynapError,
    SynapPermanentError,
    SynapTransientError,
)
from synapse_sdk.retry import Retrying

__version__ = "0.1.0"

# A library never configures logging; without this a user who has not set up logging would see
# the retry engine's warnings through Python's last-resort handler.
logging.getLogger("synapse_sdk").addHandler(logging.NullHandler())

__all__ = [
    "AgentUnavailableError",
    "AuthenticationError",
    "BackendError",
    "BootstrapError",
    "BootstrapKeyInvalidError",
    "CertificateExpiredError",
    "CertificateRenewalError",
    "ContextNotFoundError",
    "InvalidConversationIdError",
    "InvalidInputError",
    "InvalidInstanceIdError",
    "ListeningAlreadyActiveError",
    "ListeningNotActiveError",
    "NetworkTimeoutError",
    "RateLimitError",
    "RetryPolicy",
    "Retrying",
    "SDKConfig",
    "ServiceUnavailableError",
    "SessionExpiredError",
    "SynapError",
    "SynapPermanentError",
    "SynapTransientError",
    "TimeoutConfig",
    "__version__",
]
