"""The versioned JSON document (`--json`); its JSON Schema is `schema.json` beside this file."""

from __future__ import annotations

import json
from importlib import resources
from typing import IO, Any

from slimscope import __version__
from slimscope.analysis.core import Analysis
from slimscope.fs import Tally

SCHEMA_VERSION = 1


def _tally(t: Tally) -> dict[str, int]:
    return {"count": t.count, "bytes": t.bytes}


def _str_list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value]
    return None


def _config(raw: dict[str, Any]) -> dict[str, Any]:
    ports = raw.get("ExposedPorts")
    labels = raw.get("Labels")
    workdir = raw.get("WorkingDir")
    user = raw.get("User")
    return {
        "entrypoint": _str_list(raw.get("Entrypoint")),
        "cmd": _str_list(raw.get("Cmd")),
        "workdir": workdir if isinstance(workdir, str) else "",
        "user": user if isinstance(user, str) else "",
        "env": _str_list(raw.get("Env")) or [],
        "exposed_ports": sorted(str(p) for p in ports) if isinstance(ports, dict) else [],
        "labels": {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    }


def document(analysis: Analysis) -> dict[str, Any]:
    """The JSON document for one analysed image."""
    image = analysis.image
    layers = []
    for layer, changes in zip(image.layers, analysis.fs.changes):
        hist = analysis.history_of(layer)
        layers.append(
            {
                "index": layer.index,
                "diff_id": layer.diff_id,
                "digest": layer.digest,
                "media_type": layer.media_type,
                "compression": layer.compression,
                "compressed_bytes": layer.compressed_bytes,
                "size_bytes": layer.size_bytes,
                "entries": len(layer.entries),
                "history_index": layer.history_index,
                "created_by": hist.created_by if hist else None,
                "instruction": hist.instruction if hist else None,
                "arguments": hist.arguments if hist else None,
                "added": _tally(changes.added),
                "modified": _tally(changes.modified),
                "metadata_only": _tally(changes.metadata_only),
                "deleted": _tally(changes.deleted),
            }
        )
    history = [
        {
            "created_by": h.created_by,
            "created": h.created,
            "comment": h.comment,
            "empty_layer": h.empty_layer,
            "layer_index": h.layer_index,
            "instruction": h.instruction,
            "arguments": h.arguments,
            "builder": h.builder,
        }
        for h in image.history
    ]
    stats = analysis.stats
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "slimscope", "version": __version__},
        "image": {
            "reference": image.reference,
            "source": image.source,
            "id": image.id,
            "tags": image.tags,
            "manifest_digest": image.manifest_digest,
            "platform": image.platform,
            "created": image.created,
            "config": _config(image.runtime_config),
        },
        "layers": layers,
        "history": history,
        "filesystem": {
            "files": stats.files,
            "dirs": stats.dirs,
            "symlinks": stats.symlinks,
            "other": stats.other,
            "bytes": stats.bytes,
        },
        "problems": analysis.problems,
    }


def dump(doc: dict[str, Any], out: IO[str]) -> None:
    """Write a document as indented JSON (ASCII only, so any byte-safe pipe carries it)."""
    json.dump(doc, out, indent=2, ensure_ascii=True)
    out.write("\n")


def schema() -> dict[str, Any]:
    """The JSON Schema of the document."""
    return json.loads(resources.files("slimscope.report").joinpath("schema.json").read_text("utf-8"))
