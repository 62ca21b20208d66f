"""Helpers the test suite shares with ``fuzz/`` and ``benchmarks/``: the secret sink, the hostile
exception builders, the fuzz targets and the fault soak; and helpers test folders share among
themselves: the fake time and scripted operations (``scripted``), a Synap emulator world
(``synap_world``) and hostile ``retry_after`` hints (``retry_hints``).

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in ``pyproject.toml``); the fuzz harnesses
and the soak script add it themselves. Nothing here is imported at package import time, so a fuzz
harness can import a target inside ``atheris.instrument_imports()`` and have the SDK instrumented.
"""
