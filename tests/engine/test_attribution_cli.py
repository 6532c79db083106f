"""`--dockerfile` and `--stage` from the command line, on the multi-stage fixture built by the engine."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import docker
import jsonschema
import pytest

from slimscope.report.json_doc import schema

DOCKERFILE = Path(__file__).resolve().parents[2] / "fixtures" / "images" / "multistage" / "Dockerfile"


@pytest.fixture(scope="module")
def builder_tag(docker_client: docker.DockerClient, build_context: Callable[[str], Path]) -> str:
    """The builder stage alone, as `docker build --target builder` makes it."""
    tag = "slimscope-test/multistage:builder"
    for chunk in docker_client.api.build(
        path=str(build_context("multistage")),
        tag=tag,
        target="builder",
        rm=True,
        forcerm=True,
        network_mode="host",
        pull=False,
        decode=True,
    ):
        if "error" in chunk:
            pytest.fail(chunk["error"])
    return tag


def test_dockerfile_lines_and_stage_copies(
    build_fixture_image: Callable[[str], str], builder_tag: str
) -> None:
    runtime = build_fixture_image("multistage")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slimscope",
            runtime,
            "--dockerfile",
            str(DOCKERFILE),
            "--stage",
            f"builder={builder_tag}",
            "--json",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema())
    attribution = doc["attribution"]
    assert attribution["builder"] == "classic"
    assert attribution["target"] == "runtime"
    assert [(x["layer"], x["stage"], x["line"]) for x in attribution["layers"]] == [
        (0, "base", 8),
        (1, "base", 9),
        (2, "base", 11),
        (3, "runtime", 22),
        (4, "runtime", 23),
        (5, "runtime", 27),
    ]
    assert {x["stage"]: x["bytes"] for x in attribution["stages"]} == {
        "base": 1982256 + 21,
        "runtime": 3000 + 21 + 6,
    }
    [stage] = attribution["stage_images"]
    assert stage["stage"] == "builder"
    assert stage["copies"] == [
        {"line": 22, "src": ["/out/artifact"], "dest": "/app/artifact", "layer": 3, "bytes": 3000}
    ]
    assert stage["copied_bytes"] == 3000
    assert stage["image_bytes"] == 1982256 + 21 + 3000 + 6  # busybox, motd, artifact, stamp


def test_sarif_points_at_dockerfile_lines(pyapp_images: dict[str, str]) -> None:
    dockerfile = Path(__file__).resolve().parents[2] / "fixtures" / "apps" / "pyapp" / "Dockerfile.naive"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "slimscope",
            pyapp_images["naive"],
            "--dockerfile",
            str(dockerfile),
            "--sarif",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    results = {r["ruleId"]: r for r in json.loads(proc.stdout)["runs"][0]["results"]}
    lines = dockerfile.read_text().splitlines()

    def line_of(rule: str) -> str:
        return lines[results[rule]["locations"][0]["physicalLocation"]["region"]["startLine"] - 1]

    assert "apt-get install" in line_of("SS101")
    assert line_of("SS301").startswith("COPY . /app")
    assert "pip install" in line_of("SS205")
