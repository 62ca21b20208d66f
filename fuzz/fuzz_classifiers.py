#!/usr/bin/env python3
"""libFuzzer entry point of the ``classifiers`` fuzz target (see ``harness.py``)."""

from harness import fuzz, instrumented

with instrumented():
    from synapse_testkit.fuzz_targets.classifiers import TestOneInput

if __name__ == "__main__":
    fuzz(TestOneInput)
