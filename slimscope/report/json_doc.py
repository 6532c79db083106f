"""The versioned JSON document (`--json`); its JSON Schema is `schema.json` beside this file."""

from __future__ import annotations

import json
from typing import IO, Any

from slimscope import __version__
from slimscope.analysis.core import Analysis
from slimscope.fs import Tally
from slimscope.image.settings import settings
from slimscope.sanitize import json_name, json_text

TOP_PATHS = 10  # paths listed per finding
TOP_HIDDEN = 50
TOP_DUPLICATES = 20

SCHEMA_VERSION = 1


def _tally(t: Tally) -> dict[str, int]:
    return {"count": t.count, "bytes": t.bytes}


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
                "visible_bytes": analysis.layer_bytes[layer.index].visible,
                "hidden_bytes": analysis.layer_bytes[layer.index].hidden,
                "removable_bytes": dict(analysis.layer_bytes[layer.index].removable),
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
            "bytes": image.layers[h.layer_index].size_bytes if h.layer_index is not None else 0,
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
            "config": settings(image.runtime_config),
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
        "summary": _summary(analysis),
        "findings": [_finding(analysis, f) for f in analysis.findings],
        "packages": [_package(analysis, p) for p in analysis.packages],
        "waste": _waste(analysis),
        "problems": [json_text(p) for p in analysis.problems],  # raw text, escaped by JSON only
        **_suggestion(analysis),
    }


def _summary(analysis: Analysis) -> dict[str, Any]:
    s = analysis.summary
    return {
        "image_bytes": s.image_bytes,
        "filesystem_bytes": s.filesystem_bytes,
        "hidden_bytes": s.hidden_bytes,
        "duplicate_bytes": s.duplicate_bytes,
        "dive_efficiency": round(s.dive_efficiency, 6),
        "dive_wasted_bytes": s.dive_wasted_bytes,
        "dive_user_wasted_percent": round(s.dive_user_wasted_percent, 6),
        "removable_bytes": dict(s.removable_bytes),
        "estimated_slim_bytes": s.estimated_slim_bytes,
    }


def _path(raw: bytes, **extra: Any) -> dict[str, Any]:
    return {**json_name(raw), **extra}


def _finding(analysis: Analysis, finding: Any) -> dict[str, Any]:
    rule = finding.rule
    return {
        "rule": rule.id,
        "name": rule.name,
        "category": rule.category,
        "title": rule.title,
        "bytes": finding.bytes,
        "count": finding.count,
        "path_count": len(finding.paths),
        "paths": [_path(p.path, bytes=p.bytes, files=p.files) for p in finding.paths[:TOP_PATHS]],
        "layer": finding.layer,
        "instruction": analysis.instruction_of(finding.layer),
        "packages": finding.packages,
        "rationale": rule.rationale,
        "remedy": rule.remedy,
        "references": list(rule.references),
    }


def _package(analysis: Analysis, package: Any) -> dict[str, Any]:
    return {
        "manager": package.manager,
        "name": package.name,
        "version": package.version,
        "arch": package.arch,
        "bytes": package.bytes,
        "files": package.files,
        "layer": package.layer,
        "instruction": analysis.instruction_of(package.layer),
        "build_only": package.build_only,
        "reason": package.reason,
    }


def _waste(analysis: Analysis) -> dict[str, Any]:
    w = analysis.waste
    return {
        "hidden_bytes": w.hidden_bytes,
        "hidden_files": w.hidden_files,
        "hidden_by_layer": w.hidden_by_layer,
        "hidden": [
            _path(h.path, layer=h.layer, hidden_in=h.hidden_in, reason=h.reason, bytes=h.bytes)
            for h in w.hidden[:TOP_HIDDEN]
        ],
        "duplicate_bytes": w.duplicate_bytes,
        "duplicates": [
            {"digest": d.digest, "size": d.size, "wasted": d.wasted, "paths": [json_name(p) for p in d.paths]}
            for d in w.duplicates[:TOP_DUPLICATES]
        ],
    }


def dump(doc: dict[str, Any], out: IO[str]) -> None:
    """Write a document as indented JSON (ASCII only, so any byte-safe pipe carries it)."""
    json.dump(doc, out, indent=2, ensure_ascii=True)
    out.write("\n")


def schema() -> dict[str, Any]:
    """The JSON Schema of the document."""
    from importlib import resources

    return json.loads(resources.files("slimscope.report").joinpath("schema.json").read_text("utf-8"))


def _suggestion(analysis: Analysis) -> dict[str, Any]:
    """The suggestion section when `slimscope suggest` computed one (imported only then: it is large)."""
    if "suggestion" not in analysis.extras:
        return {}
    from slimscope.analysis.suggest import suggestion_section

    return suggestion_section(analysis)
