r"""Failure classification: the four shipped categories against the naive loop, one run.

The naive loop is the one the seed page describes: walk the chain, join ``Type: message`` lines
into one blob (uncapped), then ``re.search`` every pattern in declaration order until one
matches. Ours is ``category.classify``: the same walk, the blob capped (8 KiB head + 8 KiB
tail), the patterns in declaration order, each skipped when none of its gate words is in the
blob (see ``synapse_sdk.failures.Gated``).

Corpus, per category (export, upload, train, inference):

* **typical**: one-level exceptions as code raises them (``KeyError('annotations')``,
  ``ConnectionRefusedError``, ``FileNotFoundError``, ``TimeoutError``, an unmatched
  ``ValueError``);
* **at the cap**: messages of 16 KiB (the blob cap, so the naive loop sees the same text) of
  traceback frames and JSON records that mention steps, timeouts, pools, datasets and models
  without naming a failure: nothing in them, the category's generic failure phrase at the end
  (the last declared pattern), a transport failure at the end, a two-level chain with a full
  disk at the bottom, a response body with a 15 000-id failure list;
* **2 MB**: one 2 MB message (the cap cuts it to 16 KiB; the naive loop scans all of it).

It checks that ours and the naive loop agree on every classification under the cap, and prints
CPU ns per classification (best of interleaved rounds, ``time.process_time_ns`` so other load on
a shared machine does not count), the naive/ours ratio, and whether the targets are met:

* the worst exception at the blob cap classified in at most 2 ms;
* a typical one-level exception classified in at most 20 µs.

Run: ``.venv/bin/python benchmarks/bench_classify.py`` (about 30 s) or ``--quick``.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from synapse_sdk.failures import DEFAULT_LIMIT, walk_chain
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import FailureCategory

SEED = 20240611
TARGET_CAP_NS = 2_000_000
TARGET_TYPICAL_NS = 20_000
# The last declared pattern of each category: its own generic failure.
GENERIC = {"export": "export failed", "upload": "upload failed", "train": "training failed",
           "inference": "inference failed"}  # fmt: skip

_FUNCS = ("run_step", "convert_item", "fetch_page", "save_json", "_request", "send", "handle",
          "load_dataset", "prepare_model", "iter_results", "get_connection", "urlopen")  # fmt: skip
_STATEMENTS = (
    "response = self._pool.urlopen(method, url, timeout=timeout, retries=retries)",
    "record = self.converter.convert(item, step=self.current_step)",
    "return self._client.request('GET', f'/v2/datasets/{dataset_id}/items', timeout=30.0)",
    "model = registry.load(model_name, device=self.config.device)",
    "for page in paginate(self.client, params=self.params, page_size=500):",
    "self.ledger.mark(item_id, status='pending', attempt=attempt)",
)


def noise(rng: random.Random, size: int) -> str:
    """About ``size`` characters of traceback frames and JSON records: the words the gates look
    for in part (step, timeout, pool, dataset, model, connection), no failure phrase."""
    parts: list[str] = []
    total = 0
    while total < size:
        if rng.random() < 0.5:
            part = (
                f'  File "/srv/plugins/exporter/{rng.choice(_FUNCS)}.py", line '
                f"{rng.randint(1, 900)}, in {rng.choice(_FUNCS)}\n    {rng.choice(_STATEMENTS)}"
            )
        else:
            part = json.dumps({
                "id": rng.randint(1, 10**6), "status": rng.choice(["pending", "done", "retry"]),
                "data_unit": {"files": {"image": f"s3://bucket/{rng.getrandbits(48):012x}.jpg"}},
                "annotations": [{"label": rng.choice(["cat", "dog", "car"]), "bbox": [1, 2, 3, 4]}],
            })  # fmt: skip
        parts.append(part)
        total += len(part) + 1
    return "\n".join(parts)[:size]


class ChainedError(Exception):
    """A project exception raised from a lower-level one."""


def _raised(outer: BaseException, cause: BaseException | None = None) -> BaseException:
    try:
        try:
            if cause is not None:
                raise cause
        except BaseException as low:
            raise outer from low
        raise outer
    except BaseException as exc:
        return exc


def typical() -> list[BaseException]:
    """One-level exceptions as plugin and library code raise them."""
    return [
        _raised(KeyError("annotations")),
        _raised(ConnectionRefusedError(111, "Connection refused")),
        _raised(FileNotFoundError(2, "No such file or directory", "/data/job/result.json")),
        _raised(TimeoutError("timed out")),
        _raised(ValueError("invalid literal for int() with base 10: 'x'")),
    ]


def at_cap(rng: random.Random, name: str, size: int) -> list[BaseException]:
    """Exceptions whose blob is about ``size`` characters (see the module docstring)."""
    body = noise(rng, size - 200)
    ids = list(range(15_000))
    envelope = json.dumps({"error": {"code": "unknown_to_us", "failed_ids": ids}})
    return [
        _raised(RuntimeError(body)),
        _raised(RuntimeError(f"{body}\n{GENERIC[name]}")),
        _raised(RuntimeError(f"{body}\n[Errno 111] Connection refused")),
        _raised(ChainedError(body[: size // 2]),
                OSError(28, f"{body[size // 2 :]} No space left on device")),
        _raised(RuntimeError(f"bulk fetch failed: {envelope}"[:size])),
    ]  # fmt: skip


def naive_classifier(category: FailureCategory[Any]) -> Callable[[BaseException], object]:
    """The loop the seed describes: flatten the whole chain, then search each pattern in turn."""
    compiled = [(re.compile(source), code) for source, code in category.patterns]

    def classify(exc: BaseException) -> object:
        lines = []
        for node in walk_chain(exc):
            name = type(node).__qualname__
            module = type(node).__module__
            if module not in ("builtins", "__main__"):
                name = f"{module}.{name}"
            message = str(node)
            lines.append(f"{name}: {message}" if message else name)
        blob = "\n".join(lines)
        for regex, code in compiled:
            if regex.search(blob):
                return code
        return None

    return classify


def per_call_ns(
    fn: Callable[[BaseException], object], items: Sequence[BaseException], budget: float
) -> float:
    """Mean CPU ns per call over ``items``, looping for about ``budget`` seconds (CPU time of
    this process, so other work on a shared machine does not count)."""
    start = time.process_time_ns()
    for exc in items:
        fn(exc)
    once = max(time.process_time_ns() - start, 1)
    loops = max(1, int(budget * 1e9 / once))
    gc.disable()
    try:
        start = time.process_time_ns()
        for _ in range(loops):
            for exc in items:
                fn(exc)
        return (time.process_time_ns() - start) / (loops * len(items))
    finally:
        gc.enable()


def best_of(
    rounds: int,
    contenders: dict[str, Callable[[BaseException], object]],
    items: Sequence[BaseException],
    budget: float,
) -> dict[str, float]:
    """Each contender's best per-call time over ``rounds`` rounds, interleaved within a round."""
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(rounds):
        for name, fn in contenders.items():
            best[name] = min(best[name], per_call_ns(fn, items, budget))
    return best


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter timing")
    args = parser.parse_args(argv)
    rng = random.Random(SEED)
    budget, rounds = (0.02, 2) if args.quick else (0.1, 4)
    print(f"Python {sys.version.split()[0]}; CPU ns per classification, best of {rounds} rounds")
    print(f"{'category':<10} {'corpus':<22} {'naive ns':>12} {'ours ns':>10} {'naive/ours':>10}")
    worst_cap = worst_typical = 0.0
    for name in CATEGORY_NAMES:
        category = get_category(name)
        ours, naive = category.classify, naive_classifier(category)
        rows: list[tuple[str, list[BaseException]]] = [("typical (1 level)", typical())]
        rows += [(f"cap #{i}", [exc]) for i, exc in enumerate(at_cap(rng, name, DEFAULT_LIMIT))]
        for label, items in rows:
            if any(ours(exc) != naive(exc) for exc in items):
                print(f"DISAGREEMENT: {name} {label}: a bug", file=sys.stderr)
                return 1
            for exc in items if label.startswith("typical") else ():
                one = best_of(rounds + 2, {"ours": ours}, [exc] * 20, budget)["ours"]
                worst_typical = max(worst_typical, one)
            best = best_of(rounds, {"naive": naive, "ours": ours}, items, budget)
            if not label.startswith("typical"):
                worst_cap = max(worst_cap, best["ours"])
            print(f"{name:<10} {label:<22} {best['naive']:>12,.0f} {best['ours']:>10,.0f} "
                  f"{best['naive'] / best['ours']:>9.1f}x")  # fmt: skip
        huge = [_raised(RuntimeError(noise(rng, 2 * 1024 * 1024)))]
        best = best_of(1, {"naive": naive, "ours": ours}, huge, 0.0)
        worst_cap = max(worst_cap, best["ours"])
        print(f"{name:<10} {'2 MB (capped: ours)':<22} {best['naive']:>12,.0f} "
              f"{best['ours']:>10,.0f} {best['naive'] / best['ours']:>9.1f}x")  # fmt: skip
    print()
    print(f"target worst exception at the blob cap <= 2 ms: {worst_cap / 1e6:.3f} ms "
          f"{'MET' if worst_cap <= TARGET_CAP_NS else 'NOT MET'}")  # fmt: skip
    print(f"target typical one-level exception <= 20 us: {worst_typical / 1e3:.2f} us "
          f"{'MET' if worst_typical <= TARGET_TYPICAL_NS else 'NOT MET'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
