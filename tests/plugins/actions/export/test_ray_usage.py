"""``--executor ray`` usage errors and the shared pacer's state: no Ray instance needed."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from synapse_sdk.cli.export import EXIT_USAGE
from synapse_sdk.config import RetryPolicy, SDKConfig
from synapse_sdk.emulator import Emulator
from synapse_sdk.plugins.actions.export.action import ExportAction
from synapse_sdk.plugins.actions.export.distributed import (
    PacerState,
    RayExecutor,
    check_portable_exporter,
)
from synapse_sdk.plugins.actions.export.exporter import BaseExporter, load_exporter

#: The CLI in a subprocess (Ray importable, as installed with the extra).
_CLI = "import sys; from synapse_sdk.cli import main; sys.exit(main())"

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


class _Unpicklable(BaseExporter):
    """An exporter holding a lambda: its class imports, the instance does not pickle."""

    def __init__(self) -> None:
        self.rename = lambda name: name.upper()


def _main_exporter() -> BaseExporter:
    cls = type("ScriptExporter", (BaseExporter,), {"__module__": "__main__"})
    exporter: BaseExporter = cls()
    return exporter


def _local_exporter() -> BaseExporter:
    class InFunction(BaseExporter):
        pass

    return InFunction()


def _off_path_exporter() -> Iterator[BaseExporter]:
    # A module loaded from a file under a name no sys.path entry provides.
    module = types.ModuleType("synapse_plugin_loaded_from_a_file")
    cls = type("FileExporter", (BaseExporter,), {"__module__": module.__name__})
    module.FileExporter = cls  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    try:
        yield cls()
    finally:
        del sys.modules[module.__name__]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (_main_exporter, "is defined in __main__"),
        (_local_exporter, "is defined inside a function"),
        (_Unpicklable, "cannot be pickled for the Ray workers"),
    ],
)
def test_an_exporter_the_workers_cannot_rebuild_is_named(
    make: Callable[[], BaseExporter], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        check_portable_exporter(make())


def test_an_exporter_module_off_the_path_is_named() -> None:
    for exporter in _off_path_exporter():
        with pytest.raises(ValueError, match="cannot be imported by name") as caught:
            check_portable_exporter(exporter)
        assert "synapse_plugin_loaded_from_a_file" in str(caught.value)


_PLUGIN = (
    "from synapse_sdk.plugins.actions.export import BaseExporter\n\n"
    "class Upper(BaseExporter):\n"
    "    def convert_data(self, data):\n"
    "        return {**data, 'name': str(data.get('name', '')).upper()}\n\n"
    "class Renaming(BaseExporter):\n"
    "    def __init__(self):\n"
    "        self.rename = lambda name: name.upper()\n"
)


def test_exporters_from_importable_modules_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ray_usage_plugin.py").write_text(_PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))  # as the CLI puts the current folder
    check_portable_exporter(BaseExporter())
    check_portable_exporter(load_exporter("ray_usage_plugin:Upper"))
    with pytest.raises(ValueError, match="cannot be pickled"):
        check_portable_exporter(load_exporter("ray_usage_plugin:Renaming"))


def test_the_ray_executor_refuses_the_exporter_before_starting_workers(tmp_path: Path) -> None:
    with Emulator(items=3) as emu:
        config = SDKConfig(backend_url=emu.url, token=emu.token, tenant=emu.tenant)
        action = ExportAction({"out_dir": tmp_path, "ids": [1, 2]}, config=config,
                              exporter=_local_exporter(), executor=RayExecutor(workers=1))
        with action, pytest.raises(ValueError, match="inside a function"):
            action.run()
    assert not list((tmp_path / "tasks").glob("*.json"))
    assert not any(r.path.endswith("/bulk-fetch/") for r in emu.requests)


def test_cli_refuses_an_exporter_the_workers_cannot_rebuild(tmp_path: Path) -> None:
    (tmp_path / "my_plugin.py").write_text(_PLUGIN, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _CLI, "export", "--executor", "ray", "--exporter",
         "my_plugin:Renaming", "--items", "3", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env={**os.environ, "SYNAPSE_LANGUAGE": "en"},
    )
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "--exporter" in done.stderr and "cannot be pickled" in done.stderr
    assert "Traceback" not in done.stderr
    assert "started a local Ray instance" not in done.stderr
    assert not (tmp_path / "out").exists()
