"""One image read from the engine, a docker-save archive, OCI gzip/zstd archives and an OCI layout."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from slimscope.analysis import analyze
from slimscope.report.json_doc import document, schema
from slimscope.sources import load_image

LAYERS = "layers"


def _doc(reference: str) -> dict[str, Any]:
    doc = document(analyze(load_image(reference)))
    jsonschema.validate(doc, schema())
    return doc


def _without_source_fields(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    # skopeo rewrites the config as an OCI config, so the image id (its sha256) changes too.
    for key in ("reference", "source", "tags", "manifest_digest", "id"):
        doc["image"].pop(key)
    for layer in doc["layers"]:
        for key in ("digest", "media_type", "compression", "compressed_bytes"):
            layer.pop(key)
    return doc


@pytest.fixture(scope="module")
def layers_tag(build_fixture_image: Callable[[str], str]) -> str:
    return build_fixture_image(LAYERS)


@pytest.fixture(scope="module")
def engine_doc(layers_tag: str) -> dict[str, Any]:
    return _doc(layers_tag)


def test_engine_read_of_the_layers_image(engine_doc: dict[str, Any], layers_tag: str) -> None:
    doc = engine_doc
    assert doc["image"]["source"] == "engine"
    assert doc["image"]["tags"] == [layers_tag]
    assert doc["image"]["platform"].startswith("linux/")
    config = doc["image"]["config"]
    assert config["workdir"] == "/app"
    assert config["user"] == "1000:1000"
    assert config["exposed_ports"] == ["8080/tcp", "9090/udp"]
    assert len(doc["layers"]) == 9
    by_index = {layer["index"]: layer for layer in doc["layers"]}
    # RUN yes B | head -c 20000 > /data/b && rm /data/c && rm -rf /data/dir
    overwrite = by_index[3]
    assert overwrite["instruction"] == "RUN"
    assert overwrite["modified"] == {"count": 1, "bytes": 20000}
    assert overwrite["deleted"] == {"count": 5, "bytes": 2048 + 1000 + 2000}
    # RUN rm -rf /opq && mkdir /opq && echo x > /opq/new: an opaque directory
    opaque = by_index[4]
    assert opaque["deleted"] == {"count": 2, "bytes": 5 + 4}
    assert opaque["added"] == {"count": 1, "bytes": 2}
    # RUN chmod 0755 /data/mode.sh
    assert by_index[5]["metadata_only"] == {"count": 1, "bytes": 10}
    assert by_index[5]["modified"] == {"count": 0, "bytes": 0}
    # RUN ln /data/a /data/a-link && ln -s /data/b /data/b-symlink: data/a is copied up with its new link
    hardlink = by_index[6]
    assert hardlink["added"]["count"] == 2
    assert hardlink["metadata_only"] == {"count": 1, "bytes": 4096}
    assert doc["history"][-1]["instruction"] in ("CMD", "ENTRYPOINT", "COPY")
    assert all(layer["diff_id"] == layer["digest"] for layer in doc["layers"])  # docker save is uncompressed


def test_all_sources_give_the_same_document(
    engine_doc: dict[str, Any],
    layers_tag: str,
    saved_archive: Callable[[str], Path],
    oci_archive: Callable[..., Path],
    oci_dir: Callable[..., Path],
) -> None:
    expected = _without_source_fields(engine_doc)
    archive = saved_archive(layers_tag)
    docs = {
        "docker-archive": _doc(str(archive)),
        "docker-archive-prefix": _doc(f"docker-archive:{archive}"),
        "oci-gzip": _doc(f"oci-archive:{oci_archive(layers_tag, 'gzip')}"),
        "oci-zstd": _doc(f"oci-archive:{oci_archive(layers_tag, 'zstd')}"),
        "oci-dir": _doc(f"oci:{oci_dir(layers_tag, 'gzip')}"),
    }
    for name, doc in docs.items():
        assert _without_source_fields(doc) == expected, name
    assert docs["docker-archive"]["image"]["id"] == engine_doc["image"]["id"]
    assert {layer["compression"] for layer in docs["oci-zstd"]["layers"]} == {"zstd"}
    assert {layer["compression"] for layer in docs["oci-gzip"]["layers"]} == {"gzip"}
    assert docs["oci-zstd"]["image"]["source"] == "oci-archive"
    assert docs["oci-dir"]["image"]["source"] == "oci-dir"
    for layer in docs["oci-zstd"]["layers"]:
        assert layer["media_type"] == "application/vnd.oci.image.layer.v1.tar+zstd"
        assert layer["digest"] != layer["diff_id"]


def test_cli_json_from_the_engine(layers_tag: str, tmp_path: Path) -> None:
    out = tmp_path / "doc.json"
    proc = subprocess.run(
        [sys.executable, "-m", "slimscope", layers_tag, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    assert len(doc["layers"]) == 9
    assert proc.stdout == ""
    assert proc.stderr == ""
    assert list(tmp_path.iterdir()) == [out]


def test_cli_errors_from_the_engine(docker_client: Any) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "slimscope", "slimscope-test/does-not-exist:nope"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    missing = "slimscope-test/does-not-exist:nope"
    assert proc.stderr == f"slimscope: error: image '{missing}' was not found in the local Docker engine\n"
    assert proc.stdout == ""


def test_engine_down_is_one_line(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no.sock", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "slimscope", "anything:latest"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("slimscope: error: cannot reach the Docker engine")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("name", ["layers", "hostile"])
def test_engine_images_agree_with_the_reference_reader(
    name: str, build_fixture_image: Callable[[str], str], saved_archive: Callable[[str], Path]
) -> None:
    """Layer sizes, entry counts and the final filesystem of a real docker-save archive, read by tarfile."""
    import reference
    from agreement import assert_agrees

    archive = saved_archive(build_fixture_image(name))
    assert_agrees(str(archive), reference.read_image(archive))
