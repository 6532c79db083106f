"""The Analysis: an image, its merged filesystem and the numbers every view shows."""

from __future__ import annotations

from dataclasses import dataclass

from slimscope.fs import Filesystem, FsStats
from slimscope.image.history import HistoryEntry
from slimscope.image.model import Image, Layer


@dataclass
class Analysis:
    """Everything known about one image; views render this and nothing else."""

    image: Image
    fs: Filesystem
    stats: FsStats

    def history_of(self, layer: Layer) -> HistoryEntry | None:
        """The history entry that created a layer, if the history says."""
        if layer.history_index is None:
            return None
        return self.image.history[layer.history_index]

    @property
    def problems(self) -> list[str]:
        """Everything odd found while reading and merging (not fatal)."""
        found = list(self.image.problems)
        for layer in self.image.layers:
            found.extend(f"layer {layer.index}: {p}" for p in layer.entries.problems)
        found.extend(self.fs.problems)
        return found


def analyze(image: Image) -> Analysis:
    """Merge the layers and compute the numbers."""
    fs = Filesystem([layer.entries for layer in image.layers])
    return Analysis(image=image, fs=fs, stats=fs.stats())
