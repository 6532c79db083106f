"""Sizes as people write them: `20MB`, `1.5GiB`, `300k`."""

from __future__ import annotations

import re
from typing import Any

from slimscope.errors import SlimscopeError

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
}


def parse_size(value: Any) -> int:
    """`20MB`, `1.5GiB`, `300k` or a number of bytes, as bytes."""
    if isinstance(value, bool):
        raise SlimscopeError(f"not a size: {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _UNITS:
        raise SlimscopeError(f"not a size: {value!r} (use e.g. 20MB, 1.5GiB or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
