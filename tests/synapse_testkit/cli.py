"""Running ``synapse`` as a user runs it: a subprocess, checked for tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: ``python -c LAUNCH ARGS`` is ``synapse ARGS`` (named ``synapse`` in its usage lines).
LAUNCH = "import sys; from synapse_sdk.cli import main; sys.exit(main(prog_name='synapse'))"


def run_synapse(
    *args: str,
    language: str = "en",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    prefix: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``synapse ARGS`` (after ``prefix``, e.g. a command that drops privileges) in
    ``language`` with no token in the environment unless ``env`` gives one; fail the test if a
    traceback was printed."""
    environ = {**os.environ, "SYNAPSE_LANGUAGE": language, "SYNAPSE_TOKEN": "", **(env or {})}
    result = subprocess.run(
        [*prefix, sys.executable, "-c", LAUNCH, *args],
        capture_output=True, text=True, env=environ, cwd=cwd, timeout=120, check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result
