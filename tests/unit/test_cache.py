"""The layer cache: same results as a fresh read, only new layers parsed, bad entries never trusted."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import synth

from slimscope import cache as cache_mod
from slimscope.analysis import analyze
from slimscope.cache import LayerCache, decode_entries, encode_entries
from slimscope.image.blobs import HEAD_BYTES, head_key
from slimscope.image.layer import LayerEntries
from slimscope.report.json_doc import document
from slimscope.sources import Progress, load_image

FORMATS = ["docker-legacy", "docker-oci", "oci-archive", "oci-dir"]


def _write(tmp_path: Path, fmt: str, image: synth.Image, name: str = "image") -> str:
    path = tmp_path / (name if fmt == "oci-dir" else f"{name}.tar")
    synth.write_archive(path, image, fmt)
    return {"oci-dir": f"oci:{path}", "oci-archive": f"oci-archive:{path}"}.get(fmt, str(path))


def _doc(target: str, cache: LayerCache | None) -> dict:
    return document(analyze(load_image(target, cache=cache)))


def _same_columns(a: LayerEntries, b: LayerEntries) -> None:
    columns = ("paths", "kinds", "sizes", "modes", "uids", "gids", "mtimes", "digests", "links", "captured")
    for name in columns:
        assert getattr(a, name) == getattr(b, name), name
    assert (a.problems, a.size_bytes) == (b.problems, b.size_bytes)


def test_entries_survive_encoding_with_every_member_kind(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("none")))
    for layer in load_image(target).layers:
        header, sections = encode_entries(layer.entries)
        decoded = decode_entries(json.loads(json.dumps(header)), memoryview(b"".join(sections)))
        _same_columns(decoded, layer.entries)


def test_names_with_nul_and_empty_layers_survive_encoding() -> None:
    entries = LayerEntries(paths=[b"a\0b", b"", b"caf\xe9"])
    entries.kinds.extend([0, 1, 0])
    for column in ("sizes", "modes", "uids", "gids", "mtimes"):
        getattr(entries, column).extend([1, 2, 3])
    entries.digests.extend(bytes(range(32)) * 3)
    entries.links[1] = b"x\0y"
    entries.captured[2] = b"\xff" * 3
    entries.problems.append("odd")
    for original in (entries, LayerEntries()):
        header, sections = encode_entries(original)
        assert header["nul_separated"] is (original is not entries)
        _same_columns(decode_entries(header, memoryview(b"".join(sections))), original)


@pytest.mark.parametrize("fmt", FORMATS)
def test_second_read_is_identical_and_parses_nothing(tmp_path: Path, fmt: str) -> None:
    target = _write(tmp_path, fmt, synth.Image(synth.sample_layers("gzip"), tags=["synth:1"]))
    cache = LayerCache(tmp_path / "cache")
    first = load_image(target, cache=cache)
    assert [layer.reused for layer in first.layers] == [False] * 4
    assert cache.stored == 4
    again = LayerCache(tmp_path / "cache")
    second = load_image(target, cache=again)
    assert [layer.reused for layer in second.layers] == [True] * 4
    assert again.stored == 0 and again.hits == 4
    assert document(analyze(second)) == document(analyze(load_image(target)))
    for a, b in zip(first.layers, second.layers):
        assert (a.diff_id, a.digest, a.compressed_bytes, a.compression) == (
            b.diff_id,
            b.digest,
            b.compressed_bytes,
            b.compression,
        )


def _shared_base_images(tmp_path: Path, fmt: str, compression: str) -> tuple[str, str]:
    base = synth.sample_layers(compression)[:3]
    one = synth.Image([*base, synth.Layer([synth.file("app/v", b"1\n")], compression=compression)])
    two = synth.Image([*base, synth.Layer([synth.file("app/v", b"two\n")], compression=compression)])
    return _write(tmp_path, fmt, one, "one"), _write(tmp_path, fmt, two, "two")


@pytest.mark.parametrize("fmt", ["docker-legacy", "oci-archive"])
def test_another_tag_sharing_layers_parses_only_its_new_layer(tmp_path: Path, fmt: str) -> None:
    one, two = _shared_base_images(tmp_path, fmt, "none" if fmt == "docker-legacy" else "zstd")
    load_image(one, cache=LayerCache(tmp_path / "cache"))
    cache = LayerCache(tmp_path / "cache")
    image = load_image(two, cache=cache)
    assert [layer.reused for layer in image.layers] == [True, True, True, False]
    assert cache.stored == 1
    assert _doc(two, None) == document(analyze(image))


def test_corrupt_and_foreign_entries_are_ignored_and_removed(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none")))
    root = tmp_path / "cache"
    fresh = _doc(target, None)
    load_image(target, cache=LayerCache(root))
    files = sorted((root / "v1" / "layers").iterdir())
    assert len(files) == 4
    data = bytearray(files[0].read_bytes())
    data[-1] ^= 0xFF  # a flipped byte in the payload
    files[0].write_bytes(bytes(data))
    files[1].write_bytes(files[1].read_bytes().replace(cache_mod.COMPAT.encode(), b"0" * 32))  # old version
    files[2].write_bytes(files[2].read_bytes()[:100])  # truncated
    cache = LayerCache(root)
    assert _doc(target, cache) == fresh
    assert cache.hits == 1 and cache.stored == 3
    assert len(list((root / "v1" / "layers").iterdir())) == 4  # the bad ones were replaced


@pytest.mark.parametrize("outer", ["file", "gzip"])
def test_an_entry_under_another_layers_fingerprint_is_caught_by_the_digest(
    tmp_path: Path, outer: str
) -> None:
    one, two = _shared_base_images(tmp_path, "docker-legacy", "none")
    if outer == "gzip":  # read front to back as a stream, like the engine's export
        for name in (one, two):
            Path(name + ".gz").write_bytes(gzip.compress(Path(name).read_bytes(), 1))
        one, two = one + ".gz", two + ".gz"
    root = tmp_path / "cache"
    load_image(one, cache=LayerCache(root))
    one_image = load_image(one)
    two_image = load_image(two)
    # Make the cache believe layer 3 of `two` is layer 3 of `one` (same size and head, other bytes).
    wrong = one_image.layers[3].diff_id.split(":")[1]
    alias = two_image.layers[3].head.split(":")[1]
    (root / "v1" / "aliases" / alias).write_text(wrong)
    cache = LayerCache(root)
    image = load_image(two, cache=cache)
    if outer == "file":  # blobs read by offset: only the impostor is parsed
        assert [layer.reused for layer in image.layers] == [True, True, True, False]
    else:  # a stream cannot go back: the whole image is read again, without the cache
        assert [layer.reused for layer in image.layers] == [False] * 4
    assert document(analyze(image)) == document(analyze(two_image))


def _counted(target: str, cache: LayerCache | None) -> tuple[dict, int]:
    """The document of an image and how many bytes of its source were read for it."""
    read = [0]

    def advance(n: int) -> None:
        read[0] += n

    image = load_image(target, cache=cache, progress=Progress(advance=advance))
    return document(analyze(image)), read[0]


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Archive files count as settled as soon as they are written (tests write and read at once)."""
    monkeypatch.setattr("slimscope.sources._SETTLE_NS", 0)


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-oci", "oci-archive"])
def test_an_unchanged_archive_file_is_not_read_again(tmp_path: Path, fmt: str, settled: None) -> None:
    target = _write(tmp_path, fmt, synth.Image(synth.sample_layers("gzip"), tags=["synth:1"]))
    root = tmp_path / "cache"
    fresh, size = _counted(target, None)
    first, read = _counted(target, LayerCache(root))
    assert read == size > 0 and first == fresh
    assert len(list((root / "v1" / "archives").iterdir())) == 1
    cache = LayerCache(root)
    second, read = _counted(target, cache)
    assert read == 0 and second == fresh
    assert cache.hits == 4 and cache.stored == 0


def test_an_archive_rewritten_in_place_is_read_again(tmp_path: Path, settled: None) -> None:
    base = synth.sample_layers("gzip")[:3]
    paths = []
    for name, data in (("one", b"1\n"), ("same", b"2\n")):  # same lengths: archives of the same size
        path = tmp_path / f"{name}.tar"
        synth.write_archive(path, synth.Image([*base, synth.Layer([synth.file("app/v", data)])]))
        paths.append(path)
    one, same_size = str(paths[0]), paths[1]
    assert same_size.stat().st_size == Path(one).stat().st_size
    root = tmp_path / "cache"
    _counted(one, LayerCache(root))
    with open(one, "r+b") as handle:  # same inode, same size, other bytes
        handle.write(same_size.read_bytes())
    expected, size = _counted(str(same_size), None)
    cache = LayerCache(root)
    doc, read = _counted(one, cache)
    assert doc["image"].pop("reference") == f"docker-archive:{one}"
    expected["image"].pop("reference")
    assert read == size and doc == expected
    assert cache.hits == 3 and cache.stored == 1


def test_a_file_written_just_now_is_not_recognised_by_its_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("gzip")))
    monkeypatch.setattr("slimscope.sources._SETTLE_NS", 3_600 * 10**9)  # written "just now": an hour
    root = tmp_path / "cache"
    _, size = _counted(target, LayerCache(root))
    assert not (root / "v1" / "archives").exists()
    _, read = _counted(target, LayerCache(root))
    assert read == size > 0  # hashed again, parsed from the layer cache


def test_an_archive_record_is_per_image_asked_and_needs_every_layer(
    tmp_path: Path, settled: None
) -> None:
    base = synth.sample_layers("gzip")[:3]
    one = synth.Image([*base, synth.Layer([synth.file("app/v", b"1\n")])], tags=["app:one"])
    two = synth.Image([*base, synth.Layer([synth.file("app/v", b"two\n")])], tags=["app:two"])
    path = tmp_path / "both.tar"
    synth.write_archive(path, [one, two], "docker-oci")
    root = tmp_path / "cache"
    doc_one, _ = _counted(f"{path}:app:one", LayerCache(root))
    doc_two, read = _counted(f"{path}:app:two", LayerCache(root))
    assert read > 0 and doc_two != doc_one
    assert _counted(f"{path}:app:one", LayerCache(root)) == (doc_one, 0)
    assert _counted(f"{path}:app:two", LayerCache(root)) == (doc_two, 0)
    # A layer evicted since: the record alone is not enough, the archive is read again.
    layer = root / "v1" / "layers" / f"{load_image(f'{path}:app:two').layers[3].diff_id[7:]}.layer"
    layer.unlink()
    cache = LayerCache(root)
    doc, read = _counted(f"{path}:app:two", cache)
    assert doc == doc_two and read > 0 and cache.stored == 1
    # A corrupt record is ignored and replaced.
    for record in (root / "v1" / "archives").iterdir():
        record.write_bytes(record.read_bytes()[:-3] + b"}}}")
    doc, read = _counted(f"{path}:app:one", LayerCache(root))
    assert doc == doc_one and read > 0
    assert _counted(f"{path}:app:one", LayerCache(root)) == (doc_one, 0)


def test_head_key_depends_on_size_and_first_bytes() -> None:
    data = b"x" * HEAD_BYTES
    assert head_key(10, data) == head_key(10, data + b"more")
    assert head_key(10, data) != head_key(11, data)
    assert head_key(10, data) != head_key(10, b"y" + data[1:])


def test_eviction_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    diff_ids = []
    for i in range(3):
        layer = synth.Layer([synth.file(f"f{i}", bytes([i]) * 100)])
        target = _write(tmp_path, "docker-legacy", synth.Image([layer]), f"i{i}")
        diff_ids.append(load_image(target, cache=LayerCache(root)).layers[0].diff_id)
    paths = [root / "v1" / "layers" / f"{d.split(':')[1]}.layer" for d in diff_ids]
    for age, path in zip((3000, 1000, 2000), paths):  # image 1 used longest ago, then 2, then 0
        os.utime(path, (age, age))
    sizes = [path.stat().st_size for path in paths]
    others = sum(p.stat().st_size for p in (root / "v1").rglob("*") if p.is_file() and p not in paths)
    bounded = LayerCache(root, max_bytes=others + sizes[0] + sizes[2])
    assert bounded.evict() == sizes[1]
    assert [path.exists() for path in paths] == [True, False, True]
    assert LayerCache(root).get(diff_ids[1]) is None
    assert LayerCache(root).get(diff_ids[0]) is not None
    assert LayerCache(root, max_bytes=0).evict() == sizes[0] + sizes[2]


def test_cli_fills_the_cache_and_no_cache_leaves_it_alone(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none")))
    env = {**os.environ, "SLIMSCOPE_CACHE_DIR": str(tmp_path / "c1")}
    cmd = [sys.executable, "-m", "slimscope", target, "--json", "-", "--no-progress"]
    none = subprocess.run([*cmd, "--no-cache"], env=env, capture_output=True, check=True)
    assert not (tmp_path / "c1").exists()
    cold = subprocess.run(cmd, env=env, capture_output=True, check=True)
    assert len(list((tmp_path / "c1" / "v1" / "layers").iterdir())) == 4
    warm = subprocess.run(cmd, env=env, capture_output=True, check=True)
    assert none.stdout == cold.stdout == warm.stdout
    off = {**env, "SLIMSCOPE_CACHE_DIR": str(tmp_path / "c2"), "SLIMSCOPE_CACHE_SIZE": "0"}
    subprocess.run(cmd, env=off, capture_output=True, check=True)
    assert not (tmp_path / "c2").exists()
    bad = subprocess.run(cmd, env={**env, "SLIMSCOPE_CACHE_SIZE": "lots"}, capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "slimscope: error: SLIMSCOPE_CACHE_SIZE: not a size: 'lots' "
        "(use e.g. 20MB, 1.5GiB or a number of bytes)"
    )


def test_an_unwritable_cache_does_not_fail_the_run(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none")))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = LayerCache(blocker / "cache")
    assert _doc(target, cache) == _doc(target, None)
    assert cache.stored == 0


def test_cache_command_reports_and_clears(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none")))
    env = {**os.environ, "SLIMSCOPE_CACHE_DIR": str(tmp_path / "c")}
    slimscope = [sys.executable, "-m", "slimscope"]
    time.sleep(0.06)  # the archive has settled (see slimscope.sources._SETTLE_NS): it gets a record
    subprocess.run([*slimscope, target, "--json", "/dev/null"], env=env, check=True, capture_output=True)
    size = sum(p.stat().st_size for p in (tmp_path / "c").rglob("*") if p.is_file())
    info = subprocess.run([*slimscope, "cache"], env=env, capture_output=True, text=True)
    assert info.returncode == 0
    lines = info.stdout.splitlines()
    assert lines[0] == f"layer cache: {tmp_path / 'c'}"
    assert lines[1].startswith("  4 layers, 0 engine images, 1 archive, ")
    assert lines[1].endswith(" (bound 2.0 GB)")
    cleared = subprocess.run([*slimscope, "cache", "clear"], env=env, capture_output=True, text=True)
    assert cleared.returncode == 0
    assert cleared.stdout.startswith("removed ")
    assert size > 0 and not [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
