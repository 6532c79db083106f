"""SARIF 2.1.0 output: one result per finding (and one for hidden bytes), for code-scanning tools."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from slimscope import __version__
from slimscope.analysis.core import Analysis
from slimscope.analysis.rules import load_catalog
from slimscope.report.text import human
from slimscope.sanitize import visible

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
HIDDEN_RULE = {
    "id": "SS001",
    "name": "hidden-bytes",
    "shortDescription": {"text": "Bytes stored in layers but hidden by later layers"},
    "fullDescription": {
        "text": "A later layer overwrote, re-stored or deleted files an earlier layer stored; "
        "the bytes still ship."
    },
    "help": {"text": "Delete files in the same RUN that creates them, or build in a separate stage."},
    "properties": {"category": "hidden"},
}


def sarif(
    analysis: Analysis, dockerfile: str | None = None, lines: dict[int, int] | None = None
) -> dict[str, Any]:
    """The SARIF log; `lines` maps layer index -> Dockerfile line when the Dockerfile is known."""
    catalog = load_catalog()
    rules = [HIDDEN_RULE] + [
        {
            "id": rule.id,
            "name": rule.name,
            "shortDescription": {"text": rule.title},
            "fullDescription": {"text": rule.rationale},
            "help": {"text": rule.remedy},
            "properties": {"category": rule.category, "references": list(rule.references)},
        }
        for rule in catalog
    ]
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for finding in analysis.findings:
        rule = finding.rule
        top = ", ".join(f"/{visible(p.path)} ({human(p.bytes)})" for p in finding.paths[:3])
        results.append(
            _result(
                rule.id,
                index[rule.id],
                "error" if rule.category == "secret" else "warning",
                f"{rule.title}: {human(finding.bytes)} in {finding.count} file(s), e.g. {top}. {rule.remedy}",
                finding.layer,
                dockerfile,
                lines,
                {
                    "bytes": finding.bytes,
                    "category": rule.category,
                    "paths": [visible(p.path) for p in finding.paths[:10]],
                },
                image_path=finding.paths[0].path if finding.paths else None,
            )
        )
    if analysis.summary.hidden_bytes:
        by_layer = analysis.waste.hiding_by_layer
        worst = max(range(len(by_layer)), key=lambda i: by_layer[i]) if by_layer else None
        results.append(
            _result(
                "SS001",
                0,
                "warning",
                f"{human(analysis.summary.hidden_bytes)} stored in layers but not visible in the final "
                "filesystem.",
                worst,
                dockerfile,
                lines,
                {"bytes": analysis.summary.hidden_bytes, "category": "hidden"},
            )
        )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "slimscope", "version": __version__, "rules": rules}},
                "results": results,
                "originalUriBaseIds": {
                    "IMAGE": {"uri": "file:///", "description": {"text": "the root filesystem of the image"}}
                },
                "properties": {
                    "image": analysis.image.reference,
                    "imageId": analysis.image.id,
                    "estimatedSlimBytes": analysis.summary.estimated_slim_bytes,
                },
            }
        ],
    }


def _result(
    rule_id: str,
    rule_index: int,
    level: str,
    message: str,
    layer: int | None,
    dockerfile: str | None,
    lines: dict[int, int] | None,
    properties: dict[str, Any],
    image_path: bytes | None = None,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": rule_id,
        "ruleIndex": rule_index,
        "level": level,
        "message": {"text": message},
        "properties": properties,
    }
    if dockerfile and lines and layer is not None and layer in lines:
        result["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": dockerfile},
                    "region": {"startLine": lines[layer]},
                }
            }
        ]
    else:
        # Code scanning wants a location on every result: without a Dockerfile, the path in the image,
        # relative to the IMAGE base declared in the run's originalUriBaseIds.
        path = quote(image_path or b"", safe=b"/") if image_path else ""
        result["locations"] = [
            {"physicalLocation": {"artifactLocation": {"uri": path or ".", "uriBaseId": "IMAGE"}}}
        ]
    return result
