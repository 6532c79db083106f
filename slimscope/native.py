"""The compiled fast paths: C extensions built at install time, each optional.

`./dev setup` (an editable install) compiles them in place; without a C compiler the install goes on
and the Python code does all the work, with the same results. `SLIMSCOPE_PURE_PYTHON=1` turns them
off (for tests and comparisons).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

NAMES = {"tar parser": "slimscope.image._tarscan", "tree and analysis loops": "slimscope._fastfs"}


def load(module: str) -> ModuleType | None:
    """The compiled module, or None when it is not built or turned off."""
    if os.environ.get("SLIMSCOPE_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def in_use() -> list[str]:
    """The fast paths this process uses, by what they speed up."""
    from slimscope import fs
    from slimscope.image import tarstream

    found = {"tar parser": tarstream._tarscan, "tree and analysis loops": fs._fastfs}
    return [name for name in NAMES if found[name] is not None]
