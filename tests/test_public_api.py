"""The names ``synapse_sdk`` exports are exactly the ones we mean, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import synapse_sdk
from synapse_sdk import exceptions

EXPECTED = {
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
    "SDKConfig",
    "ServiceUnavailableError",
    "SessionExpiredError",
    "SynapError",
    "SynapPermanentError",
    "SynapTransientError",
    "TimeoutConfig",
    "__version__",
}


def test_exported_names_are_what_we_mean() -> None:
    assert set(synapse_sdk.__all__) == EXPECTED
    for name in synapse_sdk.__all__:
        assert hasattr(synapse_sdk, name), name


def test_exceptions_all_is_complete() -> None:
    public_errors = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type) and issubclass(value, BaseException) and not name.startswith("_")
    }
    assert public_errors <= set(exceptions.__all__)


def test_import_does_not_load_heavy_layers() -> None:
    code = (
        "import sys, synapse_sdk; "
        "heavy = [m for m in ('httpx', 'starlette', 'uvicorn', 'click', 'rich', 'pydantic', "
        "'grpc', 'cryptography') if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
