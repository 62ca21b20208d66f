"""Client tests: make the shared helpers importable and give each test a fresh fake clock."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clients_support import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()
