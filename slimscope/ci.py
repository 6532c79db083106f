"""CI mode: thresholds from flags or a config file, checked against an Analysis; exit 0 pass, 1 fail.

dive's three rules keep dive's names and meaning (so a dive config carries over); slimscope adds its
own on hidden bytes, removable bytes per category and secrets. Thresholds come, in rising order of
precedence, from the defaults, `[tool.slimscope.ci]` in pyproject.toml or `[ci]` in .slimscope.toml
(in the current folder, or the file given with --ci-config), and the command line.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from slimscope.analysis.core import Analysis
from slimscope.analysis.rules import CATEGORIES
from slimscope.errors import SlimscopeError
from slimscope.units import parse_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

DEFAULTS: dict[str, Any] = {
    "lowestEfficiency": 0.9,  # dive's default
    "highestWastedBytes": None,  # dive's default: disabled
    "highestUserWastedPercent": 0.1,  # dive's default
    "max-hidden-bytes": None,
    "max-removable-bytes": {},
    "max-secrets": 0,
}
def parse_ratio(value: Any, most: float | None = 1.0) -> float:
    """`0.9`, `90%` as a ratio, from 0 to `most` (None: no upper bound)."""
    text = str(value).strip()
    try:
        ratio = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise SlimscopeError(f"not a ratio: {value!r} (use e.g. 0.9 or 90%)") from None
    if not (0 <= ratio <= most if most is not None else 0 <= ratio < float("inf")):  # NaN too
        bounds = "from 0 to 1, or 0% to 100%" if most == 1.0 else "0 or more"
        raise SlimscopeError(f"ratio out of range: {value!r} ({bounds})")
    return ratio


def load_config(path: str | None) -> dict[str, Any]:
    """CI thresholds from --ci-config, .slimscope.toml or pyproject.toml (first found)."""
    candidates = [path] if path else [".slimscope.toml", "pyproject.toml"]
    for candidate in candidates:
        if candidate is None or not os.path.isfile(candidate):
            if path:
                raise SlimscopeError(f"no such config file: {path}")
            continue
        try:
            with open(candidate, "rb") as handle:
                data = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SlimscopeError(f"cannot read {candidate}: {exc}") from None
        if os.path.basename(candidate) == "pyproject.toml":
            section = data.get("tool", {}).get("slimscope", {}).get("ci")
            if section is None:
                continue
        else:
            section = data.get("ci", data)
        if not isinstance(section, dict):
            raise SlimscopeError(f"{candidate}: the ci section must be a table")
        unknown = set(section) - set(DEFAULTS)
        if unknown:
            raise SlimscopeError(f"{candidate}: unknown CI setting(s): {', '.join(sorted(unknown))}")
        return dict(section)
    return {}


@dataclass
class Check:
    """One CI rule's verdict."""

    name: str
    passed: bool
    detail: str


def thresholds(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then the config file, then the command line."""
    merged = {**DEFAULTS, **config}
    for key, value in overrides.items():
        if value is None:
            continue
        if key == "max-removable-bytes":
            merged[key] = {**(merged.get(key) or {}), **value}
        else:
            merged[key] = value
    return merged


def validate(limits: dict[str, Any]) -> None:
    """Parse every threshold once, so a bad one fails before the image is read."""
    for key, most in (("lowestEfficiency", 1.0), ("highestUserWastedPercent", None)):
        value = limits.get(key)
        if value is not None and str(value).lower() != "disabled":
            parse_ratio(value, most)  # wasted bytes can outnumber the image's own (dive's ratio too)
    for key in ("highestWastedBytes", "max-hidden-bytes"):
        value = limits.get(key)
        if value is not None and str(value).lower() != "disabled":
            parse_size(value)
    removable = limits.get("max-removable-bytes") or {}
    if not isinstance(removable, dict):
        raise SlimscopeError("max-removable-bytes must map categories to sizes")
    for category, value in removable.items():
        if category not in CATEGORIES:
            raise SlimscopeError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})")
        parse_size(value)
    secrets = limits.get("max-secrets")
    if secrets is not None and (isinstance(secrets, bool) or not isinstance(secrets, int) or secrets < 0):
        raise SlimscopeError(f"max-secrets takes a number of files, not {secrets!r}")


def evaluate(analysis: Analysis, limits: dict[str, Any]) -> list[Check]:
    """Check every enabled threshold."""
    summary = analysis.summary
    checks: list[Check] = []
    from slimscope.report.text import human as _human

    def human(n: int) -> str:
        return f"{n:,} B ({_human(n)})" if n >= 1000 else f"{n} B"

    lowest = limits.get("lowestEfficiency")
    if lowest is not None and str(lowest).lower() != "disabled":
        ratio = parse_ratio(lowest)
        checks.append(
            Check(
                "lowestEfficiency",
                summary.dive_efficiency >= ratio,
                f"dive efficiency {summary.dive_efficiency:.4f}, lowest allowed {ratio}",
            )
        )
    highest = limits.get("highestWastedBytes")
    if highest is not None and str(highest).lower() != "disabled":
        limit = parse_size(highest)
        checks.append(
            Check(
                "highestWastedBytes",
                summary.dive_wasted_bytes <= limit,
                f"dive wasted bytes {human(summary.dive_wasted_bytes)}, highest allowed {human(limit)}",
            )
        )
    user = limits.get("highestUserWastedPercent")
    if user is not None and str(user).lower() != "disabled":
        ratio = parse_ratio(user, None)
        checks.append(
            Check(
                "highestUserWastedPercent",
                summary.dive_user_wasted_percent <= ratio,
                f"dive user wasted {summary.dive_user_wasted_percent:.4f}, highest allowed {ratio}",
            )
        )
    hidden = limits.get("max-hidden-bytes")
    if hidden is not None:
        limit = parse_size(hidden)
        checks.append(
            Check(
                "max-hidden-bytes",
                summary.hidden_bytes <= limit,
                f"hidden {human(summary.hidden_bytes)}, at most {human(limit)}",
            )
        )
    removable = limits.get("max-removable-bytes") or {}
    if not isinstance(removable, dict):
        raise SlimscopeError("max-removable-bytes must map categories to sizes")
    for category, value in removable.items():
        if category not in CATEGORIES:
            raise SlimscopeError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})")
        limit = parse_size(value)
        found = summary.removable_bytes[category]
        checks.append(
            Check(
                f"max-removable-bytes.{category}",
                found <= limit,
                f"removable {category} {human(found)}, at most {human(limit)}",
            )
        )
    secrets = limits.get("max-secrets")
    if secrets is not None:
        count = sum(len(f.paths) for f in analysis.findings if f.rule.category == "secret")
        checks.append(
            Check("max-secrets", count <= int(secrets), f"{count} possible secret file(s), at most {secrets}")
        )
    return checks
