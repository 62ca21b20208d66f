"""Regex fragments for the failure classes every action category meets (the v1 layer's data).

Each constant is one failure class, written against the messages real libraries and the OS
produce (quoted next to it), and holds only what a regex alternation can safely combine:
non-capturing groups, scoped flags ``(?i:...)`` for free text, class names matched
case-sensitively, bounded repeats. None backtracks catastrophically — every quantifier is either
bounded or over a character class its neighbour cannot match (``tests/plugins`` proves each stays
linear on adversarial input).

A category module orders these (most specific first) next to its own fragments and maps each
to one of its codes; the first declared pattern that matches wins, so *where* a fragment sits in
a category's list is part of its meaning (``INCOMPLETE_RESPONSE`` before ``CONNECTION_LOST``:
both see "peer closed connection"; ``SERVER_UNREACHABLE`` before ``TIMEOUT``: a connect timeout
means the server is unreachable, not slow).

Only the standard library is involved (these are strings).
"""

from __future__ import annotations

__all__ = [
    "AUTHENTICATION",
    "CONFIGURATION",
    "CONNECTION_LOST",
    "DISK_FULL",
    "FILE_EXISTS",
    "FILE_NOT_FOUND",
    "INCOMPLETE_RESPONSE",
    "MALFORMED_DATA",
    "NETWORK",
    "OUT_OF_MEMORY",
    "PAYLOAD_TOO_LARGE",
    "PERMISSION_DENIED",
    "RATE_LIMITED",
    "SERVER_UNREACHABLE",
    "SERVICE_UNAVAILABLE",
    "STEP_FAILED",
    "TIMEOUT",
    "TRANSIENT_OS",
    "VALIDATION",
]

# httpx.RemoteProtocolError "peer closed connection without sending complete message body
# (received 10 bytes, expected 100)" / "(incomplete chunked read)"; http.client.IncompleteRead;
# requests.ChunkedEncodingError; aiohttp.ClientPayloadError "Response payload is not completed".
INCOMPLETE_RESPONSE = (
    r"\bIncompleteRead\b|\bChunkedEncodingError\b|\bContentLengthError\b|\bClientPayloadError\b"
    r"|(?i:without sending complete message body|incomplete chunked read"
    r"|response payload is not completed|connection broken: incomplete"
    r"|received \d{1,20} bytes, expected \d{1,20})"
)

# httpx.RemoteProtocolError "Server disconnected without sending a response";
# ConnectionResetError "[Errno 104] Connection reset by peer"; BrokenPipeError "[Errno 32] Broken
# pipe"; http.client.RemoteDisconnected "Remote end closed connection without response";
# aiohttp.ServerDisconnectedError.
CONNECTION_LOST = (
    r"\bRemoteDisconnected\b|\bServerDisconnectedError\b|\bConnectionResetError\b"
    r"|\bConnectionAbortedError\b|\bBrokenPipeError\b"
    r"|(?i:server disconnected without sending a response|connection reset by peer|broken pipe"
    r"|remote end closed connection|connection aborted|connection (?:was )?lost)"
)

# httpx.ConnectError "All connection attempts failed" / "[Errno 111] Connection refused" /
# "[Errno -2] Name or service not known"; httpx.ConnectTimeout; ConnectionRefusedError;
# urllib3 NewConnectionError "Failed to establish a new connection"; aiohttp "Cannot connect to
# host"; getaddrinfo failures; "No route to host", "Network is unreachable".
SERVER_UNREACHABLE = (
    r"\bConnectError\b|\bConnectTimeout(?:Error)?\b|\bConnectionRefusedError\b"
    r"|\bNewConnectionError\b|\bClientConnectorError\b"
    r"|(?i:all connection attempts failed|connection refused|name or service not known"
    r"|nodename nor servname provided|temporary failure in name resolution|getaddrinfo failed"
    r"|no route to host|network is unreachable|failed to establish a new connection"
    r"|cannot connect to host|failed to resolve)"
)

# HTTP 502/503/504 and the backend's "service_unavailable" code; our
# (Backend)ServiceUnavailableError. Declared before TIMEOUT: a 504 is the gateway's timeout.
SERVICE_UNAVAILABLE = (
    r"ServiceUnavailableError\b"
    r"|(?i:\b50[234] (?:service unavailable|bad gateway|gateway time-?out)\b"
    r"|service[ _]?(?:is )?(?:temporarily )?unavailable|\bbad gateway\b)"
)

# httpx.ReadTimeout / WriteTimeout / PoolTimeout "timed out"; builtin TimeoutError;
# socket.timeout "timed out"; urllib3 ReadTimeoutError "Read timed out."; our
# NetworkTimeoutError; "[Errno 110] Connection timed out"; gRPC "Deadline Exceeded".
TIMEOUT = (
    r"\b(?:Read|Write|Pool)Timeout\b|TimeoutError\b|\bTimeoutException\b"
    r"|(?i:\btimed out\b|\btimeout (?:error|exceeded|expired)\b|deadline exceeded|\[Errno 110\])"
)

# HTTP 429 "Client error '429 Too Many Requests'"; "rate limit exceeded"; our
# (Backend)RateLimitError.
RATE_LIMITED = (
    r"RateLimitError\b"
    r"|(?i:\b429 too many requests\b|too many requests|\brate[ _-]?limit(?:ed|ing|s)?\b)"
)

# HTTP 401 "401 Unauthorized"; "unauthenticated"; "invalid token", "token expired"; our
# (Backend)AuthenticationError.
AUTHENTICATION = (
    r"AuthenticationError\b"
    r"|(?i:\bunauthori[sz]ed\b|\bunauthenticated\b|\bnot authenticated\b"
    r"|authentication (?:failed|required|credentials were not provided)"
    r"|invalid (?:api |access )?token|token (?:has )?expired)"
)

# PermissionError "[Errno 13] Permission denied: '/out'"; "[Errno 1] Operation not permitted";
# HTTP 403 "403 Forbidden"; S3 "AccessDenied" / "Access Denied".
PERMISSION_DENIED = (
    r"\bPermissionError\b|\[Errno 13\]|\bAccessDenied\b"
    r"|(?i:permission denied|operation not permitted|\b403 forbidden\b|\bforbidden\b"
    r"|access (?:is )?denied|insufficient permissions?|you do not have permission)"
)

# FileExistsError "[Errno 17] File exists: '/out/a.json'"; "already exists".
FILE_EXISTS = r"\bFileExistsError\b|\[Errno 17\]|(?i:\bfile exists\b|\balready exists\b)"

# FileNotFoundError "[Errno 2] No such file or directory: 'x'"; Windows "[WinError 2] The system
# cannot find the file specified".
FILE_NOT_FOUND = (
    r"\bFileNotFoundError\b|\[Errno 2\]"
    r"|(?i:no such file or directory|\bfile not found\b|\bpath does not exist\b"
    r"|cannot find the (?:file|path) specified)"
)

# OSError "[Errno 28] No space left on device"; "[Errno 122] Disk quota exceeded". Not transient:
# someone has to free space, so categories map it to a no-retry code.
DISK_FULL = (
    r"\[Errno (?:28|122)\]"
    r"|(?i:no space left on device|disk (?:is )?full|disk quota exceeded"
    r"|not enough (?:disk )?space)"
)

# Conditions that clear by themselves: BlockingIOError "[Errno 11] Resource temporarily
# unavailable" (EAGAIN), InterruptedError (EINTR), "[Errno 16] Device or resource busy",
# "[Errno 24] Too many open files" (EMFILE/ENFILE), "No buffer space available" (ENOBUFS).
# Matched by text, not errno number, so macOS's different numbers match too.
TRANSIENT_OS = (
    r"\bBlockingIOError\b|\bInterruptedError\b"
    r"|(?i:resource temporarily unavailable|device or resource busy|interrupted system call"
    r"|too many open files|no buffer space available)"
)

# MemoryError; torch.cuda.OutOfMemoryError "CUDA out of memory. Tried to allocate 2.00 GiB";
# "[Errno 12] Cannot allocate memory"; Kubernetes "OOMKilled".
OUT_OF_MEMORY = (
    r"\bMemoryError\b|OutOfMemoryError\b|\bOOMKilled\b|\bOOM\b"
    r"|(?i:out of memory|cannot allocate memory|\[Errno 12\])"
)

# HTTP 413 "413 Request Entity Too Large" / "Payload Too Large"; "file too large" (EFBIG).
PAYLOAD_TOO_LARGE = (
    r"(?i:\b413 (?:request entity|payload|content) too large\b|\bpayload too large\b"
    r"|request entity too large|\bfile too large\b|\btoo large\b)"
)

# json.JSONDecodeError "Expecting value: line 1 column 1 (char 0)" and its siblings;
# UnicodeDecodeError "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte";
# "malformed ...".
MALFORMED_DATA = (
    r"\bJSONDecodeError\b|\bUnicodeDecodeError\b|\bDecodingError\b|\bParserError\b"
    r"|(?i:expecting value: line \d|expecting (?:property name|',' delimiter|':' delimiter)"
    r"|unterminated string starting at|extra data: line \d|invalid control character at"
    r"|invalid (?:json|utf-8)|can't decode byte|invalid start byte|\bmalformed\b)"
)

# pydantic ValidationError "1 validation error for ExportParams"; HTTP 422 "Unprocessable
# Entity"; schema checks; our (Backend)InvalidInputError.
VALIDATION = (
    r"\bValidationError\b|InvalidInputError\b"
    r"|(?i:\b\d{1,9} validation errors? for\b|\bvalidation (?:failed|error)\b"
    r"|\b422 unprocessable|unprocessable (?:entity|content)|does not match (?:the )?schema"
    r"|schema validation)"
)

# Settings an administrator must fix: "ImproperlyConfigured", "missing required setting",
# "invalid configuration", "not configured".
CONFIGURATION = (
    r"\bImproperlyConfigured\b|\bConfigurationError\b"
    r"|(?i:improperly configured|\bmisconfigur|configuration (?:error|is (?:invalid|missing))"
    r"|invalid configuration|missing (?:required )?(?:setting|configuration|environment variable)"
    r"|\bnot configured\b)"
)

# Transport errors no more specific fragment named: httpx.NetworkError / TransportError /
# ProtocolError / ProxyError, requests ConnectionError, builtin ConnectionError, SSL failures.
NETWORK = (
    r"\b(?:NetworkError|TransportError|ProtocolError|RemoteProtocolError|LocalProtocolError"
    r"|ProxyError|ConnectionError|ClientOSError|SSLError|ReadError|WriteError)\b"
    r"|(?i:\bnetwork (?:error|is down)\b|\bconnection error\b|certificate verify failed)"
)

# An action step that failed and says so: "step 'convert' failed", "failed at step save",
# a StepError. Declared late in every category: the cause's own class is more specific.
STEP_FAILED = (
    r"\bStepError\b"
    r"|(?i:\bstep [\"']?[\w.-]{1,64}[\"']? failed\b|\bfailed (?:at|in|during) step\b)"
)
