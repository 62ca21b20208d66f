"""The names ``synapse_sdk`` and ``synapse_sdk.clients`` export are exactly the ones we mean,
nothing comes from a private module, the seed's import paths hold, and importing stays light."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

import synapse_sdk
import synapse_sdk.clients
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
    "Retrying",
    "SDKConfig",
    "ServiceUnavailableError",
    "SessionExpiredError",
    "SynapError",
    "SynapPermanentError",
    "SynapTransientError",
    "TimeoutConfig",
    "__version__",
}


CLIENTS = {"BackendV2Client", "AsyncBackendV2Client", "SynapClient", "AsyncSynapClient"}

#: The contract pages' import paths (seeds/*.txt): they must keep working exactly as written.
SEED_PATHS = [
    ("synapse_sdk.exceptions", "BackendError"),
    ("synapse_sdk.plugins.action", "BaseAction"),
    ("synapse_sdk.plugins.actions.export.failure_classifier", "classify_export_error"),
    ("synapse_sdk.plugins.actions.export.failure_classifier", "_V2_ERROR_CODE_TO_EXPORT_CODE"),
    ("synapse_sdk.plugins.actions.export.log_messages", "ExportLogMessageCode"),
]


def test_exported_names_are_what_we_mean() -> None:
    assert set(synapse_sdk.__all__) == EXPECTED
    for name in synapse_sdk.__all__:
        assert hasattr(synapse_sdk, name), name
    # Retrying, not a root-level ``retry`` function that would hide the ``retry`` module.
    assert synapse_sdk.Retrying is importlib.import_module("synapse_sdk.retry").Retrying
    assert not callable(getattr(synapse_sdk, "retry", None))


def test_clients_export_the_four_clients_and_nothing_private() -> None:
    assert set(synapse_sdk.clients.__all__) == CLIENTS
    for name in CLIENTS:
        cls = getattr(synapse_sdk.clients, name)
        assert cls.__name__ == name
        assert not any(part.startswith("_") for part in cls.__module__.split(".")[:-1])
        # The public home of each class is a public module that exports it.
        home = cls.__module__.rsplit("._", 1)[0]
        assert name in importlib.import_module(home).__all__
    with pytest.raises(AttributeError):
        synapse_sdk.clients.ClientStats  # noqa: B018 - private: not exported


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_async_clients_close_with_aclose_and_sync_ones_with_close(name: str) -> None:
    cls = getattr(synapse_sdk.clients, name)
    if name.startswith("Async"):
        assert inspect.iscoroutinefunction(cls.aclose)
        assert not hasattr(cls, "close")
    else:
        assert callable(cls.close) and not hasattr(cls, "aclose")


@pytest.mark.parametrize(("module", "name"), SEED_PATHS)
def test_seed_import_paths_hold(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_the_synap_client_is_one_subpackage() -> None:
    import synapse_sdk.clients.synap as synap

    flat = [m.name for m in pkgutil.iter_modules(synapse_sdk.clients.__path__)]
    assert not [m for m in flat if m.startswith("_synap")]
    inner = {m.name for m in pkgutil.iter_modules(synap.__path__)}
    assert inner == {"_client", "_core", "_credentials", "_listen", "_protocol", "_types"}


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
