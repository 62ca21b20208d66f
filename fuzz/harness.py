"""What every ``fuzz/fuzz_NAME.py`` shares: run a fuzz target under atheris.

Each wrapper imports its target (``tests/synapse_testkit/fuzz_targets/NAME.py``, shared with the
test suite, which replays it on the seeds in ``fuzz/seeds/``) inside :func:`instrumented`, so the
SDK is instrumented for coverage, and hands its ``TestOneInput`` to :func:`fuzz`.

Run one: ``python fuzz/fuzz_NAME.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (or ``fuzz/run.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import atheris

_TESTS = str(Path(__file__).resolve().parents[1] / "tests")


@contextmanager
def instrumented() -> Iterator[None]:
    """Make ``synapse_testkit`` importable and instrument the SDK modules imported inside."""
    if _TESTS not in sys.path:
        sys.path.insert(0, _TESTS)
    with atheris.instrument_imports(include=["synapse_sdk"]):
        yield


def fuzz(test_one_input: Callable[[bytes], None]) -> None:
    """Run libFuzzer on ``test_one_input`` with the command line's flags; does not return."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
