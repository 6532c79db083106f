"""The Analysis: an image, its merged filesystem and every number the views show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slimscope.analysis.packages import Package, read_packages
from slimscope.analysis.rules import CATEGORIES, SLIMMING, Finding, Removables, find_removables
from slimscope.analysis.waste import Waste, analyze_waste, visible_data
from slimscope.fs import Filesystem, FsStats
from slimscope.image.history import HistoryEntry
from slimscope.image.model import Image, Layer


@dataclass
class LayerBytes:
    """Where one layer's bytes ended up."""

    visible: int = 0  # still visible in the final filesystem
    hidden: int = 0  # overwritten, stored again or deleted later
    removable: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))


@dataclass
class Summary:
    """The headline numbers."""

    image_bytes: int  # all layers' file bytes: what is stored and shipped (uncompressed)
    filesystem_bytes: int  # what the final filesystem shows
    hidden_bytes: int
    duplicate_bytes: int
    dive_efficiency: float
    dive_wasted_bytes: int
    dive_user_wasted_percent: float
    removable_bytes: dict[str, int]
    estimated_slim_bytes: int  # final filesystem without toolchains, caches, sources and docs


@dataclass
class Analysis:
    """Everything known about one image; views render this and nothing else."""

    image: Image
    fs: Filesystem
    stats: FsStats
    waste: Waste
    packages: list[Package]
    removables: Removables
    layer_bytes: list[LayerBytes]
    summary: Summary
    extras: dict[str, Any] = field(default_factory=dict)  # Dockerfile attribution, stage reports

    def history_of(self, layer: Layer) -> HistoryEntry | None:
        """The history entry that created a layer, if the history says."""
        if layer.history_index is None:
            return None
        return self.image.history[layer.history_index]

    def instruction_of(self, layer_index: int | None) -> str | None:
        """`RUN apt-get ...` for a layer, as the history tells it."""
        if layer_index is None or not 0 <= layer_index < len(self.image.layers):
            return None
        hist = self.history_of(self.image.layers[layer_index])
        if hist is None:
            return None
        if hist.instruction:
            return f"{hist.instruction} {hist.arguments}".strip()
        return hist.created_by.strip() or hist.comment or None

    @property
    def findings(self) -> list[Finding]:
        """Removable findings, biggest first."""
        return self.removables.findings

    @property
    def problems(self) -> list[str]:
        """Everything odd found while reading and merging (not fatal).

        Plain text holding raw names (undecodable bytes as lone surrogates): escape it once, where it
        is shown (`sanitize.visible` / `sanitize.text`, or `sanitize.json_text` for JSON).
        """
        found = list(self.image.problems)
        for layer in self.image.layers:
            found.extend(f"layer {layer.index}: {p}" for p in layer.entries.problems)
        found.extend(self.fs.problems)
        return found


def image_env(image: Image) -> dict[str, str]:
    """The image's Env as a dict."""
    env: dict[str, str] = {}
    values = image.runtime_config.get("Env")
    if isinstance(values, list):
        for item in values:
            if isinstance(item, str) and "=" in item:
                key, _, value = item.partition("=")
                env[key] = value
    return env


def analyze(image: Image) -> Analysis:
    """Merge the layers and compute every analysis."""
    fs = Filesystem([layer.entries for layer in image.layers])
    stats = fs.stats()
    visible = visible_data(fs)
    waste = analyze_waste(fs, visible)
    env = image_env(image)
    packages = read_packages(fs, env)
    removables = find_removables(fs, env, packages)
    layer_bytes = _layer_bytes(fs, removables.findings)
    removable = removables.by_category()
    summary = Summary(
        image_bytes=sum(layer.size_bytes for layer in image.layers),
        filesystem_bytes=stats.bytes,
        hidden_bytes=waste.hidden_bytes,
        duplicate_bytes=waste.duplicate_bytes,
        dive_efficiency=waste.dive_efficiency,
        dive_wasted_bytes=waste.dive_wasted_bytes,
        dive_user_wasted_percent=waste.dive_user_wasted_percent,
        removable_bytes=removable,
        estimated_slim_bytes=stats.bytes - sum(removable[c] for c in SLIMMING),
    )
    return Analysis(
        image=image,
        fs=fs,
        stats=stats,
        waste=waste,
        packages=packages,
        removables=removables,
        layer_bytes=layer_bytes,
        summary=summary,
    )


def _layer_bytes(fs: Filesystem, findings: list[Finding]) -> list[LayerBytes]:
    out = [LayerBytes(visible=shown) for shown in fs.survey()[2]]
    for number, entries in enumerate(fs.layers):
        out[number].hidden = entries.size_bytes - out[number].visible
    for finding in findings:
        for layer, size in finding.by_layer.items():
            out[layer].removable[finding.rule.category] += size
    return out
