"""Fault profiles: what goes wrong in the emulator, and the deterministic dice that decide when.

A :class:`FaultProfile` is a frozen value. Every decision it drives (does this item fail, is this
connection dropped, how much latency) is taken by :func:`decide`, a hash of
``(seed, kind, *key)`` mapped onto ``[0, 1)``, never by a shared stream RNG. The key names the
thing decided about (resource and item id, or a request's identity) and how many times it was
seen before, so the same seed gives the same decisions however requests interleave.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DROP_KINDS",
    "GATEWAY_STATUSES",
    "PRESETS",
    "UNKNOWN_IDS",
    "FaultProfile",
    "RateLimit",
    "decide",
]

#: The two ways a connection is dropped: closed before any response, or cut mid-body after
#: headers that promised the full ``Content-Length``.
DROP_KINDS = ("drop_reset", "drop_truncated")
#: What the gateway in front of the real backend answers when it, not the backend, fails.
GATEWAY_STATUSES = (502, 503, 504, 520, 524)
#: What a bulk request naming unknown ids gets (see :class:`FaultProfile`).
UNKNOWN_IDS = ("drop", "invalid_ids")

_PERSON = b"synapse-emu"


def decide(seed: int, kind: str, *key: object) -> float:
    """Return a number in ``[0, 1)`` fixed by ``(seed, kind, *key)``, the same in every process.

    The key parts are rendered with ``repr``, so use ints and strings (whose reprs are stable).
    """
    digest = hashlib.blake2b(repr((seed, kind, key)).encode(), digest_size=8, person=_PERSON)
    return int.from_bytes(digest.digest(), "big") / 2.0**64


def _rate(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number between 0 and 1, got {type(value).__name__}")
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value!r}")
    return float(value)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A per-token token bucket: ``per_second`` tokens refill each second, up to ``burst``.

    With ``headers`` (the default) every answer on a rate-limited path tells the bucket's state
    (``RateLimit``/``RateLimit-Policy``, ``X-RateLimit-*``); without, the backend only answers
    429s, so a client learns the rate from its rejections alone.

    Raises ``ValueError`` for a non-positive rate or a burst below 1.
    """

    per_second: float
    burst: int
    headers: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.per_second, bool) or not isinstance(self.per_second, int | float):
            raise TypeError("RateLimit.per_second must be a number")
        if not math.isfinite(self.per_second) or self.per_second <= 0:
            raise ValueError(f"RateLimit.per_second must be > 0, got {self.per_second!r}")
        if isinstance(self.burst, bool) or not isinstance(self.burst, int):
            raise TypeError("RateLimit.burst must be an int")
        if self.burst < 1:
            raise ValueError(f"RateLimit.burst must be >= 1, got {self.burst!r}")
        object.__setattr__(self, "per_second", float(self.per_second))


def _rate_limit(value: object) -> RateLimit | None:
    if value is None or isinstance(value, RateLimit):
        return value
    if isinstance(value, tuple | list) and len(value) == 2:
        per_second, burst = value
        return RateLimit(per_second, burst)
    raise TypeError("rate_limit must be a RateLimit, a (per_second, burst) pair or None")


def _window(value: object) -> tuple[float, float]:
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise TypeError(f"each outage must be a (start, end) pair of seconds, got {value!r}")
    start = _seconds("outage start", value[0])
    end = _seconds("outage end", value[1])
    if end <= start:
        raise ValueError(f"an outage must end after it starts, got ({start}, {end})")
    return (start, end)


@dataclass(frozen=True, slots=True)
class FaultProfile:
    """What the emulator gets wrong, and how often. Frozen; build variants with :meth:`replace`.

    * ``seed`` — seeds every fault decision (independent of the data seed).
    * ``partial_failure_rate`` — chance that an item of a bulk fetch fails with the retryable
      ``item_unavailable``; decided per (resource, id, attempt), so a retry may succeed.
    * ``permanent_failure_rate`` — fraction of ids that *always* fail with ``item_corrupted``
      (not retryable); decided per (resource, id).
    * ``rate_limit`` — a per-token :class:`RateLimit`, or None for unlimited. File downloads are
      not rate limited.
    * ``outages`` — ``(start, end)`` windows in emulator-clock seconds since start; every
      ``/v2`` request inside one gets a 503 with ``Retry-After`` set to the window's end.
    * ``latency`` — ``(min, max)`` seconds added to each served request with the injected sleep.
    * ``drop_rate`` — chance that a served request's connection is dropped (half reset before
      any response, half cut mid-body), decided per (request identity, attempt).
    * ``original_drop_rate`` — chance that a download of an original file (``/storage/``) is
      cut after a part of its body (a quarter to three quarters, at least one byte), decided
      per (request identity, attempt): a client resuming with ``Range`` gets further each time.
    * ``gateway_error_rate`` — chance that a request is answered by the gateway in front of the
      backend instead: 502, 503, 504 or Cloudflare's 520/524, with an HTML body (what the real
      backend's clients see), decided per (request identity, attempt).
    * ``unknown_ids`` — what a bulk request naming ids that do not exist gets: ``"drop"`` (the
      real v2 API: they are silently left out of a 200) or ``"invalid_ids"`` (the seed's 400
      ``invalid_ids`` naming them).
    * ``inline_max_bytes`` — payloads (an item's ``data`` as compact JSON) longer than this
      are served under ``response_mode=inline`` as a truncated inline wrapper, whose
      ``presigned_url`` holds the payload (the real backend's ``GROUND_TRUTH_INLINE_MAX_BYTES``,
      10 MiB there); None (the default) serves every payload inline.
    * ``truncated_no_url_rate`` — fraction of items whose truncated wrapper carries no
      ``presigned_url`` (the payload cannot be recovered); decided per (resource, id).
    * ``payload_corrupt_rate`` — fraction of items whose externalized payload is served with
      one byte changed, so it no longer matches its wrapper's ``data_digest``; per (resource, id).
    * ``payload_url_expired_rate`` — chance that a payload URL is issued already expired (the
      store answers 403); decided per (resource, id, how many URLs it was issued before).
    * ``stall_rate`` — chance that a served request's answer stalls: headers and half of the
      body are sent, then nothing until the client gives up (or ``stall_seconds`` pass, then
      the connection is closed); decided per (request identity, attempt).

    Raises ``TypeError`` / ``ValueError`` for values of the wrong type or out of range.
    """

    seed: int = 0
    partial_failure_rate: float = 0.0
    permanent_failure_rate: float = 0.0
    rate_limit: RateLimit | None = None
    outages: tuple[tuple[float, float], ...] = ()
    latency: tuple[float, float] = (0.0, 0.0)
    drop_rate: float = 0.0
    gateway_error_rate: float = 0.0
    original_drop_rate: float = 0.0
    unknown_ids: str = "drop"
    inline_max_bytes: int | None = None
    truncated_no_url_rate: float = 0.0
    payload_corrupt_rate: float = 0.0
    payload_url_expired_rate: float = 0.0
    stall_rate: float = 0.0
    stall_seconds: float = 30.0
    name: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"FaultProfile.seed must be an int, got {type(self.seed).__name__}")
        for rate_name in _RATES:
            object.__setattr__(self, rate_name, _rate(rate_name, getattr(self, rate_name)))
        limit = self.inline_max_bytes
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise TypeError(f"inline_max_bytes must be an int or None, got {limit!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"inline_max_bytes must be >= 0, got {limit!r}")
        object.__setattr__(self, "stall_seconds", _seconds("stall_seconds", self.stall_seconds))
        object.__setattr__(self, "rate_limit", _rate_limit(self.rate_limit))
        if self.unknown_ids not in UNKNOWN_IDS:
            raise ValueError(
                f"unknown_ids must be one of {', '.join(UNKNOWN_IDS)}, got {self.unknown_ids!r}"
            )
        outages: object = self.outages
        if not isinstance(outages, Iterable) or isinstance(outages, str | bytes):
            raise TypeError("outages must be a sequence of (start, end) pairs")
        windows = tuple(sorted(_window(window) for window in outages))
        object.__setattr__(self, "outages", windows)
        latency = self.latency
        if not isinstance(latency, tuple | list) or len(latency) != 2:
            raise TypeError("latency must be a (min, max) pair of seconds")
        low, high = _seconds("latency min", latency[0]), _seconds("latency max", latency[1])
        if high < low:
            raise ValueError(f"latency max must be >= min, got ({low}, {high})")
        object.__setattr__(self, "latency", (low, high))

    @classmethod
    def preset(cls, name: str, *, seed: int = 0) -> FaultProfile:
        """Return the named preset (see :data:`PRESETS`) with the given fault seed.

        Raises ``ValueError`` naming the known presets for an unknown name.
        """
        try:
            settings = PRESETS[name]
        except (KeyError, TypeError):
            known = ", ".join(sorted(PRESETS))
            raise ValueError(f"unknown fault profile {name!r}; known profiles: {known}") from None
        return cls(seed=seed, name=name, **settings)

    @classmethod
    def resolve(cls, value: FaultProfile | str | None, *, seed: int = 0) -> FaultProfile:
        """Turn what a caller passed as ``faults=`` into a profile.

        None means ``"none"``; a string is a spec for :meth:`from_spec` (seeded with ``seed``);
        a profile is returned unchanged. Raises ``TypeError`` for anything else.
        """
        if value is None:
            return cls.preset("none", seed=seed)
        if isinstance(value, FaultProfile):
            return value
        if isinstance(value, str):
            return cls.from_spec(value, seed=seed)
        raise TypeError(f"faults must be a FaultProfile, a preset name or None, not {value!r}")

    @classmethod
    def from_spec(cls, spec: str, *, seed: int = 0) -> FaultProfile:
        """Parse ``"mild"`` or ``"heavy,drop_rate=0,rate_limit=10/20"`` (what ``--faults`` takes).

        The optional first part is a preset name (default ``none``); the rest are
        ``field=value`` overrides: rates as numbers, ``rate_limit=PER_SECOND/BURST`` or ``none``,
        ``latency=MIN-MAX``, ``outages=START-END;START-END``, ``seed=N``.
        Raises ``ValueError`` with the offending part for anything unparseable.
        """
        parts = [part.strip() for part in spec.split(",") if part.strip()]
        base = "none"
        if parts and "=" not in parts[0]:
            base = parts.pop(0)
        overrides: dict[str, Any] = {}
        for part in parts:
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in _SPEC_FIELDS:
                known = ", ".join(sorted(_SPEC_FIELDS))
                raise ValueError(
                    f"bad fault override {part!r}; use field=value with one of: {known}"
                )
            try:
                overrides[key] = _SPEC_FIELDS[key](raw.strip())
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bad value in fault override {part!r}: {exc}") from exc
        profile = cls.preset(base, seed=int(overrides.pop("seed", seed)))
        if overrides:
            profile = replace(profile, name=f"{base}+custom", **overrides)
        return profile

    def replace(self, **changes: Any) -> FaultProfile:
        """Return a copy with ``changes`` applied (validated like the constructor)."""
        return replace(self, **changes)

    @property
    def is_clean(self) -> bool:
        """True when this profile injects no fault at all."""
        return (
            self.partial_failure_rate == 0
            and self.permanent_failure_rate == 0
            and self.rate_limit is None
            and not self.outages
            and self.latency == (0.0, 0.0)
            and all(getattr(self, name) == 0 for name in _RATES)
            and self.inline_max_bytes is None
        )

    def describe(self, language: str = "en") -> str:
        """A one-line human summary, used by the CLI banner: in Korean when ``language`` is
        ``ko`` (or ``ko-KR``...), else in English."""
        words = _DESCRIBE_KO if language.split("-")[0].lower() == "ko" else _DESCRIBE_EN
        if self.is_clean:
            return f"none ({words['clean']})"
        bits = []
        if self.partial_failure_rate:
            bits.append(words["partial"].format(f"{self.partial_failure_rate:.0%}"))
        if self.permanent_failure_rate:
            bits.append(words["corrupted"].format(f"{self.permanent_failure_rate:.1%}"))
        if self.rate_limit is not None:
            rate, burst = self.rate_limit.per_second, self.rate_limit.burst
            bits.append(words["rate"].format(f"{rate:g}", burst))
        if self.outages:
            spans = ", ".join(f"{start:g}-{end:g}" for start, end in self.outages)
            bits.append(words["outages"].format(spans))
        if self.latency != (0.0, 0.0):
            low, high = self.latency[0] * 1000, self.latency[1] * 1000
            bits.append(words["latency"].format(f"{low:g}-{high:g}"))
        if self.drop_rate:
            bits.append(words["drops"].format(f"{self.drop_rate:.1%}"))
        if self.gateway_error_rate:
            bits.append(words["gateway"].format(f"{self.gateway_error_rate:.1%}"))
        if self.inline_max_bytes is not None:
            bits.append(words["inline_max"].format(self.inline_max_bytes))
        bits.extend(
            words[rate_name].format(f"{getattr(self, rate_name):.1%}")
            for rate_name in _PHRASED_RATES
            if getattr(self, rate_name)
        )
        return f"{self.name or 'custom'} ({'; '.join(bits)})"

    # -- decisions -----------------------------------------------------------------------

    def is_corrupted(self, resource: str, item_id: int) -> bool:
        """True when ``item_id`` of ``resource`` always fails with ``item_corrupted``."""
        rate = self.permanent_failure_rate
        return rate > 0 and decide(self.seed, "permanent", resource, item_id) < rate

    def item_unavailable(self, resource: str, item_id: int, attempt: int) -> bool:
        """True when the ``attempt``-th fetch (0-based) of the item fails retryably."""
        rate = self.partial_failure_rate
        return rate > 0 and decide(self.seed, "partial", resource, item_id, attempt) < rate

    def drop(self, request_key: str, attempt: int) -> str | None:
        """The drop kind (one of :data:`DROP_KINDS`) for this request attempt, or None."""
        if self.drop_rate <= 0 or decide(self.seed, "drop", request_key, attempt) >= self.drop_rate:
            return None
        pick = decide(self.seed, "drop-kind", request_key, attempt)
        return DROP_KINDS[0] if pick < 0.5 else DROP_KINDS[1]

    def gateway_error(self, request_key: str, attempt: int) -> int | None:
        """The gateway status (one of :data:`GATEWAY_STATUSES`) answering this request
        attempt instead of the backend, or None."""
        rate = self.gateway_error_rate
        if rate <= 0 or decide(self.seed, "gateway", request_key, attempt) >= rate:
            return None
        pick = decide(self.seed, "gateway-status", request_key, attempt)
        return GATEWAY_STATUSES[int(pick * len(GATEWAY_STATUSES))]

    def stall(self, request_key: str, attempt: int) -> bool:
        """True when this request attempt's answer stalls after its headers."""
        rate = self.stall_rate
        return rate > 0 and decide(self.seed, "stall", request_key, attempt) < rate

    def payload_fault(self, kind: str, resource: str, item_id: int, *more: int) -> bool:
        """True when the payload fault ``kind`` (``truncated_no_url``, ``payload_corrupt``,
        ``payload_url_expired``) hits this item (and issue number ``more``)."""
        rate: float = getattr(self, f"{kind}_rate")
        return rate > 0 and decide(self.seed, kind, resource, item_id, *more) < rate
    def original_cut(self, request_key: str, attempt: int) -> float | None:
        """The fraction of its body (0.25-0.75) after which this download attempt of an
        original file is cut, or None to serve it whole."""
        rate = self.original_drop_rate
        if rate <= 0 or decide(self.seed, "original-drop", request_key, attempt) >= rate:
            return None
        return 0.25 + 0.5 * decide(self.seed, "original-cut", request_key, attempt)

    def latency_for(self, request_key: str, attempt: int) -> float:
        """Seconds of latency to add to this request attempt."""
        low, high = self.latency
        if high <= 0:
            return 0.0
        return low + (high - low) * decide(self.seed, "latency", request_key, attempt)

    def outage_remaining(self, elapsed: float) -> float | None:
        """Seconds left in the outage covering ``elapsed`` (since start), or None when up."""
        for start, end in self.outages:
            # A client that waits exactly the advertised Retry-After is out of the window, even
            # if float rounding lands it a hair before the end.
            if start <= elapsed < end - 1e-9:
                return end - elapsed
        return None


def _parse_rate_limit(raw: str) -> RateLimit | None:
    if raw.lower() == "none":
        return None
    per_second, sep, burst = raw.partition("/")
    if not sep:
        raise ValueError("use PER_SECOND/BURST, e.g. 5/10")
    return RateLimit(float(per_second), int(burst))


def _parse_span(raw: str) -> tuple[float, float]:
    low, sep, high = raw.partition("-")
    return (float(low), float(high)) if sep else (float(low), float(low))


def _parse_outages(raw: str) -> tuple[tuple[float, float], ...]:
    if raw.lower() == "none" or not raw:
        return ()
    return tuple(_parse_span(span) for span in raw.split(";") if span.strip())


#: The rates :meth:`FaultProfile.describe` words with one phrase each (in this order).
_PHRASED_RATES = (
    "truncated_no_url_rate", "payload_corrupt_rate", "payload_url_expired_rate", "stall_rate",
    "original_drop_rate",
)
#: The fields that are rates (validated alike; zero means the fault is off).
_RATES = (
    "partial_failure_rate", "permanent_failure_rate", "drop_rate", "gateway_error_rate",
    *_PHRASED_RATES,
)


def _parse_bytes(raw: str) -> int | None:
    return None if raw.lower() == "none" else int(raw)


_SPEC_FIELDS: Mapping[str, Any] = {
    "seed": int,
    "partial_failure_rate": float,
    "permanent_failure_rate": float,
    "drop_rate": float,
    "gateway_error_rate": float,
    "original_drop_rate": float,
    "rate_limit": _parse_rate_limit,
    "latency": _parse_span,
    "outages": _parse_outages,
    "unknown_ids": str,
    "inline_max_bytes": _parse_bytes,
    "truncated_no_url_rate": float,
    "payload_corrupt_rate": float,
    "payload_url_expired_rate": float,
    "stall_rate": float,
    "stall_seconds": float,
}

#: The phrases of :meth:`FaultProfile.describe`, in English and Korean.
_DESCRIBE_EN = {
    "clean": "no faults",
    "partial": "{} retryable item failures",
    "corrupted": "{} corrupted items",
    "rate": "rate limit {}/s burst {}",
    "outages": "outages at {} s",
    "latency": "latency {} ms",
    "drops": "{} dropped connections",
    "gateway": "{} gateway errors",
    "inline_max": "payloads over {} bytes truncated",
    "truncated_no_url_rate": "{} truncated payloads without a URL",
    "payload_corrupt_rate": "{} corrupted payloads",
    "payload_url_expired_rate": "{} expired payload URLs",
    "stall_rate": "{} stalled answers",
    "original_drop_rate": "{} original downloads cut mid-body",
}
_DESCRIBE_KO = {
    "clean": "장애 없음",
    "partial": "재시도할 수 있는 항목 실패 {}",
    "corrupted": "손상된 항목 {}",
    "rate": "요청 제한 초당 {}건, 버스트 {}건",
    "outages": "{}초 구간 서비스 중단",
    "latency": "지연 {} ms",
    "drops": "연결 끊김 {}",
    "gateway": "게이트웨이 오류 {}",
    "inline_max": "{}바이트를 넘는 페이로드 잘림",
    "truncated_no_url_rate": "URL 없이 잘린 페이로드 {}",
    "payload_corrupt_rate": "손상된 페이로드 {}",
    "payload_url_expired_rate": "만료된 페이로드 URL {}",
    "stall_rate": "응답 도중 멈춤 {}",
    "original_drop_rate": "원본 파일 다운로드 도중 끊김 {}",
}

#: Named presets. ``mild`` is the CLI default: a few per cent of retryable item failures, a rate
#: limit a 2000-item export runs into, rare dropped connections and a little latency. ``heavy``
#: faults roughly one request or item in five, adds a one-second outage and a few corrupted ids.
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "none": {},
    "mild": {
        "partial_failure_rate": 0.03,
        "rate_limit": RateLimit(per_second=1.0, burst=2),
        "latency": (0.0, 0.003),
        "drop_rate": 0.005,
    },
    "heavy": {
        "partial_failure_rate": 0.12,
        "permanent_failure_rate": 0.005,
        "rate_limit": RateLimit(per_second=4.0, burst=3),
        "outages": ((1.0, 2.0),),
        "latency": (0.001, 0.01),
        "drop_rate": 0.04,
    },
}
