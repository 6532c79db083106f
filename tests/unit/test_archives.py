"""Every archive format and compression, read by slimscope and by an independent tarfile-based reader."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import reference
import synth
from agreement import assert_agrees as _assert_agrees

from slimscope.analysis import analyze
from slimscope.errors import DigestMismatch, FormatError, SlimscopeError, SourceError
from slimscope.image.layer import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK
from slimscope.report.json_doc import document, schema
from slimscope.sources import load_image

FORMATS = ["docker-legacy", "docker-oci", "oci-archive", "oci-dir"]
COMPRESSIONS = ["none", "gzip", "gzip-multi", "zstd"]
TYPE = {FILE: "f", DIR: "d", SYMLINK: "l", HARDLINK: "h", CHAR: "c", BLOCK: "b", FIFO: "p"}


def _reference_of(target: str, **kw: Any) -> dict[str, Any]:
    for prefix in ("oci:", "oci-archive:"):
        target = target.removeprefix(prefix)
    return reference.read_image(Path(target), **kw)


def _write(tmp_path: Path, fmt: str, images: Any, name: str = "image") -> str:
    suffix = "" if fmt == "oci-dir" else ".tar"
    path = tmp_path / f"{name}{suffix}"
    synth.write_archive(path, images, fmt)
    if fmt == "oci-dir":
        return f"oci:{path}"
    if fmt == "oci-archive":
        return f"oci-archive:{path}"
    return str(path)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_formats_and_compressions_agree_with_reference(tmp_path: Path, fmt: str, compression: str) -> None:
    image = synth.Image(synth.sample_layers(compression), tags=["synth:latest"])
    target = _write(tmp_path, fmt, image)
    ref = _reference_of(target)
    doc = _assert_agrees(target, ref)
    assert doc["filesystem"] == {"files": 10, "dirs": 10, "symlinks": 1, "other": 3, "bytes": 9899}
    expected_compression = "none" if compression == "none" else compression.split("-")[0]
    assert {layer["compression"] for layer in doc["layers"]} == {expected_compression}


def test_same_image_in_every_format_gives_the_same_document(tmp_path: Path) -> None:
    docs = {}
    for fmt in FORMATS:
        image = synth.Image(synth.sample_layers("gzip"), tags=["synth:latest"])
        target = _write(tmp_path, fmt, image, fmt)
        doc = _assert_agrees(target, _reference_of(target))
        for key in ("reference", "source", "tags", "manifest_digest"):
            doc["image"].pop(key)
        for layer in doc["layers"]:
            layer.pop("media_type")  # docker's manifest.json names no media types
        docs[fmt] = doc
    first = docs.pop("docker-legacy")
    for fmt, doc in docs.items():
        assert doc == first, fmt


def test_layer_change_sets_of_the_sample(tmp_path: Path) -> None:
    image = synth.Image(synth.sample_layers("none"))
    doc = document(analyze(load_image(_write(tmp_path, "docker-oci", image))))
    third = doc["layers"][2]  # opaque opt/app (old.txt, sub, sub/deep.txt) and whiteout of var/cache
    # etc/shadow, opaque opt/app (old.txt, sub, sub/deep.txt), var/cache (itself, apt, pkgcache.bin, motd)
    assert third["deleted"] == {"count": 1 + 3 + 4, "bytes": 26 + 4 + 5 + 4096 + 6}
    assert [h["empty_layer"] for h in doc["history"]].count(False) == 4


def test_history_maps_to_layers_with_empty_layers_in_order(tmp_path: Path) -> None:
    layers = synth.sample_layers("none")
    history = [
        synth.History("ADD rootfs.tar / # buildkit"),
        synth.History("ENV A=1", empty_layer=True),
        synth.History("RUN /bin/sh -c mknod # buildkit"),
        synth.History("WORKDIR /app", empty_layer=True),
        synth.History("/bin/sh -c #(nop) COPY dir:abc in /opt "),
        synth.History("RUN |1 X=1 /bin/sh -c echo $X # buildkit"),
        synth.History('CMD ["sh"]', empty_layer=True),
    ]
    image = synth.Image(layers, history=history)
    doc = document(analyze(load_image(_write(tmp_path, "docker-oci", image))))
    assert [h["layer_index"] for h in doc["history"]] == [0, None, 1, None, 2, 3, None]
    assert [layer["instruction"] for layer in doc["layers"]] == ["ADD", "RUN", "COPY", "RUN"]
    assert doc["layers"][3]["arguments"] == "echo $X"
    assert doc["layers"][2]["created_by"] == "/bin/sh -c #(nop) COPY dir:abc in /opt "


def test_multi_image_archive_needs_a_choice(tmp_path: Path) -> None:
    one = synth.Image([synth.Layer([synth.file("one", b"1")])], tags=["app:one"])
    two = synth.Image([synth.Layer([synth.file("two", b"22")])], tags=["app:two"])
    path = _write(tmp_path, "docker-oci", [one, two])
    with pytest.raises(SlimscopeError, match="holds 2 images; pick one with --image TAG or PATH:TAG"):
        load_image(path)
    assert analyze(load_image(path, image="app:two")).stats.bytes == 2
    assert analyze(load_image(f"{path}:app:one")).stats.bytes == 1
    with pytest.raises(SlimscopeError, match="no image tagged 'app:three'"):
        load_image(path, image="app:three")


@pytest.mark.parametrize("fmt", ["oci-archive", "oci-dir", "docker-oci"])
def test_platform_choice(tmp_path: Path, fmt: str) -> None:
    images = [
        synth.Image([synth.Layer([synth.file("arch", arch.encode())])], architecture=arch, variant=variant)
        for arch, variant in (("amd64", None), ("arm64", None), ("arm", "v7"))
    ]
    target = _write(tmp_path, fmt, synth.ImageIndex(images))
    for wanted, size in (("linux/arm64", 5), ("linux/arm/v7", 3), ("linux/amd64", 5)):
        image = load_image(target, platform=wanted)
        assert image.platform == wanted
        assert analyze(image).stats.bytes == size
    with pytest.raises(SlimscopeError, match="no image for platform linux/s390x"):
        load_image(target, platform="linux/s390x")


def test_non_utf8_names_survive(tmp_path: Path) -> None:
    image = synth.Image([synth.Layer([synth.file(b"caf\xe9", b"x"), synth.file(b"ok", b"y")])])
    analysis = analyze(load_image(_write(tmp_path, "docker-oci", image)))
    assert analysis.fs.lookup(b"caf\xe9") is not None


FAULTS = [
    (synth.Faults(wrong_layer_digest=0), DigestMismatch, "layer 0: blob sha256 is sha256:"),
    (synth.Faults(wrong_diff_id=1), DigestMismatch, "layer 1 (sha256:"),
    (synth.Faults(missing_blob=1), FormatError, "layer 1 (sha256:"),
    (synth.Faults(missing_blob="config"), FormatError, "config blob"),
    (synth.Faults(bad_config_json=True), FormatError, "image config is not valid JSON"),
]


@pytest.mark.parametrize(("faults", "error", "message"), FAULTS)
@pytest.mark.parametrize("fmt", ["docker-oci", "oci-archive"])
def test_broken_archives_raise_clear_errors(
    tmp_path: Path, faults: synth.Faults, error: type, message: str, fmt: str
) -> None:
    layers = [synth.Layer([synth.file("a", b"a" * 100)]), synth.Layer([synth.file("b", b"b" * 100)])]
    target = _write(tmp_path, fmt, synth.Image(layers, faults=faults))
    with pytest.raises(error) as caught:
        load_image(target)
    assert message in str(caught.value)


def test_a_wrong_layer_size_in_the_oci_manifest_is_refused(tmp_path: Path) -> None:
    layers = [synth.Layer([synth.file("a", b"a" * 100)]), synth.Layer([synth.file("b", b"b" * 100)])]
    image = synth.Image(layers, faults=synth.Faults(wrong_layer_size=1))
    target = _write(tmp_path, "oci-archive", image)
    size = len(synth.build_image(synth.Image(layers)).layers[1].blob)
    with pytest.raises(DigestMismatch) as caught:
        load_image(target)
    assert str(caught.value).endswith(f"blob is {size} bytes but the manifest says {size + 1}")
    assert str(caught.value).startswith("layer 1 (sha256:")
    # docker save archives are read from manifest.json, which states no sizes: the same blobs load
    assert len(load_image(_write(tmp_path, "docker-oci", image)).layers) == 2


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        ("truncate", r"layer 0 \(sha256:"),
        ("garbage", r"layer 0 \(sha256:"),
        ("not-tar", "not a tar archive"),
    ],
)
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_corrupt_layers(tmp_path: Path, corrupt: str, message: str, compression: str) -> None:
    layer = synth.Layer([synth.file("a", os.urandom(50_000))], compression=compression, corrupt=corrupt)
    target = _write(tmp_path, "oci-archive", synth.Image([layer]))
    with pytest.raises(FormatError, match=message):
        load_image(target)


def test_truncated_gzip_layer_message(tmp_path: Path) -> None:
    layer = synth.Layer([synth.file("a", os.urandom(50_000))], compression="gzip", corrupt="truncate")
    with pytest.raises(FormatError, match=r"truncated gzip stream"):
        load_image(_write(tmp_path, "oci-archive", synth.Image([layer])))


def test_truncated_zstd_layer_message(tmp_path: Path) -> None:
    layer = synth.Layer([synth.file("a", os.urandom(50_000))], compression="zstd", corrupt="truncate")
    with pytest.raises(FormatError, match=r"truncated zstd stream"):
        load_image(_write(tmp_path, "oci-archive", synth.Image([layer])))


def test_unknown_media_type(tmp_path: Path) -> None:
    layer = synth.Layer([synth.file("a", b"a")], media_type="application/x-mystery")
    with pytest.raises(FormatError, match="layer 0 has an unknown media type 'application/x-mystery'"):
        load_image(_write(tmp_path, "oci-archive", synth.Image([layer])))


def test_truncated_outer_archive(tmp_path: Path) -> None:
    path = tmp_path / "t.tar"
    archive = synth.write_archive(path, synth.Image(synth.sample_layers("gzip")), "docker-oci")
    data = path.read_bytes()
    for cut in (archive.size // 3, archive.size // 2, archive.size - 2000):
        path.write_bytes(data[:cut])
        with pytest.raises(FormatError):
            load_image(str(path))


def test_missing_paths_are_source_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        load_image(str(tmp_path / "nope.tar"))
    with pytest.raises(SourceError, match="no such directory"):
        load_image(f"oci:{tmp_path}/nope")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimscope", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_cli_json_and_summary(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("zstd"), tags=["synth:latest"]))
    out = tmp_path / "doc.json"
    proc = _cli(target, "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, schema())
    assert doc["filesystem"]["bytes"] == 9899
    assert proc.stdout == ""  # with --json FILE, no summary unless asked for
    summary = _cli(target, "--json", str(out), "--summary")
    assert "4 layers store" in summary.stdout
    stdout_doc = _cli(target, "--json", "-")
    assert json.loads(stdout_doc.stdout) == doc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.json", "image.tar"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "slimscope: error: not an image archive"),
        (b"hello world" * 100, "slimscope: error: not an image archive"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tar"
    path.write_bytes(content)
    proc = _cli(str(path))
    assert proc.returncode == 2
    assert proc.stderr.startswith(message)
    assert proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_cli_demo_summary() -> None:
    proc = _cli("--demo", "--summary")
    assert proc.returncode == 0, proc.stderr
    assert "demo (bundled)" in proc.stdout
    assert "[@click=app.quit()]x" not in proc.stdout or "\x1b" not in proc.stdout


@pytest.mark.parametrize(
    ("fmt", "prefix"),
    [
        ("oci-archive", "oci-archive:"),
        ("docker-oci", "docker-archive:"),
        ("docker-legacy", "docker-archive:"),
    ],
)
def test_a_plain_path_is_described_as_what_it_holds(tmp_path: Path, fmt: str, prefix: str) -> None:
    path = tmp_path / "image.tar"
    synth.write_archive(path, synth.Image([synth.Layer([synth.file("a", b"x")])]), fmt)
    image = load_image(str(path))
    assert image.reference == f"{prefix}{path}"
    assert image.source == prefix[:-1]
