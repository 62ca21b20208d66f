"""Regex fragments for the failure classes every action category meets (the v1 layer's data).

Each constant is one failure class, written against the messages real libraries and the OS
produce (quoted next to it), and holds only what a regex alternation can safely combine:
non-capturing groups, scoped flags ``(?i:...)`` for free text, class names matched
case-sensitively, bounded repeats. None backtracks catastrophically: every fragment is at most
256 characters wide, has no unbounded quantifier and no quantifier inside another, and has a
bounded number of paths, which ``tests/plugins/test_categories.py`` checks on the parse tree (so
a search is linear in the blob); ``benchmarks/redos_audit.py`` measures it.

Each fragment is a :class:`~synapse_sdk.failures.Gated` regex: it declares the lowercase words
it cannot match without (the class names lowercased, the key phrases), so the classifier skips
it on a text that has none of them. ``tests/plugins/test_categories.py`` proves each word list
covers every text the regex matches.

A category module orders these (most specific first) next to its own fragments and maps each
to one of its codes; the first declared pattern that matches wins, so *where* a fragment sits in
a category's list is part of its meaning. The transport failures every category meets come as
one ordered block, :data:`NETWORK_FAILURES`, which a category maps to its own codes with
:func:`network_patterns`.

Only the standard library is involved (these are strings).
"""

from __future__ import annotations

from typing import TypeVar

from synapse_sdk.failures import Gated

__all__ = [
    "AUTHENTICATION",
    "CONFIGURATION",
    "CONNECTION_LOST",
    "DATA_SHAPE",
    "DISK_FULL",
    "FILES_MISSING",
    "FILE_EXISTS",
    "FILE_NOT_FOUND",
    "INCOMPLETE_RESPONSE",
    "JOB_RUNNING",
    "MALFORMED_DATA",
    "NETWORK",
    "NETWORK_FAILURES",
    "OUT_OF_MEMORY",
    "PAYLOAD_TOO_LARGE",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
    "SDK_MISMATCH",
    "SERVER_UNREACHABLE",
    "SERVICE_UNAVAILABLE",
    "STEP_FAILED",
    "TIMEOUT",
    "TLS_VERIFICATION",
    "TRANSIENT_OS",
    "VALIDATION",
    "network_patterns",
]

C = TypeVar("C")

# fmt: off
# (each fragment's gate words are packed, not one a line)

# httpx.RemoteProtocolError "peer closed connection without sending complete message body
# (received 10 bytes, expected 100)" / "(incomplete chunked read)"; http.client.IncompleteRead;
# requests.ChunkedEncodingError; aiohttp.ClientPayloadError "Response payload is not completed".
INCOMPLETE_RESPONSE = Gated(
    r"\b(?:IncompleteRead|ChunkedEncodingError|ContentLengthError|ClientPayloadError)\b"
    r"|(?i:\b(?:without sending complete message body|incomplete chunked read"
    r"|response payload is not completed|connection broken: incomplete"
    r"|received \d{1,20} bytes, expected \d{1,20}))",
    "incompleteread", "chunkedencodingerror", "contentlengtherror", "clientpayloaderror",
    "complete message body", "incomplete chunked read", "not completed",
    "connection broken: incomplete", "bytes, expected",
)

# httpx.RemoteProtocolError "Server disconnected without sending a response";
# ConnectionResetError "[Errno 104] Connection reset by peer"; BrokenPipeError "[Errno 32] Broken
# pipe"; http.client.RemoteDisconnected "Remote end closed connection without response";
# aiohttp.ServerDisconnectedError.
CONNECTION_LOST = Gated(
    r"\b(?:RemoteDisconnected|ServerDisconnectedError|ConnectionResetError"
    r"|ConnectionAbortedError|BrokenPipeError)\b"
    r"|(?i:\b(?:server disconnected without sending a response|connection reset by peer"
    r"|broken pipe|remote end closed connection|connection aborted|connection (?:was )?lost))",
    "disconnected", "connectionreseterror", "connectionabortederror", "brokenpipeerror",
    "reset by peer", "broken pipe", "remote end closed", "connection aborted", "connection lost",
    "connection was lost",
)

# httpx.ConnectError "All connection attempts failed" / "[Errno 111] Connection refused" /
# "[Errno -2] Name or service not known"; httpx.ConnectTimeout; ConnectionRefusedError;
# urllib3 NewConnectionError "Failed to establish a new connection"; aiohttp "Cannot connect to
# host"; getaddrinfo failures; "No route to host", "Network is unreachable".
SERVER_UNREACHABLE = Gated(
    r"\b(?:ConnectError|ConnectTimeout|ConnectTimeoutError|ConnectionRefusedError"
    r"|NewConnectionError|ClientConnectorError)\b"
    r"|(?i:\b(?:all connection attempts failed|connection refused|name or service not known"
    r"|nodename nor servname provided|temporary failure in name resolution|getaddrinfo failed"
    r"|no route to host|network is unreachable|failed to establish a new connection"
    r"|cannot connect to host|failed to resolve))",
    "connecterror", "connecttimeout", "refused", "newconnectionerror", "clientconnectorerror",
    "connection attempts failed", "name or service not known", "nodename nor servname",
    "name resolution", "getaddrinfo failed", "no route to host", "network is unreachable",
    "new connection", "cannot connect to host", "failed to resolve",
)

# HTTP 500/502/503/504 and the backend's "service_unavailable" code; our
# (Backend)ServiceUnavailableError; requests' raise_for_status() "504 Server Error: Gateway
# Timeout for url: ..."; httpx "Server error '500 Internal Server Error'"; retries already spent
# below us: urllib3 MaxRetryError / requests RetryError "(Caused by ResponseError('too many 503
# error responses'))". Declared before TIMEOUT: a 504 is the gateway's timeout. (4xx "Client
# Error"s are not here: a 404 is not worth retrying.)
SERVICE_UNAVAILABLE = Gated(
    r"\b(?:Backend)?ServiceUnavailableError\b"
    r"|(?i:\b(?:50[234] (?:service unavailable|bad gateway|gateway time-?out)\b"
    r"|50[0234] server error\b|500 internal server error\b|too many 50[0234] error responses\b"
    r"|service[ _]?(?:is )?(?:temporarily )?unavailable|bad gateway\b))",
    "unavailable", "bad gateway", "gateway time", "server error", "error responses",
)

# httpx.ReadTimeout / WriteTimeout / PoolTimeout "timed out"; builtin TimeoutError;
# socket.timeout "timed out"; urllib3 ReadTimeoutError "Read timed out."; our
# NetworkTimeoutError; "[Errno 110] Connection timed out"; gRPC "Deadline Exceeded".
TIMEOUT = Gated(
    r"\b(?:ReadTimeout|WriteTimeout|PoolTimeout|TimeoutException"
    r"|(?:Network|Read|Write|Pool)?TimeoutError)\b"
    r"|(?i:\b(?:timed out|timeout (?:error|exceeded|expired)|deadline exceeded)\b)",
    "readtimeout", "writetimeout", "pooltimeout", "timeoutexception", "timeouterror", "timed out",
    "timeout error", "timeout exceeded", "timeout expired", "deadline exceeded",
)

# HTTP 429 "Client error '429 Too Many Requests'"; "rate limit exceeded"; our
# (Backend)RateLimitError; urllib3's retries spent on 429s: "too many 429 error responses".
RATE_LIMITED = Gated(
    r"\b(?:Backend)?RateLimitError\b"
    r"|(?i:\b(?:429 too many requests|too many requests|too many 429 error responses"
    r"|rate[ _-]?limit(?:ed|ing|s)?)\b)",
    "too many requests", "429 error responses", "rate limit", "rate_limit", "rate-limit",
    "ratelimit",
)

# HTTP 401 "401 Unauthorized"; "unauthenticated"; "invalid token", "token expired"; our
# (Backend)AuthenticationError.
AUTHENTICATION = Gated(
    r"\b(?:Backend)?AuthenticationError\b"
    r"|(?i:\b(?:unauthori[sz]ed\b|unauthenticated\b|not authenticated\b"
    r"|authentication (?:failed|required|credentials were not provided)"
    r"|invalid (?:api |access )?token|token (?:has )?expired))",
    "authenticationerror", "authentication failed", "authentication required",
    "authentication credentials", "unauthenticated", "not authenticated", "unauthori",
    "invalid token", "invalid api token", "invalid access token", "token expired",
    "token has expired",
)

# The server's TLS certificate was refused: ssl.SSLCertVerificationError "[SSL:
# CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate" / "Hostname
# mismatch" / "IP address mismatch"; our transport's "the server's TLS certificate failed
# verification". Not transient: the URL, the CA bundle or the server's certificate must change.
TLS_VERIFICATION = Gated(
    r"\bSSLCertVerificationError\b"
    r"|(?i:\b(?:certificate verify failed|tls certificate failed verification"
    r"|hostname mismatch|ip address mismatch|self[- ]signed certificate)\b)",
    "sslcertverificationerror", "certificate verify failed", "tls certificate failed",
    "hostname mismatch", "ip address mismatch", "signed certificate",
)

# PermissionError "[Errno 13] Permission denied: '/out'"; "[Errno 1] Operation not permitted";
# HTTP 403 "403 Forbidden"; S3 "AccessDenied" / "Access Denied". (Errno numbers differ between
# systems; the message Python prints with them does not, so the message is matched.)
PERMISSION_DENIED = Gated(
    r"\b(?:PermissionError|AccessDenied)\b"
    r"|(?i:\b(?:permission denied|operation not permitted|forbidden\b"
    r"|access (?:is )?denied|insufficient permissions?))",
    "permissionerror", "permission denied", "insufficient permission", "accessdenied",
    "not permitted", "forbidden", "access denied", "access is denied",
)

# FileExistsError "[Errno 17] File exists: '/out/a.json'"; "already exists".
FILE_EXISTS = Gated(
    r"\bFileExistsError\b|(?i:\b(?:file exists|already exists)\b)",
    "exists",
)

# FileNotFoundError "[Errno 2] No such file or directory: 'x'"; Windows "[WinError 2] The system
# cannot find the file specified".
FILE_NOT_FOUND = Gated(
    r"\bFileNotFoundError\b"
    r"|(?i:\b(?:no such file or directory|file not found\b|path does not exist\b"
    r"|cannot find the (?:file|path) specified))",
    "filenotfounderror", "no such file or directory", "file not found", "path does not exist",
    "cannot find the",
)

# OSError "[Errno 28] No space left on device"; "[Errno 122] Disk quota exceeded". Not transient:
# someone has to free space, so categories map it to a no-retry code.
DISK_FULL = Gated(
    r"(?i:\b(?:no space left on device|disk (?:is )?full|disk quota exceeded"
    r"|not enough (?:disk )?space))",
    "no space left on device", "disk full", "disk is full", "disk quota exceeded",
    "not enough space", "not enough disk space",
)

# Conditions that clear by themselves: BlockingIOError "[Errno 11] Resource temporarily
# unavailable" (EAGAIN), InterruptedError (EINTR), "[Errno 16] Device or resource busy",
# "[Errno 24] Too many open files" (EMFILE/ENFILE), "No buffer space available" (ENOBUFS).
TRANSIENT_OS = Gated(
    r"\b(?:BlockingIOError|InterruptedError)\b"
    r"|(?i:\b(?:resource temporarily unavailable|device or resource busy"
    r"|interrupted system call|too many open files|no buffer space available))",
    "blockingioerror", "interrupted", "temporarily unavailable", "resource busy",
    "too many open files", "no buffer space",
)

# MemoryError; torch.OutOfMemoryError "CUDA out of memory. Tried to allocate 2.00 GiB";
# "[Errno 12] Cannot allocate memory"; Kubernetes "OOMKilled".
OUT_OF_MEMORY = Gated(
    r"\b(?:MemoryError|OutOfMemoryError|OOMKilled|OOM)\b"
    r"|(?i:\b(?:out of memory|cannot allocate memory))",
    "memoryerror", "oom", "out of memory", "cannot allocate memory",
)

# HTTP 413 "413 Request Entity Too Large" / "Payload Too Large"; "file too large" (EFBIG).
PAYLOAD_TOO_LARGE = Gated(
    r"(?i:\btoo large\b)",
    "too large",
)

# json.JSONDecodeError "Expecting value: line 1 column 1 (char 0)" and its siblings;
# UnicodeDecodeError "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte";
# "malformed ..."; an archive that does not open: tarfile.ReadError "file could not be opened
# successfully", gzip.BadGzipFile, zipfile.BadZipFile, shutil.ReadError.
MALFORMED_DATA = Gated(
    r"\b(?:JSONDecodeError|UnicodeDecodeError|DecodingError|ParserError|BadGzipFile|BadZipFile"
    r"|(?:tarfile|shutil)\.ReadError)\b"
    r"|(?i:\b(?:expecting value: line \d|expecting (?:property name|',' delimiter|':' delimiter)"
    r"|unterminated string starting at|extra data: line \d|invalid control character at"
    r"|invalid (?:json|utf-8)|can't decode byte|invalid start byte|malformed\b))",
    "decodeerror", "decodingerror", "parsererror", "badgzipfile", "badzipfile", "readerror",
    "expecting", "unterminated string", "extra data", "invalid control character", "invalid json",
    "invalid utf-8", "can't decode byte", "invalid start byte", "malformed",
)

# Data that does not have the shape the converter expects, as Python reports it: TypeError
# "cannot unpack non-iterable int object", "'<=' not supported between instances of 'int' and
# 'list'"; ValueError "too many values to unpack (expected 2)", "not enough values to unpack".
DATA_SHAPE = Gated(
    r"(?i:\bcannot unpack non-iterable \w{1,64} object\b"
    r"|'[<>=!]{1,2}' not supported between instances of '\w{1,64}' and '\w{1,64}'"
    r"|\b(?:too many|not enough) values to unpack\b)",
    "cannot unpack non-iterable", "not supported between instances of", "values to unpack",
)

# An item without file information: "'NoneType' object is not iterable" (or subscriptable)
# next to a "files" field the converter reads ("item 17 files: 'NoneType' object is not ...").
FILES_MISSING = Gated(
    r"(?i:\bfiles\b[^\n]{0,80}?'NoneType' object is not (?:iterable|subscriptable)"
    r"|'NoneType' object is not (?:iterable|subscriptable)[^\n]{0,80}?\bfiles\b)",
    "'nonetype' object is not",
)

# A plugin built for another SDK version: ModuleNotFoundError "No module named
# 'synapse_sdk.plugins.categories'", ImportError "cannot import name 'X' from 'synapse_sdk...'",
# AttributeError "'NoneType' object has no attribute 'export'" / "'dict' object has no attribute
# 'export'" (a client the plugin expects), a missing "log_dev_event", click "No such option:
# --debug" / "No such option '--debug'." (a flag the SDK's runner does not take).
SDK_MISMATCH = Gated(
    r"(?i:\bno module named '?synapse_sdk\b|\bcannot import name '\w{1,64}' from '?synapse_sdk\b"
    r"|'(?:NoneType|dict)' object has no attribute 'export'|\bhas no attribute 'log_dev_event'"
    r"|\bno such option:? '?--debug\b)",
    "no module named", "cannot import name", "has no attribute 'export'", "log_dev_event",
    "no such option",
)

# The backend refuses a second run of a job it still has running: "Job is currently running".
JOB_RUNNING = Gated(
    r"(?i:\bjob (?:is )?(?:currently|already|still) running\b)",
    "currently running", "already running", "still running",
)

# pydantic ValidationError "1 validation error for ExportParams"; HTTP 422 "Unprocessable
# Entity"; schema checks; our (Backend)InvalidInputError.
VALIDATION = Gated(
    r"\b(?:ValidationError|(?:Backend)?InvalidInputError)\b"
    r"|(?i:\b(?:\d{1,9} validation errors? for\b|validation (?:failed|error)\b"
    r"|422 unprocessable|unprocessable (?:entity|content)|does not match (?:the )?schema"
    r"|schema validation))",
    "validationerror", "validation error", "validation failed", "schema validation",
    "invalidinputerror", "unprocessable", "does not match",
)

# Settings an administrator must fix: "ImproperlyConfigured", "missing required setting",
# "invalid configuration", "not configured".
CONFIGURATION = Gated(
    r"\b(?:ImproperlyConfigured|ConfigurationError)\b"
    r"|(?i:\b(?:improperly configured|misconfigur|configuration (?:error|is (?:invalid|missing))"
    r"|invalid configuration|missing (?:required )?(?:setting|configuration|environment variable)"
    r"|not configured\b))",
    "improperlyconfigured", "configurationerror", "improperly configured", "misconfigur",
    "configuration error", "configuration is", "invalid configuration", "missing setting",
    "missing configuration", "missing environment variable", "missing required", "not configured",
)

# Transport errors no more specific fragment named: httpx.NetworkError / TransportError /
# ProtocolError / ProxyError / ReadError / WriteError, requests ConnectionError, builtin
# ConnectionError, SSL failures. ReadError and WriteError only as httpx's and httpcore's: a
# tarfile.ReadError or shutil.ReadError is a bad archive, not the network.
NETWORK = Gated(
    r"\b(?:NetworkError|TransportError|ProtocolError|RemoteProtocolError|LocalProtocolError"
    r"|ProxyError|ConnectionError|ClientOSError|SSLError"
    r"|(?:httpx|httpcore)\.(?:ReadError|WriteError))\b"
    r"|(?i:\b(?:network (?:error|is down)|connection error|certificate verify failed)\b)",
    "networkerror", "transporterror", "protocolerror", "proxyerror", "connectionerror",
    "clientoserror", "sslerror", "readerror", "writeerror", "network error", "network is down",
    "connection error", "certificate verify failed",
)

# An action step that failed and says so: "step 'convert' failed", "failed at step save",
# a StepError. Declared late in every category: the cause's own class is more specific.
STEP_FAILED = Gated(
    r"\bStepError\b"
    r"|(?i:\b(?:step [\"']?[\w.-]{1,64}[\"']? failed\b|failed (?:at|in|during) step\b))",
    "steperror", "step ", "failed at step", "failed in step", "failed during step",
)
# fmt: on

#: The transport failures every category meets, in the one order they are tried: a download cut
#: short before a dropped connection (both see "peer closed connection"), a server never reached
#: before a timeout (a connect timeout means unreachable, not slow), a service that answered it
#: is down before a timeout (a 504 is the gateway's timeout), the generic transport error last.
NETWORK_FAILURES = (
    INCOMPLETE_RESPONSE, CONNECTION_LOST, SERVER_UNREACHABLE, SERVICE_UNAVAILABLE, TIMEOUT, NETWORK,
)  # fmt: skip


def network_patterns(
    *,
    incomplete_response: C,
    connection_lost: C,
    server_unreachable: C,
    service_unavailable: C,
    timeout: C,
    network: C,
) -> list[tuple[str, C]]:
    """:data:`NETWORK_FAILURES` as ``(pattern, code)`` entries, each mapped to the category's own
    code for that failure (several may share one code), in the shared order."""
    codes = (incomplete_response, connection_lost, server_unreachable, service_unavailable,
             timeout, network)  # fmt: skip
    return list(zip(NETWORK_FAILURES, codes, strict=True))
