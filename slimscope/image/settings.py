"""The runtime settings of an image config (entrypoint, cmd, env...), read defensively: configs are
hostile input and any field may be missing or of the wrong type. One reading for every view."""

from __future__ import annotations

from typing import Any


def str_list(value: Any) -> list[str] | None:
    """A list of strings from a string or list field (None when absent or malformed)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return None


def string(value: Any) -> str:
    """A string field, or "" when absent or not a string."""
    return value if isinstance(value, str) else ""


def settings(raw: dict[str, Any]) -> dict[str, Any]:
    """The settings the JSON document and the text summary show, from the config's `config` object."""
    ports = raw.get("ExposedPorts")
    labels = raw.get("Labels")
    return {
        "entrypoint": str_list(raw.get("Entrypoint")),
        "cmd": str_list(raw.get("Cmd")),
        "workdir": string(raw.get("WorkingDir")),
        "user": string(raw.get("User")),
        "env": str_list(raw.get("Env")) or [],
        "exposed_ports": sorted(str(p) for p in ports) if isinstance(ports, dict) else [],
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    }
