"""Bytes per Dockerfile line and stage (`--dockerfile`), and what the final stage copies from builder
stages whose images are given (`--stage NAME=IMAGE`)."""

from __future__ import annotations

from typing import Any

from slimscope.analysis.core import Analysis
from slimscope.analysis.dockerfile import Dockerfile, align, read_dockerfile, stage_copies
from slimscope.errors import SlimscopeError


def attribute(
    analysis: Analysis,
    dockerfile_path: str | None,
    build_args: dict[str, str],
    stage_images: dict[str, str],
) -> dict[int, int] | None:
    """Fill `analysis.extras["attribution"]`; return layer index -> Dockerfile line (for SARIF)."""
    report: dict[str, Any] = {}
    lines: dict[int, int] | None = None
    dockerfile: Dockerfile | None = None
    if dockerfile_path:
        dockerfile = read_dockerfile(dockerfile_path, build_args)
        alignment = align(dockerfile, analysis.image.history)
        lines = {}
        layers = []
        per_line: dict[int, dict[str, Any]] = {}
        per_stage: dict[str, int] = {}
        for layer in analysis.image.layers:
            found = alignment.for_layer(layer.index)
            entry: dict[str, Any] = {
                "layer": layer.index,
                "bytes": layer.size_bytes,
                "stage": None,
                "line": None,
                "instruction": None,
                "base": False,
            }
            if found is not None:
                stage = dockerfile.stages[found.stage]
                text = (
                    f"{found.instruction.keyword} {found.instruction.value}"
                    if found.instruction
                    else f"FROM {stage.base}"
                )
                entry.update(
                    stage=found.stage_name or str(found.stage),
                    line=found.line,
                    instruction=text,
                    base=found.base,
                )
                lines[layer.index] = found.line
                slot = per_line.setdefault(
                    found.line,
                    {
                        "line": found.line,
                        "stage": entry["stage"],
                        "instruction": text,
                        "bytes": 0,
                        "layers": [],
                    },
                )
                slot["bytes"] += layer.size_bytes
                slot["layers"].append(layer.index)
                key = entry["stage"] if not found.base else f"{entry['stage']} (base image {stage.base})"
                per_stage[key] = per_stage.get(key, 0) + layer.size_bytes
            layers.append(entry)
        report.update(
            dockerfile=dockerfile_path,
            builder=alignment.builder,
            target=dockerfile.stages[alignment.target].label,
            layers=layers,
            lines=sorted(per_line.values(), key=lambda x: x["line"]),
            stages=[{"stage": name, "bytes": size} for name, size in per_stage.items()],
            unmatched=[
                {"line": i.line, "instruction": f"{i.keyword} {i.value}"} for i in alignment.unmatched
            ],
        )
    if stage_images:
        report["stage_images"] = [
            _stage_report(analysis, name, ref, dockerfile, lines or {}) for name, ref in stage_images.items()
        ]
    analysis.extras["attribution"] = report
    return lines


def _stage_report(
    analysis: Analysis, name: str, reference: str, dockerfile: Dockerfile | None, lines: dict[int, int]
) -> dict[str, Any]:
    """A builder stage's image: its size, and what the final stage copies from it."""
    from slimscope.analysis.core import analyze
    from slimscope.sources import load_image

    stage_analysis = analyze(load_image(reference))
    copies = []
    if dockerfile is not None:
        try:
            stage = dockerfile.stage(name)
        except SlimscopeError:
            raise SlimscopeError(f"--stage {name}: the Dockerfile has no stage named {name!r}") from None
        by_line = {line: layer for layer, line in lines.items()}
        for instruction in stage_copies(dockerfile):
            if instruction.copy_from != stage.index:
                continue
            layer = by_line.get(instruction.line)
            copies.append(
                {
                    "line": instruction.line,
                    "src": instruction.src,
                    "dest": instruction.dest,
                    "layer": layer,
                    "bytes": analysis.image.layers[layer].size_bytes if layer is not None else None,
                }
            )
    return {
        "stage": name,
        "reference": reference,
        "image_bytes": stage_analysis.summary.image_bytes,
        "filesystem_bytes": stage_analysis.summary.filesystem_bytes,
        "removable_bytes": dict(stage_analysis.summary.removable_bytes),
        "copies": copies,
        "copied_bytes": sum(c["bytes"] or 0 for c in copies),
    }
