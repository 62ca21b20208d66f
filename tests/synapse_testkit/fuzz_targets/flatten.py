#!/usr/bin/env python3
"""Fuzz ``synapse_sdk.failures.walk_chain`` and ``flatten_exception`` on exception graphs built
from the input: causes, contexts, suppression, exception groups, self-cycles and cycles through
groups, and hostile exceptions (``__str__`` raising, returning a non-str, a str subclass whose
methods raise, or a megabyte of text; ``__cause__``/``__suppress_context__``/``exceptions``
properties that raise; ``BaseException`` subclasses).

Invariants (an ``AssertionError`` is a libFuzzer crash):

* neither function raises; both terminate (libFuzzer's ``-timeout`` catches a hang);
* ``walk_chain``: a list starting with the root, no exception twice, at most ``max_nodes``
  long, only exceptions reachable from the root within ``max_depth`` links; with limits above
  the graph's size, exactly the reachable set (checked against an independent BFS);
* ``flatten_exception``: a ``str`` of at most ``limit`` characters that starts with the root's
  type name (as far as the kept head reaches), the same text twice in a row, and, when every
  exception prints plainly and the text fits, exactly one ``Type: message`` line per exception.

Run: ``python fuzz/fuzz_flatten.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``.
"""

from __future__ import annotations

from synapse_sdk.failures import flatten_exception, walk_chain
from synapse_testkit.hostile import Provider, build_chain, plain_message, provider, reachable

_OMITTED = "\n…\n"


def _type_name(cls: type) -> str:
    module = cls.__module__
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def check(root: BaseException, everything: list[BaseException], fdp: Provider) -> None:
    distance = reachable(root)

    max_depth = fdp.ConsumeIntInRange(0, 12)
    max_nodes = fdp.ConsumeIntInRange(1, 12)
    chain = walk_chain(root, max_depth=max_depth, max_nodes=max_nodes)
    assert isinstance(chain, list) and chain and chain[0] is root
    assert len(chain) <= max_nodes
    assert len({id(e) for e in chain}) == len(chain), "an exception listed twice"
    for exc in chain:
        assert isinstance(exc, BaseException)
        assert id(exc) in distance, "not reachable from the root"
        assert distance[id(exc)] <= max_depth, "deeper than max_depth"

    room = len(everything) + 1
    full = walk_chain(root, max_depth=room, max_nodes=room)
    assert {id(e) for e in full} == set(distance), "the walk differs from the reachable set"

    limit = fdp.ConsumeIntInRange(64, 4096)
    text = flatten_exception(root, limit=limit)
    assert type(text) is str and len(text) <= limit, len(text)
    assert flatten_exception(root, limit=limit) == text, "not deterministic"
    head = (limit - len(_OMITTED) + 1) // 2
    name = _type_name(type(root))
    assert text.startswith(name[:head]), (name, text[:80])

    default = walk_chain(root)
    messages = [plain_message(exc) for exc in default]
    if all(m is not None for m in messages):
        lines = [
            f"{_type_name(type(exc))}: {m}" if m else _type_name(type(exc))
            for exc, m in zip(default, messages, strict=True)
        ]
        expected = "\n".join(lines)
        if len(expected) <= limit:
            assert text == expected, (text, expected)


def TestOneInput(data: bytes) -> None:
    fdp = provider(data)
    root, everything = build_chain(fdp, max_exceptions=10)
    check(root, everything, fdp)

