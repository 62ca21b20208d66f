#!/usr/bin/env python3
"""libFuzzer entry point of the ``retry_after`` fuzz target.

The target itself (its inputs, invariants and docs) is
``tests/synapse_testkit/fuzz_targets/retry_after.py``,
shared with the test suite, which replays it on the seeds in ``fuzz/seeds/``. Here it runs
under atheris with the SDK instrumented for coverage.

Run: ``python fuzz/fuzz_retry_after.py -max_total_time=60 CORPUS_DIR [SEED_DIR]``
(or ``fuzz/run.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

with atheris.instrument_imports(include=["synapse_sdk"]):
    from synapse_testkit.fuzz_targets.retry_after import TestOneInput


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
