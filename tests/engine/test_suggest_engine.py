"""`slimscope suggest` on real apps built by the engine: the suggestion builds, passes the app's smoke check,
is within 15% of the hand-written multi-stage image, and ships every library `ldd` lists.

The apps are the `app_images` fixtures (tests/engine/apps.py): Python with a compiled extension, a Go
server, a Node/TypeScript app with devDependencies and a build step, a Java app; each has a naive
single-stage image and a hand-written multi-stage twin.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import docker
import jsonschema
import pytest

from slimscope.cli import main
from slimscope.commands.suggest import make_suggestion, verify
from slimscope.report.json_doc import schema

APPS = ["python", "go", "node", "java"]
TOLERANCE = 0.15  # the verified size is within 15% of the hand-written multi-stage image's, either way
RUN_TIMEOUT = 300


def _ldd(client: docker.DockerClient, image: str, paths: list[str]) -> dict[str, list[str]]:
    """`ldd` of each path inside a container of `image`: path -> the lines it printed."""
    output = client.containers.run(
        image, ["ldd", *paths], entrypoint=[], remove=True, network_mode="none", stderr=True
    ).decode("utf-8", "replace")
    result: dict[str, list[str]] = {}
    current = paths[0] if len(paths) == 1 else ""
    for line in output.splitlines():
        if not line.startswith(("\t", " ")) and line.endswith(":"):
            current = line[:-1]
            continue
        result.setdefault(current, []).append(line.strip())
    return result


def _library_paths(lines: list[str]) -> list[str]:
    """The files `ldd` says a program loads (vdso left out): `x => /path (0x..)` and `/path (0x..)`."""
    found = []
    for line in lines:
        if "=>" in line:
            target = line.split("=>", 1)[1].strip().split(" (", 1)[0]
        else:
            target = line.split(" (", 1)[0]
        if target.startswith("/"):
            found.append(target)
    return found


@pytest.fixture(scope="module")
def suggestions(app_images: dict[str, Any]) -> dict[str, Any]:
    """(analysis, suggestion) of each naive app image, made once."""
    return {name: make_suggestion(app_images[name].naive) for name in APPS}


@pytest.mark.parametrize("name", APPS)
def test_suggestion_builds_passes_the_smoke_check_and_matches_the_hand_written_size(
    name: str, app_images: dict[str, Any], suggestions: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    app = app_images[name]
    analysis, suggestion = suggestions[name]
    assert not suggestion.closure.missing, suggestion.closure.missing
    result = verify(
        suggestion,
        original=analysis.image.id,
        dockerfile=None,
        context=None,
        smoke=shlex.join(app.smoke),
        timeout=RUN_TIMEOUT,
        keep=True,
    )
    try:
        assert result["built"], f"{result.get('error')}\n{result.get('build_log')}\n{suggestion.dockerfile}"
        assert result["passed"], json.dumps({k: result.get(k) for k in ("original", "suggested")}, indent=2)
        assert result["suggested"]["exit_code"] == 0
        assert app.expected_output in result["suggested"]["output"].splitlines()
        hand_written = int(docker_client.images.get(app.multistage).attrs["Size"])
        assert abs(result["size_bytes"] - hand_written) <= TOLERANCE * hand_written, (
            result["size_bytes"],
            hand_written,
        )
        assert result["saved_bytes"] > 0
        # Every ELF file of the closure still finds all its libraries in the suggested image.
        programs = ["/" + p.decode() for p in suggestion.closure.elf if suggestion.provides(p) != "rebuild"]
        if suggestion.base.name != "scratch" and programs:
            for path, lines in _ldd(docker_client, result["tag"], programs).items():
                assert not any("not found" in line for line in lines), (path, lines)
    finally:
        if result.get("kept"):
            docker_client.images.remove(result["tag"])


@pytest.mark.parametrize("name", ["python", "node", "java"])
def test_every_library_ldd_lists_in_the_naive_image_is_in_the_suggestion(
    name: str, app_images: dict[str, Any], suggestions: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    analysis, suggestion = suggestions[name]
    program = "/" + suggestion.closure.program.decode()
    elf_files = sorted({program, *("/" + p.decode() for p in suggestion.closure.elf)})
    listed = _ldd(docker_client, app_images[name].naive, elf_files)
    assert listed.get(program), listed
    checked = 0
    for path, lines in listed.items():
        for library in _library_paths(lines):
            found = analysis.fs.resolve(library.lstrip("/").encode())
            assert found is not None, library
            how = suggestion.provides(found[0])
            assert how is not None, f"{library} (needed by {path}) is not in the suggestion"
            checked += 1
    assert checked >= 3


@pytest.mark.parametrize("name", ["go", "python"])
def test_with_the_users_dockerfile_as_the_builder(
    name: str, app_images: dict[str, Any], docker_client: docker.DockerClient
) -> None:
    app = app_images[name]
    analysis, suggestion = make_suggestion(app.naive, dockerfile=str(app.naive_dockerfile))
    assert suggestion.base.how in ("static", "dockerfile")
    text = app.naive_dockerfile.read_text()
    for line in text.splitlines():
        if not line.startswith("FROM "):
            assert line in suggestion.dockerfile  # the user's lines, comments included, are kept
    result = verify(
        suggestion,
        original=analysis.image.id,
        dockerfile=str(app.naive_dockerfile),
        context=str(app.context),
        smoke=shlex.join(app.smoke),
        timeout=RUN_TIMEOUT,
        keep=False,
    )
    assert result["built"], f"{result.get('error')}\n{result.get('build_log')}"
    assert result["passed"] and app.expected_output in result["suggested"]["output"].splitlines()
    hand_written = int(docker_client.images.get(app.multistage).attrs["Size"])
    assert abs(result["size_bytes"] - hand_written) <= TOLERANCE * hand_written


def test_cli_json_document_and_exit_code(app_images: dict[str, Any], tmp_path, capsys) -> None:
    doc = tmp_path / "suggest.json"
    out = tmp_path / "Dockerfile"
    code = main(
        ["suggest", app_images["java"].naive, "--json", str(doc), "--write", str(out), "--no-progress"]
    )
    assert code == 0
    data = json.loads(doc.read_text())
    jsonschema.validate(data, schema())
    assert data["suggestion"]["dockerfile"] == out.read_text()
    assert "openjdk-17-jre-headless" in data["suggestion"]["packages"]
    assert "Suggested runtime" in capsys.readouterr().out
