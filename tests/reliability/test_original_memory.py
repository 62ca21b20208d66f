"""Peak memory does not grow with the original's size: ``synapse export`` of two 300 MB
originals (``--original-bytes 300M``, the embedded emulator) stays under 200 MB of peak RSS.

What is measured: the whole ``synapse export`` process, the embedded emulator serving the
files included (it streams them too, so the bound is stricter than the exporter's alone). The
process is started by a small launcher that waits for it and reads
``getrusage(RUSAGE_CHILDREN).ru_maxrss``, the peak RSS of its one child (the kernel's VmHWM at
exit), so nothing this test process did before counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synapse_testkit.cli import LAUNCH

pytestmark = pytest.mark.slow

_MEASURE = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
_MB = 1024 * 1024


def test_two_300_mb_originals_export_under_200_mb_of_peak_rss(tmp_path: Path) -> None:
    out = tmp_path / "out"
    command = [
        sys.executable, "-c", LAUNCH, "export", "--out", str(out), "--items", "2",
        "--faults", "none", "--original-bytes", "300M", "--json",
    ]
    env = {**os.environ, "SYNAPSE_LANGUAGE": "en", "SYNAPSE_TOKEN": ""}
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True, text=True, env=env, timeout=300, check=True,
    )
    code, peak_kib = (int(part) for part in result.stdout.split())
    assert code == 0, result.stderr
    sizes = sorted(p.stat().st_size for p in (out / "tasks").glob("*.bin"))
    assert sizes == [300 * _MB, 300 * _MB]
    record = json.loads((out / "tasks" / "1.json").read_bytes())
    assert record["original"]["size"] == 300 * _MB
    peak = peak_kib * 1024
    assert peak < 200 * _MB, f"peak RSS {peak / _MB:.1f} MB"
