"""Align real images with their Dockerfiles: the multistage fixture built by the classic builder and by
BuildKit, and the Debian-based pyapp multi-stage image (a base image with entries of its own)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from slimscope.analysis.dockerfile import Alignment, align, parse_dockerfile, read_dockerfile
from slimscope.image.model import Image
from slimscope.sources import load_image

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
IMAGES_DIR = REPO_ROOT / "fixtures" / "images"
MULTISTAGE = IMAGES_DIR / "multistage" / "Dockerfile"
PYAPP = REPO_ROOT / "fixtures" / "apps" / "pyapp" / "Dockerfile.multistage"

BASE, RUNTIME = (0, "base"), (2, "runtime")

# Per history entry: (instruction as parsed from created_by, stage, stage name, Dockerfile line).
CLASSIC_HISTORY = [
    ("COPY", *BASE, 8),  # /bin/sh -c #(nop) COPY file:<sha> in /bin/busybox
    ("", *BASE, 9),  # /bin/busybox --install -s /bin  (exec-form RUN: no marker at all)
    ("LABEL", *BASE, 10),
    ("RUN", *BASE, 11),
    ("ARG", *RUNTIME, 21),
    ("COPY", *RUNTIME, 22),  # COPY --from=builder: /bin/sh -c #(nop) COPY file:<sha> in /app/artifact
    ("COPY", *RUNTIME, 23),  # COPY --from=0
    ("ENV", *RUNTIME, 24),
    ("WORKDIR", *RUNTIME, 26),  # an empty layer: /app exists already
    ("RUN", *RUNTIME, 27),  # |1 GREETING=hello /bin/sh -c echo "$GREETING" > greeting  && chmod 0600 greeting
    ("EXPOSE", *RUNTIME, 29),
    ("CMD", *RUNTIME, 30),
]
CLASSIC_LAYERS = {0: (*BASE, 8), 1: (*BASE, 9), 2: (*BASE, 11), 3: (*RUNTIME, 22), 4: (*RUNTIME, 23),
                  5: (*RUNTIME, 27)}  # fmt: skip

BUILDKIT_HISTORY = [
    ("COPY", *BASE, 8),  # COPY busybox /bin/busybox # buildkit
    ("RUN", *BASE, 9),  # RUN /bin/busybox --install -s /bin # buildkit
    ("LABEL", *BASE, 10),
    ("RUN", *BASE, 11),
    ("ARG", *RUNTIME, 21),
    ("COPY", *RUNTIME, 22),  # COPY /out/artifact /app/artifact # buildkit  (--from=builder dropped)
    ("COPY", *RUNTIME, 23),
    ("ENV", *RUNTIME, 24),
    ("WORKDIR", *RUNTIME, 26),  # BuildKit makes a layer for every WORKDIR
    ("RUN", *RUNTIME, 27),
    ("EXPOSE", *RUNTIME, 29),
    ("CMD", *RUNTIME, 30),
]
BUILDKIT_LAYERS = {0: (*BASE, 8), 1: (*BASE, 9), 2: (*BASE, 11), 3: (*RUNTIME, 22), 4: (*RUNTIME, 23),
                   5: (*RUNTIME, 26), 6: (*RUNTIME, 27)}  # fmt: skip


def per_entry(image: Image, alignment: Alignment) -> list[tuple[str, int, str | None, int] | None]:
    """(instruction, stage, stage name, line) for every history entry, None when unattributed."""
    rows: list[tuple[str, int, str | None, int] | None] = []
    for entry, found in zip(image.history, alignment.history, strict=True):
        rows.append(None if found is None else (entry.instruction, found.stage, found.stage_name, found.line))
    return rows


def per_layer(image: Image, alignment: Alignment) -> dict[int, tuple[int, str | None, int] | None]:
    """(stage, stage name, line) for every layer of the image, via its history entry."""
    rows: dict[int, tuple[int, str | None, int] | None] = {}
    for layer in image.layers:
        found = alignment.for_layer(layer.index)
        rows[layer.index] = None if found is None else (found.stage, found.stage_name, found.line)
    return rows


def check_multistage(tag: str, builder: str, expected_history: list, expected_layers: dict) -> None:
    image = load_image(tag)
    dockerfile = read_dockerfile(str(MULTISTAGE))
    assert [(s.name, s.base, s.base_stage, s.line) for s in dockerfile.stages] == [
        ("base", "scratch", None, 7),
        ("builder", "base", 0, 13),
        ("runtime", "base", 0, 20),
    ]
    alignment = align(dockerfile, image.history)
    assert alignment.builder == builder
    assert alignment.target == 2
    assert per_entry(image, alignment) == [
        (kind, stage, name, line) for kind, stage, name, line in expected_history
    ]
    assert per_layer(image, alignment) == expected_layers
    assert all(a is not None and not a.base for a in alignment.history)
    assert alignment.unmatched == []
    # Every layer's attribution is the instruction on that line of the Dockerfile.
    lines = MULTISTAGE.read_text().splitlines()
    for layer in image.layers:
        found = alignment.for_layer(layer.index)
        assert found is not None and found.instruction is not None
        assert lines[found.line - 1].split()[0] == found.instruction.keyword


def test_multistage_classic_builder(build_fixture_image: Callable[[str], str]) -> None:
    check_multistage(build_fixture_image("multistage"), "classic", CLASSIC_HISTORY, CLASSIC_LAYERS)


def test_multistage_buildkit(buildkit_image: Callable[[str], str]) -> None:
    check_multistage(buildkit_image("multistage"), "buildkit", BUILDKIT_HISTORY, BUILDKIT_LAYERS)


def test_multistage_builder_stage_copies(build_fixture_image: Callable[[str], str]) -> None:
    dockerfile = read_dockerfile(str(MULTISTAGE))
    copies = [
        (c.line, c.copy_from, c.src, c.dest)
        for c in dockerfile.stages[2].instructions
        if c.copy_from is not None
    ]
    assert copies == [(22, 1, ["/out/artifact"], "/app/artifact"), (23, 0, ["/etc/motd"], "/app/motd")]
    # The files those COPY lines brought are in the layers attributed to them.
    image = load_image(build_fixture_image("multistage"))
    alignment = align(dockerfile, image.history)
    by_line = {alignment.for_layer(layer.index).line: layer for layer in image.layers}  # type: ignore[union-attr]
    assert by_line[22].entries.size_bytes == 3000  # the builder stage's artifact
    assert by_line[23].entries.size_bytes == len("slimscope multistage\n")


def _line_of(lines: list[str], start: str) -> int:
    """The 1-based number of the only line that starts with `start`."""
    (number,) = [n for n, text in enumerate(lines, 1) if text.startswith(start)]
    return number


def test_pyapp_multistage_on_a_base_image(pyapp_images: dict[str, str]) -> None:
    image = load_image(pyapp_images["multistage"])
    text = PYAPP.read_text()
    dockerfile = parse_dockerfile(text, path=str(PYAPP))
    alignment = align(dockerfile, image.history)
    assert alignment.builder == "classic"
    lines = text.splitlines()
    final = dockerfile.stages[-1]
    assert (final.index, final.name, final.base_stage) == (1, None, None)
    expected = [
        (final.line, True),  # the debootstrapped base: one entry of its own (`docker import`, no created_by)
        (_line_of(lines, "RUN apt-get update && apt-get install -y --no-install-recommends python3"), False),
        (_line_of(lines, "COPY --from=builder"), False),
        (_line_of(lines, "COPY app"), False),
        (_line_of(lines, "ENV PATH="), False),
        (_line_of(lines, "CMD "), False),
    ]
    rows = [None if a is None else (a.line, a.base) for a in alignment.history]
    assert rows[: len(expected)] == expected
    # The fixture builder adds labels with `docker build --label`: no Dockerfile line made them.
    assert [entry.instruction for entry in image.history[len(expected) :]] == ["LABEL", "LABEL"]
    assert rows[len(expected) :] == [None, None]
    assert (
        [alignment.for_layer(layer.index).line for layer in image.layers]
        == [  # type: ignore[union-attr]
            line for line, _ in expected[:4]
        ]
    )
    assert alignment.unmatched == []


@pytest.mark.parametrize("name", ["layers"])
def test_single_stage_fixture_aligns_every_layer(
    name: str, build_fixture_image: Callable[[str], str], buildkit_image: Callable[[str], str]
) -> None:
    dockerfile = read_dockerfile(str(IMAGES_DIR / name / "Dockerfile"))
    lines = (IMAGES_DIR / name / "Dockerfile").read_text().splitlines()
    for tag in (build_fixture_image(name), buildkit_image(name)):
        image = load_image(tag)
        alignment = align(dockerfile, image.history)
        assert alignment.unmatched == []
        assert all(
            a is not None and a.score == 1.0 for a in alignment.history if a.instruction.keyword != "LABEL"
        )
        for layer in image.layers:
            found = alignment.for_layer(layer.index)
            assert found is not None and found.instruction is not None
            assert lines[found.line - 1].split()[0] == found.instruction.keyword
