"""The backend v2 emulator: :class:`Emulator`, the seeded store behind its app on uvicorn.

Serving (a socket bound before the server starts, uvicorn on its own loop in a daemon thread,
``start`` returning once it serves, ``stop`` joining the thread) is the lifecycle both emulators
share, :class:`~synapse_sdk.emulator._serving.ServedEmulator`.

With ``tls=True`` it serves HTTPS instead: a throwaway certificate authority
(:mod:`synapse_sdk.emulator._ca`) is made at every start and signs a server certificate for the
served address; clients trust the CA through :attr:`Emulator.ca_file` or :attr:`Emulator.ca_pem`.
The server key exists on disk (0600, in a private temporary directory) only while it is loaded,
and everything is removed on stop.
"""

from __future__ import annotations

import logging
import ssl
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp

from synapse_sdk.clients._transport import credential_headers
from synapse_sdk.emulator._ca import CertificateAuthority
from synapse_sdk.emulator._serving import ServedEmulator, is_loopback
from synapse_sdk.emulator.app import create_app
from synapse_sdk.emulator.clock import FakeClock
from synapse_sdk.emulator.faults import FaultProfile
from synapse_sdk.emulator.state import (
    DEFAULT_TENANT,
    Clock,
    EmulatorState,
    RequestRecord,
    Sleep,
    new_token,
    validate_tenant,
    validate_token,
)
from synapse_sdk.emulator.store import (
    DEFAULT_ITEMS,
    Store,
    validate_items,
    validate_original_bytes,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["Emulator"]

logger = logging.getLogger("synapse_sdk.emulator")


class Emulator(ServedEmulator):
    """A local backend v2 server with seeded data and deterministic faults.

    Use it as a context manager (sync or async)::

        with Emulator(items=200, faults="mild") as emu:
            httpx.get(emu.url + "/v2/tasks/", headers=emu.auth_headers)

    * ``items`` — items per resource (tasks, assignments, ground truths); ``seed`` seeds the
      data and, when ``faults`` is a preset name, the faults too.
    * ``original_bytes`` — make every item's original file this many bytes, generated from the
      seed and streamed in chunks as it is served (honouring ``Range``), never held in memory;
      its manifest entry gives ``file_size`` and no ``checksum`` (hashing it would cost more
      than serving it). None (the default): small generated demo files.
    * ``faults`` — a :class:`FaultProfile`, a preset/spec string (``"mild"``), or None (no
      faults).
    * ``clock`` / ``sleep`` — the emulator clock (token bucket, outages, log times) and the sleep
      used for injected latency; inject a :class:`~synapse_sdk.emulator.FakeClock` in tests
      (its ``sleep`` is then the default, so latency advances it instead of sleeping).
    * ``host`` / ``port`` — loopback only unless ``allow_non_loopback=True``; port 0 picks a
      free port.
    * ``token`` — the access token to accept (default: a random ``syn_…`` one), sent as
      ``SYNAPSE-ACCESS-TOKEN`` (or the legacy ``Authorization: Token …``). It never appears in
      ``repr``. ``tenant`` — the tenant code requests must send as ``SYNAPSE-Tenant``
      (default ``"emulator"``); :attr:`auth_headers` gives both headers.
    * ``tls`` — serve HTTPS (default: plain HTTP). A throwaway CA and a server certificate for
      the served address (an IP address SAN, e.g. ``127.0.0.1``) are made at start; ``url`` is
      then ``https://...``, ``ca_file`` / ``ca_pem`` give clients the CA to verify it with
      (e.g. ``BackendV2Client(base_url=emu.url, token=emu.token, tenant=emu.tenant,
      verify=emu.ca_file)``), and
      :meth:`client` / :meth:`async_client` trust it already. The server's private key never
      leaves the server: it is not kept on the object, not logged, and its file is deleted as
      soon as the server has loaded it; the CA file is removed on stop.

    Raises ``ValueError`` for a non-loopback host without ``allow_non_loopback`` and for bad
    item counts or fault settings; ``OSError`` when the address cannot be bound;
    ``RuntimeError`` when the server fails to start.

    Serving is thread-safe: any number of client threads and tasks may call one running emulator
    at once, and its accessors (``requests``, ``add_token``...) may be used from any thread;
    ``start``/``stop`` (the context manager) belong to one thread.
    """

    def __init__(
        self,
        *,
        items: int = DEFAULT_ITEMS,
        seed: int = 0,
        faults: FaultProfile | str | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        tenant: str = DEFAULT_TENANT,
        allow_non_loopback: bool = False,
        log_limit: int | None = 200_000,
        tls: bool = False,
        original_bytes: int | None = None,
    ) -> None:
        if not isinstance(tls, bool):
            raise TypeError(f"tls must be a bool, got {type(tls).__name__}")
        if not isinstance(host, str) or not host:
            raise ValueError("host must be a non-empty string")
        if not is_loopback(host):
            if not allow_non_loopback:
                raise ValueError(
                    f"refusing to serve on non-loopback host {host!r}: the emulator has no real "
                    "security; pass allow_non_loopback=True if you mean it"
                )
            logger.warning(
                "synapse emulator will serve on non-loopback host %s: anyone who can reach it "
                "and holds the token can read the demo data",
                host,
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an int between 0 and 65535, got {port!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.items = validate_items(items)
        self.original_bytes = validate_original_bytes(original_bytes)
        self.seed = seed
        self.faults = FaultProfile.resolve(faults, seed=seed)
        super().__init__(host=host, port=port)
        self._clock = clock
        # With a fake clock, injected latency must advance it, never sleep for real.
        self._sleep = clock.sleep if sleep is None and isinstance(clock, FakeClock) else sleep
        self._log_limit = log_limit
        self._token = new_token() if token is None else validate_token(token)
        self.tenant = validate_tenant(tenant)
        self._state: EmulatorState | None = None
        self.tls = tls
        self._tls: ssl.SSLContext | None = None
        self._ca_pem: bytes | None = None

    # -- the lifecycle's hooks (see synapse_sdk.emulator._serving) -----------------------

    def _prepare(self) -> None:
        store = Store(items=self.items, seed=self.seed, original_bytes=self.original_bytes)
        self._state = EmulatorState(
            store=store,
            faults=self.faults,
            tokens=[self._token],
            tenant=self.tenant,
            clock=self._clock,
            sleep=self._sleep,
            log_limit=self._log_limit,
        )
        if self.tls:
            authority = CertificateAuthority.generate("Synapse Backend Emulator Root CA")
            self._tls, _, _ = self._tls_context(
                authority, self._tls_names(), common_name="Synapse Backend Emulator"
            )
            self._ca_pem = authority.certificate_pem

    def _tls_names(self) -> list[str]:
        """The names the server certificate is valid for: the address ``url`` names."""
        return [self._served_host()]

    def _app(self) -> ASGIApp:
        assert self._state is not None
        return create_app(self._state)

    def _ssl_context(self) -> ssl.SSLContext | None:
        return self._tls

    async def _start_companions(self) -> None:
        # The gate closes connections it drops through the server (set once it exists).
        assert self._state is not None and self._server is not None
        self._state.find_connection = self._server.find_connection

    def _release(self) -> None:
        self._tls = None
        if self._state is not None:
            self._state.store.close()

    # -- what callers read ---------------------------------------------------------------

    def _started(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("the emulator is not started; use `with Emulator() as emu:`")
        return self._state

    @property
    def state(self) -> EmulatorState:
        """The shared state (store, faults, log). Raises ``RuntimeError`` before start."""
        return self._started()

    @property
    def store(self) -> Store:
        """The seeded store. Raises ``RuntimeError`` before start."""
        return self._started().store

    @property
    def port(self) -> int:
        """The bound port. Raises ``RuntimeError`` before start."""
        self._started()
        assert self._port is not None
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321`` (``https://`` with ``tls=True``).

        Raises ``RuntimeError`` before start.
        """
        host = self._served_host()
        shown = f"[{host}]" if ":" in host else host
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{shown}:{self.port}"

    def _require_tls(self) -> bytes:
        self._started()
        if self._ca_pem is None:
            raise RuntimeError("the emulator serves plain HTTP; pass tls=True for a CA")
        return self._ca_pem

    @property
    def ca_pem(self) -> bytes:
        """The PEM certificate of the CA that signed the server's certificate (``tls=True``).

        Public, not a secret. For ``ssl.create_default_context(cadata=...)`` pass
        ``emu.ca_pem.decode()`` (bytes there mean DER). Raises ``RuntimeError`` before start or
        without ``tls=True``.
        """
        return self._require_tls()

    @property
    def ca_file(self) -> str:
        """The path of a PEM file holding :attr:`ca_pem`, for ``verify=`` or ``cafile=``.

        It exists while the emulator runs (removed on stop). Raises ``RuntimeError`` before
        start, after stop or without ``tls=True``.
        """
        self._require_tls()
        if self._work_dir is None:
            raise RuntimeError("the emulator is stopped; its CA file was removed")
        return str(self._work_dir / "ca.pem")

    @property
    def token(self) -> str:
        """The access token the emulator accepts (a secret: not shown in ``repr``)."""
        return self._token

    def create_job(
        self, action: str = "export", params: Any = None, job_id: str | None = None
    ) -> str:
        """Make a PENDING job the v2 job routes know (``job_id``, else a new UUID), and return
        its id.

        Raises ``RuntimeError`` before start, ``ValueError`` for a ``job_id`` that is not a UUID
        or is taken.
        """
        return self._started().jobs.create(action, params, job_id)

    @property
    def auth_headers(self) -> dict[str, str]:
        """The headers a request needs to be let in: ``SYNAPSE-ACCESS-TOKEN`` (:attr:`token`)
        and ``SYNAPSE-Tenant`` (:attr:`tenant`)."""
        return credential_headers(self._token, self.tenant, "access")

    @property
    def requests(self) -> list[RequestRecord]:
        """A snapshot of the request log, oldest first. Raises ``RuntimeError`` before start."""
        return self._started().log.snapshot()

    def reset_log(self) -> None:
        """Forget the recorded requests (fault counters and rate-limit buckets are kept)."""
        self._started().log.clear()

    def add_token(self) -> str:
        """Accept a new random access token, with its own rate-limit bucket, and return it."""
        token = new_token()
        self._started().add_token(token)
        return token

    def client(self, **kwargs: Any) -> httpx.Client:
        """An ``httpx.Client`` for this emulator: its base URL and credentials preset (and,
        with ``tls=True``, ``verify`` trusting the emulator's CA).

        Keyword arguments go to ``httpx.Client`` (extra ``headers`` are merged).
        Raises ``RuntimeError`` before start.
        """
        import httpx

        return httpx.Client(**self._client_options(kwargs))

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """The ``httpx.AsyncClient`` flavour of :meth:`client`."""
        import httpx

        return httpx.AsyncClient(**self._client_options(kwargs))

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        headers = {**self.auth_headers, **dict(kwargs.pop("headers", {}))}
        options: dict[str, Any] = {"base_url": self.url, "timeout": 30.0}
        if self.tls:
            options["verify"] = ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))
        return {**options, **kwargs, "headers": headers}

    def __repr__(self) -> str:
        where = self.url if self._state is not None else f"{self.host}:{self._requested_port}"
        status = "running" if self.running else ("stopped" if self._stopped else "not started")
        return (
            f"<Emulator {where} items={self.items} seed={self.seed} "
            f"faults={self.faults.name or 'custom'!r} {status}>"
        )
