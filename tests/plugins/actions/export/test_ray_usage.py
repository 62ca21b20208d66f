"""``--executor ray`` usage errors and the shared pacer's state: no Ray instance needed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from synapse_sdk.cli.export import EXIT_USAGE
from synapse_sdk.config import RetryPolicy
from synapse_sdk.plugins.actions.export.distributed import PacerState

#: The CLI in a subprocess where ``import ray`` fails, as on an installation without the extra.
_WITHOUT_RAY = (
    "import sys; sys.modules['ray'] = None; from synapse_sdk.cli import main; sys.exit(main())"
)


def test_executor_ray_without_ray_is_a_usage_error_naming_the_extra(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_RAY, "export", "--executor", "ray", "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "pip install 'synapse-sdk[ray]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_executor(tmp_path: Path) -> None:
    for options in (["--workers", "3"], ["--shared-storage"]):
        done = subprocess.run(
            [sys.executable, "-c", _WITHOUT_RAY, "export", *options, "--out",
             str(tmp_path / "out")],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == EXIT_USAGE, done.stderr
        assert f"{options[0]} only apply to --executor ray" in done.stderr


def test_the_pacer_state_shares_one_pace_and_one_budget() -> None:
    policy = RetryPolicy(budget_capacity=2.0, budget_refill_per_second=0.0,
                         budget_refill_per_success=0.0)
    state = PacerState(["/v2/tasks/bulk-fetch/"], policy)
    assert state.before_request("/v2/tasks/bulk-fetch/") == 0.0  # no pace learned yet
    state.after_response("/v2/tasks/bulk-fetch/", 200, {})
    state.after_response("/v2/tasks/bulk-fetch/", 429, {"Retry-After": "1"})
    assert state.rejections() == 1
    # The next request waits for the slot the 429 named (the pacer's own decision).
    assert 0.0 < state.before_request("/v2/tasks/bulk-fetch/") <= 1.0
    assert state.before_request("/v2/files/1/") == 0.0  # not a rate-limited path
    assert [state.try_spend(), state.try_spend(), state.try_spend()] == [True, True, False]
