r"""ReDoS audit: every regex classification applies, timed on adversarial text, growth measured.

``tests/plugins/test_categories.py`` proves from the parse trees that each shipped regex costs a
constant per start position (bounded width, no nested quantifier, a bounded number of paths), or
for the envelope parser's unbounded ones that every choice is decided by one character and no
attempt rescans another's run; so a search is linear in the text, and the classifier's blob cap
(``failures.DEFAULT_LIMIT``, 16 KiB) bounds a whole classification. This script measures that
claim instead of trusting it; it asserts nothing in the unit tests' way, it prints figures.

1. **Each regex.** The shared fragments (``failure_patterns``), each category's own patterns,
   ``failure_semantics._STEP_IN_TEXT`` (with ``search``) and the envelope parser's regexes
   (applied as ``envelopes`` applies them: ``finditer``, ``match`` or ``sub``) run on adversarial
   families of text at 4 KiB (a quarter of the cap) and at 16 KiB (the cap): long runs of one
   character (``a``, spaces), ``{'`` runs, nested-quantifier bait (``aaaa…!``), ``[Errno 1 ``
   repeats, ``step '<70 letters>'`` repeats; built from the regex's own words: near misses
   (each word minus its last letter), the phrase one word short (all words but the last), one
   long token of the words' prefixes, the words with 25-digit runs and with tab/space runs
   between them; and envelope bait (an open ``{'`` string of escaped quotes, a ``{`` followed by
   spaces, ``{\"`` repeats). Growth = time at 16 KiB / time at 4 KiB: linear is about 4,
   quadratic 16. Printed per regex: the worst growth and the worst µs per call at the cap.
2. **Controls**: known super-linear regexes (quadratic, cubic, exponential, and the envelope
   parser's token regex before its fix) measured the same way at smaller sizes. They must grow
   far above the bound, or the method could not see a blow-up (the run then fails too).
3. **Each category's classifier** (``classify(message=...)``: envelope layer, gates,
   patterns) on the same families, built from all the category's patterns, at 4 KiB, 16 KiB,
   17 KiB and 2 MB: the growth from 4 to 16 KiB; 2 MB against 17 KiB, both over the cap and so
   both cut to the same 16 KiB blob (8 KiB of head, a "…" line, 8 KiB of tail): about 1x is the
   cap doing its job; and 2 MB against 16 KiB, under the cap, for the record (crossing the cap
   costs a fixed amount: the "…" makes the blob non-ASCII, which makes the gates' lowercasing
   and substring searches slower). For contrast, the naive alternative: the same
   patterns in declaration order (``re.search`` until one matches) over the uncapped 2 MB text.

Timing: CPU time of this process (``time.process_time_ns``, so other load on a shared machine
does not count), the mean of a loop of at least ``--min-ms`` milliseconds, the best of several
rounds with the sizes interleaved; the collector is off while timing. A growth above
``BOUND`` (10x for 4x the input) is measured again, with more rounds, up to three times; it
counts only if every measurement exceeds the bound. Exit status 1 if any regex or classifier
growth, or any 2 MB / 17 KiB ratio above 3, survives the re-measuring, or a control does not
show.

Run: ``.venv/bin/python benchmarks/redos_audit.py`` (about 45 s on 2 cores) or ``--quick``
(a few seconds).
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synapse_sdk import envelopes
from synapse_sdk.failures import DEFAULT_LIMIT
from synapse_sdk.plugins import failure_patterns
from synapse_sdk.plugins.actions import CATEGORY_NAMES, get_category
from synapse_sdk.plugins.failure_semantics import _STEP_IN_TEXT

CAP = DEFAULT_LIMIT  # 16 KiB: the longest blob a regex of the classifier sees
QUARTER = CAP // 4
OVER = CAP + CAP // 16  # 17 KiB: just over the cap, so capped like 2 MB
HUGE = 2 * 1024 * 1024  # a 2 MB message
BOUND = 10.0  # growth allowed for 4x the input (linear is 4x, quadratic 16x)
HUGE_BOUND = 3.0  # 2 MB may cost at most this many times 17 KiB (both capped)
# The families the naive uncapped loop runs on (seconds each at 2 MB: a few only).
NAIVE_FAMILIES = ("near miss", "a-run", "[Errno 1")

Op = Callable[[str], object]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // max(1, len(unit)) + 1))[:size]


def _words(source: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"[A-Za-z]{3,}", source))) or ["abc"]


def families(source: str, size: int) -> dict[str, str]:
    """The adversarial texts of ``size`` characters for a regex whose source is ``source``."""
    words = _words(source)
    near = " ".join(word[:-1] for word in words) + " "
    short = " ".join(words[:-1]) + " " if len(words) > 1 else words[0][:-1] + " "
    return {
        "a-run": "a" * size,
        "spaces": " " * size,
        "{' runs": _fill("{'", size),
        "aaaa…!": "a" * (size - 1) + "!",
        "[Errno 1": _fill("[Errno 1 ", size),
        "step bait": _fill("step '" + "a" * 70 + "' ", size),
        "near miss": _fill(near, size),
        "one word short": _fill(short, size),
        "prefix token": _fill("".join(word[: max(1, len(word) - 1)] for word in words), size),
        "digit runs": _fill("".join(f"{word} {'9' * 25} " for word in words), size),
        "tab runs": _fill("".join(f"{word}\t \t \t \t " for word in words), size),
        "open '\\'": ("code {'" + _fill("\\'", size))[:size],
        "{ spaces": ("code {" + " " * size)[: size - 1] + "x",
        '{\\" runs': ("code " + _fill('{\\"', size))[:size],
    }


def cost_ns(op: Op, text: str, min_ns: int) -> float:
    """Mean CPU ns of ``op(text)``, looping for at least ``min_ns``."""
    loops = 1
    while True:
        start = time.process_time_ns()
        for _ in range(loops):
            op(text)
        elapsed = time.process_time_ns() - start
        if elapsed >= min_ns:
            return elapsed / loops
        loops = loops * 2 if elapsed <= 0 else max(loops * 2, int(loops * min_ns / elapsed * 1.2))


def best_costs(op: Op, texts: Sequence[str], rounds: int, min_ns: int) -> list[float]:
    """The best ``cost_ns`` of each text over ``rounds`` rounds, the texts interleaved."""
    best = [float("inf")] * len(texts)
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for index, text in enumerate(texts):
                best[index] = min(best[index], cost_ns(op, text, min_ns))
    finally:
        gc.enable()
    return best


@dataclass
class Growth:
    """One op on one family: ns at the small and the large size."""

    family: str
    small_ns: float
    large_ns: float

    @property
    def ratio(self) -> float:
        return self.large_ns / self.small_ns if self.small_ns > 0 else float("inf")


def measure(
    op: Op,
    small: str,
    large: str,
    family: str,
    rounds: int,
    min_ns: int,
    bound: float = BOUND,
    retries: int = 3,
) -> Growth:
    """The growth of ``op`` from ``small`` to ``large``; above ``bound``, measured again (more
    rounds) up to ``retries`` times, keeping the lowest."""
    small_ns, large_ns = best_costs(op, (small, large), rounds, min_ns)
    growth = Growth(family, small_ns, large_ns)
    for attempt in range(retries):
        if growth.ratio <= bound:
            break
        small_ns, large_ns = best_costs(op, (small, large), rounds * (attempt + 2), min_ns)
        again = Growth(family, small_ns, large_ns)
        growth = again if again.ratio < growth.ratio else growth
    return growth


@dataclass
class RegexReport:
    label: str
    worst_growth: Growth
    worst_at_cap: Growth


def audit_regex(label: str, source: str, op: Op, rounds: int, min_ns: int) -> RegexReport:
    small, large = families(source, QUARTER), families(source, CAP)
    results = [measure(op, small[name], large[name], name, rounds, min_ns) for name in small]
    return RegexReport(
        label,
        max(results, key=lambda g: g.ratio),
        max(results, key=lambda g: g.large_ns),
    )


def _searcher(regex: re.Pattern[str]) -> Op:
    return regex.search


def _finder(regex: re.Pattern[str]) -> Op:
    return lambda text: sum(1 for _ in regex.finditer(text))


def shipped_regexes() -> list[tuple[str, str, Op, set[str]]]:
    """(label, source, op, categories using it): fragments, categories' own patterns, the step
    regex and the envelope parser's regexes, each once."""
    rows: dict[str, tuple[str, str, Op, set[str]]] = {}
    for name in failure_patterns.__all__:
        source = getattr(failure_patterns, name)
        if isinstance(source, str):  # the fragments (not the network block or its mapper)
            rows[source] = (name, source, _searcher(re.compile(source)), set())
    for category_name in CATEGORY_NAMES:
        for index, (source, _code) in enumerate(get_category(category_name).patterns):
            if source not in rows:
                label = f"{category_name}[{index}]"
                rows[source] = (label, source, _searcher(re.compile(source)), set())
            rows[source][3].add(category_name)
    rows[_STEP_IN_TEXT.pattern] = ("_STEP_IN_TEXT", _STEP_IN_TEXT.pattern,
                                   _searcher(_STEP_IN_TEXT), set())  # fmt: skip
    escape = envelopes._ESCAPE
    for label, regex, op in (
        ("envelopes._OPEN", envelopes._OPEN, _finder(envelopes._OPEN)),
        ("envelopes._LITERAL_TOKEN", envelopes._LITERAL_TOKEN, _finder(envelopes._LITERAL_TOKEN)),
        ("envelopes._DQ_BODY", envelopes._DQ_BODY, envelopes._DQ_BODY.match),
        ("envelopes._SQ_BODY", envelopes._SQ_BODY, envelopes._SQ_BODY.match),
        ("envelopes._ESCAPE", escape, lambda text: escape.sub(r"\1", text)),
    ):
        rows[f"envelopes:{label}"] = (label, regex.pattern, op, set())
    return list(rows.values())


# Known super-linear regexes, to show the measurement sees a blow-up: (label, op, small, large).
_OLD_TOKEN = re.compile(r"""'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*"|[{}]""")
CONTROLS: list[tuple[str, Op, str, str]] = [
    ("quadratic  \\w*! on a-run", re.compile(r"\w*!").search, "a" * 1024, "a" * 4096),
    ("cubic      .*.*=.* on a-run", re.compile(r".*.*=.*").search, "a" * 96, "a" * 384),
    ("exponential (\\w+\\s?)*$, +4 chars", re.compile(r"(\w+\s?)*$").search,
     "a" * 14 + "!", "a" * 18 + "!"),
    ("envelope token regex before the fix, open '\\'", _finder(_OLD_TOKEN),
     "{'" + "\\'" * 512, "{'" + "\\'" * 2048),
]  # fmt: skip


@dataclass
class CategoryReport:
    name: str
    growth: Growth  # the worst family, 4 KiB -> 16 KiB
    over: Growth  # the worst family, 17 KiB (just over the cap) -> 2 MB
    raw: Growth  # the same family, 16 KiB (under the cap) -> 2 MB
    slowest: Growth  # the family slowest at 2 MB
    median_ns: float  # the median family's cost at 2 MB
    naive_ns: float | None  # the naive loop over the uncapped 2 MB text (worst family measured)
    ours_ns: float  # ours on the same 2 MB texts


def audit_category(name: str, rounds: int, min_ns: int, naive_families: int) -> CategoryReport:
    category = get_category(name)
    source = " ".join(pattern for pattern, _ in category.patterns)

    def classify(text: str) -> object:
        return category.classify(message=text)

    small, large, over, huge = (families(source, size) for size in (QUARTER, CAP, OVER, HUGE))
    growths = [measure(classify, small[f], large[f], f, rounds, min_ns) for f in small]
    overs = [
        measure(classify, over[f], huge[f], f, rounds, min_ns, bound=HUGE_BOUND) for f in small
    ]
    worst_over = max(overs, key=lambda g: g.ratio)
    slowest = max(overs, key=lambda g: g.large_ns)
    at_cap = {g.family: g.large_ns for g in growths}
    raw = max(
        (Growth(g.family, at_cap[g.family], g.large_ns) for g in overs), key=lambda g: g.ratio
    )
    compiled = [re.compile(pattern) for pattern, _ in category.patterns]

    def naive(text: str) -> object:
        for regex in compiled:
            if regex.search(text):
                return regex
        return None

    naive_ns: float | None = None
    ours_ns = 0.0
    for family in NAIVE_FAMILIES[:naive_families]:
        text = huge[family]
        naive_ns = max(naive_ns or 0.0, best_costs(naive, [text], 1, 0)[0])
        ours_ns = max(ours_ns, best_costs(classify, [text], rounds, min_ns)[0])
    return CategoryReport(
        name,
        max(growths, key=lambda g: g.ratio),
        worst_over,
        raw,
        slowest,
        sorted(g.large_ns for g in overs)[len(overs) // 2],
        naive_ns,
        ours_ns,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter loops")
    parser.add_argument("--min-ms", type=float, default=None, help="shortest timed loop (ms)")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else 3
    min_ns = int((args.min_ms if args.min_ms is not None else 0.25 if args.quick else 0.5) * 1e6)
    naive_families = 1 if args.quick else 3
    started = time.monotonic()
    failures: list[str] = []

    print(
        f"Python {sys.version.split()[0]}; CPU time, best of {rounds} round(s), loops of "
        f">= {min_ns / 1e6:g} ms; sizes {QUARTER // 1024} KiB -> {CAP // 1024} KiB (the cap); "
        f"growth bound {BOUND:g}x"
    )
    print()
    print("1. each regex: worst growth 4 KiB -> 16 KiB, worst µs per call at 16 KiB")
    print(f"   {'regex':<26} {'growth':>7}  {'(family)':<16} {'µs@16K':>8}  (family)")
    reports: list[tuple[RegexReport, set[str]]] = []
    for label, source, op, used_by in shipped_regexes():
        report = audit_regex(label, source, op, rounds, min_ns)
        reports.append((report, used_by))
        worst, slow = report.worst_growth, report.worst_at_cap
        flag = "" if worst.ratio <= BOUND else "  SUPER-LINEAR"
        if flag:
            failures.append(f"{label}: {worst.ratio:.1f}x on {worst.family}")
        print(
            f"   {label:<26} {worst.ratio:>6.1f}x  {worst.family:<16} "
            f"{slow.large_ns / 1e3:>8.1f}  {slow.family}{flag}"
        )

    print()
    print("2. controls (known super-linear; must grow far above 4x for 4x the input)")
    for label, op, small, large in CONTROLS:
        small_ns, large_ns = best_costs(op, (small, large), rounds, min_ns)
        ratio = large_ns / small_ns
        seen = "seen" if ratio > BOUND else "NOT SEEN: the method is blind"
        print(
            f"   {label:<46} {small_ns / 1e3:>9.1f} µs -> {large_ns / 1e3:>9.1f} µs "
            f"= {ratio:>6.1f}x  {seen}"
        )
        if ratio <= BOUND:
            failures.append(f"control {label} grew only {ratio:.1f}x")

    print()
    print(
        "3. each category's classifier, classify(message=...): growth 4 -> 16 KiB; 2 MB against "
        "17 KiB\n   (both capped to the same 16 KiB blob) and against 16 KiB (under the cap); "
        "the naive loop\n   (every pattern, in order, over the uncapped 2 MB text)"
    )
    categories: list[CategoryReport] = []
    for index, name in enumerate(CATEGORY_NAMES):
        # --quick: the naive loop (about a second per text) for the first category only.
        cat = audit_category(
            name, rounds, min_ns, naive_families if index == 0 or not args.quick else 0
        )
        categories.append(cat)
        grow, over, raw = cat.growth, cat.over, cat.raw
        naive = (
            "naive: skipped (--quick)"
            if cat.naive_ns is None
            else f"naive 2 MB {cat.naive_ns / 1e6:,.0f} ms = "
            f"{cat.naive_ns / cat.ours_ns:,.0f}x ours on the same text"
        )
        print(
            f"   {name:<9} 4->16 KiB {grow.ratio:>4.1f}x ({grow.family}); 2 MB/17 KiB "
            f"{over.ratio:.2f}x ({over.family}); 2 MB/16 KiB {raw.ratio:.1f}x ({raw.family}); "
            f"{naive}"
        )
        if grow.ratio > BOUND:
            failures.append(f"{name} classifier: {grow.ratio:.1f}x on {grow.family}")
        if over.ratio > HUGE_BOUND:
            failures.append(f"{name} classifier: 2 MB costs {over.ratio:.1f}x 17 KiB")

    print()
    print("summary")
    for cat in categories:
        own = [regex for regex, used_by in reports if cat.name in used_by]
        if not own:
            continue
        steepest = max(own, key=lambda r: r.worst_growth.ratio)
        slowest = max(own, key=lambda r: r.worst_at_cap.large_ns)
        naive = (
            "" if cat.naive_ns is None else f"; naive uncapped 2 MB {cat.naive_ns / 1e6:,.0f} ms"
        )
        growth, at_cap = steepest.worst_growth, slowest.worst_at_cap
        print(
            f"   {cat.name}: {len(own)} patterns, worst growth {growth.ratio:.1f}x "
            f"({steepest.label}, {growth.family}), slowest search {at_cap.large_ns / 1e3:,.0f} "
            f"µs at 16 KiB ({slowest.label}); classifier 2 MB/17 KiB {cat.over.ratio:.2f}x, "
            f"2 MB median {cat.median_ns / 1e3:,.0f} µs, slowest {cat.slowest.large_ns / 1e3:,.0f}"
            f" µs ({cat.slowest.family}){naive}"
        )
    others = [regex for regex, used_by in reports if not used_by]
    if others:
        worst_other = max(others, key=lambda r: r.worst_growth.ratio)
        print(
            f"   other ({len(others)}: unused fragments, _STEP_IN_TEXT, envelopes): worst growth "
            f"{worst_other.worst_growth.ratio:.1f}x ({worst_other.label}, "
            f"{worst_other.worst_growth.family})"
        )
    overall = max((regex for regex, _ in reports), key=lambda r: r.worst_growth.ratio)
    verdict = "LINEAR" if not failures else "FAILED: " + "; ".join(failures)
    print(
        f"verdict: {verdict}: worst growth of {len(reports)} regexes "
        f"{overall.worst_growth.ratio:.1f}x for 4x the input (bound {BOUND:g}x), 2 MB at most "
        f"{max(r.over.ratio for r in categories):.2f}x a capped 17 KiB message "
        f"(bound {HUGE_BOUND:g}x); {time.monotonic() - started:.0f} s"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
