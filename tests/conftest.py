"""Shared test set-up: fixtures/ (archive generator, reference reader) is importable."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))


@pytest.fixture(scope="session", autouse=True)
def _private_layer_cache(tmp_path_factory: pytest.TempPathFactory):
    """Every run of slimscope in the tests (in-process or a child) uses a cache of its own, not ~/.cache."""
    os.environ["SLIMSCOPE_CACHE_DIR"] = str(tmp_path_factory.mktemp("layer-cache"))
    yield
