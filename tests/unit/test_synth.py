"""Tests of the synthetic archive generator (fixtures/synth.py) and the reference reader."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile
import zlib
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
if str(FIXTURES) not in sys.path:
    sys.path.insert(0, str(FIXTURES))

import reference  # noqa: E402
import synth  # noqa: E402
from synth import (  # noqa: E402
    Faults,
    Image,
    ImageIndex,
    Layer,
    directory,
    file,
    hardlink,
    opaque,
    symlink,
    whiteout,
)

DEMO = Path(__file__).resolve().parents[2] / "slimscope" / "data" / "demo-image.tar"


def sha(data: bytes) -> str:
    """Hex sha256."""
    return hashlib.sha256(data).hexdigest()


def members(tar_bytes: bytes) -> list[tarfile.TarInfo]:
    """Members of a tar as tarfile lists them."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), encoding="utf-8", errors="surrogateescape") as tf:
        return tf.getmembers()


def headers(tar_bytes: bytes) -> list[tuple[bytes, bytes]]:
    """(typeflag, raw name field) of every header block, walking the tar by hand."""
    out = []
    pos = 0
    while pos + 512 <= len(tar_bytes):
        block = tar_bytes[pos : pos + 512]
        if block == b"\0" * 512:
            break
        size_field = block[124:136]
        size = int(size_field.rstrip(b"\0 ") or b"0", 8)
        out.append((block[156:157], block[0:100].rstrip(b"\0")))
        pos += 512 + (size + 511) // 512 * 512
    return out


def image(layers: list[Layer], **kw) -> Image:
    """An Image with the given layers."""
    return Image(layers=layers, **kw)


def read(tmp_path: Path, layers: list[Layer], fmt: str = "oci-archive", **kw) -> dict:
    """Write layers as one image and read it back with the reference reader."""
    path = tmp_path / ("img" if fmt == "oci-dir" else "img.tar")
    synth.write_archive(path, image(layers, **kw), fmt)
    return reference.read_image(path)


# ---------------------------------------------------------------------------------------------------
# Tar encoding
# ---------------------------------------------------------------------------------------------------


def test_member_names_look_like_docker_layers() -> None:
    tar = synth.layer_tar([directory("etc"), file("etc/hosts", b"x"), symlink("bin", "usr/bin")])
    assert [n for _, n in headers(tar)] == [b"etc/", b"etc/hosts", b"bin"]
    assert [t for t, _ in headers(tar)] == [b"5", b"0", b"2"]
    assert tar.endswith(b"\0" * 1024)
    assert len(tar) == 512 * 4 + 1024


def test_dot_slash_variant_prefixes_names_and_hardlink_targets() -> None:
    layer = Layer([directory("a"), file("a/f", b"1"), hardlink("a/g", "a/f")], dot_slash=True)
    tar = synth.layer_tar(layer)
    assert [n for _, n in headers(tar)] == [b"./a/", b"./a/f", b"./a/g"]
    assert members(tar)[2].linkname == "./a/f"


def test_header_fields_are_exact() -> None:
    tar = synth.layer_tar([file("x", b"hello", mode=0o4755, uid=1000, gid=50, mtime=1234567890)])
    m = members(tar)[0]
    assert (m.name, m.size, m.mode, m.uid, m.gid, m.mtime) == ("x", 5, 0o4755, 1000, 50, 1234567890)
    assert tar[257:265] == b"ustar\x0000"
    assert tar[512 : 512 + 5] == b"hello"


def test_gnu_long_name_uses_an_L_header() -> None:
    name = "d/" + "n" * 150
    tar = synth.layer_tar([file(name, b"gnu", long_name="gnu")])
    hs = headers(tar)
    assert hs[0] == (b"L", b"././@LongLink")
    assert hs[1] == (b"0", name.encode()[:100])
    assert tar[512 : 512 + 153] == name.encode() + b"\0"
    assert [m.name for m in members(tar)] == [name]


def test_pax_long_name_uses_a_path_record() -> None:
    name = "d/" + "p" * 150
    tar = synth.layer_tar([file(name, b"pax")])
    hs = headers(tar)
    assert hs[0][0] == b"x"
    assert f" path={name}\n".encode() in tar[512:1024]
    assert [m.name for m in members(tar)] == [name]


def test_gnu_format_layer_puts_gnu_magic_everywhere() -> None:
    tar = synth.layer_tar(Layer([file("a", b"1"), file("b/" + "q" * 120, b"2")], fmt="gnu"))
    assert tar[257:265] == b"ustar  \0"
    assert [t for t, _ in headers(tar)] == [b"0", b"L", b"0"]


def test_ustar_prefix_split_for_long_names() -> None:
    name = "p" * 80 + "/" + "n" * 90
    tar = synth.layer_tar([file(name, b"u", long_name="ustar")])
    assert tar[345 : 345 + 80] == b"p" * 80
    assert [m.name for m in members(tar)] == [name]


def test_ustar_format_falls_back_to_pax_when_no_split_fits() -> None:
    unsplittable = "u" * 120
    splittable = "a" * 60 + "/" + "b" * 90
    tar = synth.layer_tar(Layer([file(splittable, b"1"), file(unsplittable, b"2")], fmt="ustar"))
    assert [t for t, _ in headers(tar)] == [b"0", b"x", b"0"]
    assert tar[345:405] == b"a" * 60
    assert [m.name for m in members(tar)] == [splittable, unsplittable]


def _normalized_headers(tar: bytes) -> bytes:
    """tar with checksum and devmajor/devminor blanked in every header (they differ only by style)."""
    out = bytearray(tar)
    pos = 0
    while pos + 512 <= len(out) and out[pos : pos + 512] != bytes(512):
        size = int(bytes(out[pos + 124 : pos + 136]).rstrip(b"\0 ") or b"0", 8)
        if out[pos + 156 : pos + 157] not in (b"3", b"4"):
            out[pos + 329 : pos + 345] = bytes(16)
        out[pos + 148 : pos + 156] = bytes(8)
        pos += 512 + (size + 511) // 512 * 512
    return bytes(out[:pos])


@pytest.mark.parametrize(("tar_format", "fmt"), [(tarfile.USTAR_FORMAT, "pax"), (tarfile.GNU_FORMAT, "gnu")])
def test_headers_match_what_tarfile_writes(tar_format: int, fmt: str) -> None:
    """Apart from devmajor/devminor ("0000000" for every member, as Go writes), bytes equal tarfile's."""
    specs = [
        (directory("etc"), tarfile.DIRTYPE, {"mode": 0o755}, None),
        (file("etc/hosts", b"hello", uid=1, gid=2), tarfile.REGTYPE, {"uid": 1, "gid": 2}, b"hello"),
        (symlink("bin", "usr/bin"), tarfile.SYMTYPE, {"linkname": "usr/bin", "mode": 0o777}, None),
        (hardlink("h", "etc/hosts"), tarfile.LNKTYPE, {"linkname": "etc/hosts"}, None),
        (
            synth.chardev("dev/null", 1, 3),
            tarfile.CHRTYPE,
            {"devmajor": 1, "devminor": 3, "mode": 0o666},
            None,
        ),
        (synth.fifo("p"), tarfile.FIFOTYPE, {}, None),
    ]
    if fmt == "gnu":
        specs.append((file("d/" + "n" * 150, b"x"), tarfile.REGTYPE, {}, b"x"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tar_format) as tf:
        for entry, kind, attrs, data in specs:
            info = tarfile.TarInfo(entry.name.decode())
            info.type, info.mtime, info.mode = kind, synth.MTIME, 0o644
            for key, value in attrs.items():
                setattr(info, key, value)
            info.size = len(data) if data is not None else 0
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    ours = synth.layer_tar(Layer([e for e, _, _, _ in specs], fmt=fmt))
    assert _normalized_headers(ours) == _normalized_headers(buf.getvalue())


def test_long_link_targets() -> None:
    target = "t/" + "z" * 140
    tar = synth.layer_tar(Layer([symlink("gnu", target, long_name="gnu"), symlink("pax", target)]))
    assert [t for t, _ in headers(tar)] == [b"K", b"2", b"x", b"2"]
    assert [m.linkname for m in members(tar)] == [target, target]


def test_non_utf8_name_is_written_raw_and_survives() -> None:
    tar = synth.layer_tar([file(b"caf\xe9", b"x")])
    assert tar[0:5] == b"caf\xe9\0"
    assert members(tar)[0].name.encode("utf-8", "surrogateescape") == b"caf\xe9"


def test_global_pax_header_is_written_but_not_listed() -> None:
    tar = synth.layer_tar([synth.pax_global({"comment": "abc"}), file("a", b"1")])
    assert headers(tar)[0] == (b"g", b"pax_global_header")
    assert tar[512:526] == b"15 comment=abc"
    assert [m.name for m in members(tar)] == ["a"]


def test_global_pax_header_mixed_with_gnu_long_names() -> None:
    name = "x/" + "g" * 120
    tar = synth.layer_tar([synth.pax_global(), file(name, b"1", long_name="gnu")])
    assert [t for t, _ in headers(tar)] == [b"g", b"L", b"0"]
    assert [m.name for m in members(tar)] == [name]


def test_devices_fifo_and_links() -> None:
    entries = [
        synth.chardev("dev/null", 1, 3),
        synth.blockdev("dev/sda", 8, 0),
        synth.fifo("run/p"),
        symlink("l", "/abs/target"),
        file("f", b"data"),
        hardlink("h", "f"),
    ]
    ms = members(synth.layer_tar(entries))
    assert [m.type for m in ms] == [b"3", b"4", b"6", b"2", b"0", b"1"]
    assert (ms[0].devmajor, ms[0].devminor, ms[1].devmajor, ms[1].devminor) == (1, 3, 8, 0)
    assert ms[3].linkname == "/abs/target"
    assert (ms[5].linkname, ms[5].size) == ("f", 0)


def test_whiteout_and_opaque_names() -> None:
    assert whiteout("a/b/c").name == b"a/b/.wh.c"
    assert whiteout("top/").name == b".wh.top"
    assert opaque("a/b/").name == b"a/b/.wh..wh..opq"
    assert (whiteout("x").kind, whiteout("x").data) == ("f", b"")


def test_sparse_member_round_trips() -> None:
    data = b"A" * 512 + b"\0" * 8192 + b"B" * 100
    tar = synth.layer_tar([synth.sparse_file("s.img", data, [(0, 512), (8704, 100)])])
    assert headers(tar)[0][0] == b"S"
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        m = tf.getmembers()[0]
        assert (m.type, m.size) == (b"S", len(data))
        f = tf.extractfile(m)
        assert f is not None
        assert f.read() == data
    # stored data is only the regions: header + 612 bytes padded to 1024, then end blocks
    assert len(tar) == 512 + 1024 + 1024


def test_sparse_member_with_extension_blocks() -> None:
    regions = [(i * 1024, 10) for i in range(30)]
    data = bytearray(30 * 1024)
    for off, n in regions:
        data[off : off + n] = b"R" * n
    tar = synth.layer_tar([synth.sparse_file("many", bytes(data), regions)])
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        f = tf.extractfile(tf.getmembers()[0])
        assert f is not None
        assert f.read() == bytes(data)


def test_sparse_rejects_data_outside_regions() -> None:
    with pytest.raises(ValueError):
        synth.sparse_file("s", b"AB", [(0, 1)])


def test_large_uid_goes_to_pax_or_base256() -> None:
    big = 3_000_000
    pax = synth.layer_tar([file("a", b"", uid=big)])
    assert b" uid=3000000\n" in pax
    assert members(pax)[0].uid == big
    gnu = synth.layer_tar(Layer([file("a", b"", uid=big)], fmt="gnu"))
    assert gnu[108] == 0x80
    assert members(gnu)[0].uid == big


def test_with_parents_and_sort_entries() -> None:
    full = synth.with_parents([file("a/b/c", b""), file("a/d", b"")])
    assert [e.name for e in full] == [b"a", b"a/b", b"a/b/c", b"a/d"]
    ordered = synth.sort_entries([hardlink("a", "z"), file("z", b"1"), synth.pax_global(), file("m", b"")])
    assert [(e.kind, e.name) for e in ordered] == [
        ("g", b"pax_global_header"),
        ("f", b"m"),
        ("f", b"z"),
        ("h", b"a"),
    ]


# ---------------------------------------------------------------------------------------------------
# Compression and media types
# ---------------------------------------------------------------------------------------------------


def test_compressions_and_magic() -> None:
    tar = synth.layer_tar([file("a", b"x" * 10000)])
    assert synth.compress(tar, "none") == tar
    gz = synth.compress(tar, "gzip")
    assert gz[:2] == b"\x1f\x8b" and gz[4:8] == b"\0\0\0\0"
    assert gzip.decompress(gz) == tar
    zs = synth.compress(tar, "zstd")
    assert zs[:4] == b"\x28\xb5\x2f\xfd"
    assert reference.decompress(zs) == tar


def test_multi_member_gzip_has_several_members() -> None:
    tar = synth.layer_tar([file(f"f{i}", bytes([i]) * 3000) for i in range(10)])
    blob = synth.compress(tar, "gzip-multi", members=3)
    count = 0
    rest = blob
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        d.decompress(rest)
        assert d.eof
        rest = d.unused_data
        count += 1
    assert count == 3
    assert gzip.decompress(blob) == tar


def test_media_types() -> None:
    assert synth.layer_media_type("none") == "application/vnd.oci.image.layer.v1.tar"
    assert synth.layer_media_type("gzip") == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert synth.layer_media_type("gzip-multi") == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert synth.layer_media_type("zstd") == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert synth.layer_media_type("gzip", "docker") == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert synth.layer_media_type("none", "docker") == "application/vnd.docker.image.rootfs.diff.tar"


def test_zstd_layer_in_an_oci_archive(tmp_path: Path) -> None:
    layers = [
        Layer([file("a", b"zz" * 100)], compression="zstd"),
        Layer([file("b", b"g")], compression="gzip"),
    ]
    arch = synth.write_archive(tmp_path / "z.tar", image(layers), "oci-archive")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    assert built.layers[0].blob[:4] == b"\x28\xb5\x2f\xfd"
    assert [d["mediaType"] for d in built.manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ]
    res = reference.read_image(arch.path)
    assert [la["media_type"] for la in res["layers"]] == [d["mediaType"] for d in built.manifest["layers"]]
    assert res["fs"][b"a"][1] == 200


# ---------------------------------------------------------------------------------------------------
# Merge rules in the reference reader
# ---------------------------------------------------------------------------------------------------


def test_whiteout_of_a_directory_removes_its_subtree(tmp_path: Path) -> None:
    res = read(
        tmp_path,
        [
            Layer(
                [directory("var"), directory("var/cache"), file("var/cache/a", b"1"), file("var/keep", b"k")]
            ),
            Layer([directory("var"), whiteout("var/cache")]),
        ],
    )
    assert sorted(res["fs"]) == [b"var", b"var/keep"]
    assert res["filesystem"] == {"files": 1, "dirs": 1, "symlinks": 0, "other": 0, "bytes": 1}


def test_opaque_dir_keeps_same_layer_entries(tmp_path: Path) -> None:
    res = read(
        tmp_path,
        [
            Layer([directory("d"), file("d/old", b"o"), directory("d/sub"), file("d/sub/x", b"x")]),
            Layer([file("d/new", b"nn"), directory("d"), opaque("d")]),
        ],
    )
    assert sorted(res["fs"]) == [b"d", b"d/new"]
    assert res["fs"][b"d/new"] == ("f", 2, 0o644, 0, 0, None, sha(b"nn"))


def test_whiteout_applies_before_same_layer_entries(tmp_path: Path) -> None:
    res = read(
        tmp_path,
        [
            Layer([directory("a"), file("a/lower", b"L")]),
            Layer([directory("a"), file("a/upper", b"U"), whiteout("a")]),
        ],
    )
    assert sorted(res["fs"]) == [b"a", b"a/upper"]


def test_file_over_directory_replaces_subtree_and_dir_over_dir_merges(tmp_path: Path) -> None:
    res = read(
        tmp_path,
        [
            Layer([directory("x"), file("x/1", b"1"), directory("y", mode=0o700), file("y/2", b"2")]),
            Layer([file("x", b"now a file"), directory("y", mode=0o750, uid=5)]),
        ],
    )
    assert sorted(res["fs"]) == [b"x", b"y", b"y/2"]
    assert res["fs"][b"x"][0] == "f"
    assert res["fs"][b"y"] == ("d", 0, 0o750, 5, 0, None, None)


def test_implied_parent_directories(tmp_path: Path) -> None:
    res = read(tmp_path, [Layer([file("a/b/c", b"abc")])])
    assert res["fs"][b"a"] == ("d", 0, 0o755, 0, 0, None, None)
    assert res["fs"][b"a/b"] == ("d", 0, 0o755, 0, 0, None, None)
    assert res["filesystem"] == {"files": 1, "dirs": 2, "symlinks": 0, "other": 0, "bytes": 3}


def test_hard_link_bytes_counted_once(tmp_path: Path) -> None:
    data = b"x" * 1000
    res = read(tmp_path, [Layer([file("f", data), hardlink("g", "f"), hardlink("h", "g"), file("o", b"12")])])
    assert res["fs"][b"g"] == ("h", 1000, 0o644, 0, 0, b"f", sha(data))
    assert res["fs"][b"h"] == ("h", 1000, 0o644, 0, 0, b"g", sha(data))
    assert res["filesystem"] == {"files": 4, "dirs": 0, "symlinks": 0, "other": 0, "bytes": 1002}
    assert res["layers"][0]["size_bytes"] == 1002
    assert res["layers"][0]["entries"] == 4


def test_hard_link_survives_removal_of_its_target(tmp_path: Path) -> None:
    res = read(tmp_path, [Layer([file("f", b"abc"), hardlink("g", "f")]), Layer([whiteout("f")])])
    assert sorted(res["fs"]) == [b"g"]
    assert res["filesystem"]["bytes"] == 3


def test_sample_layers_merged_exactly(tmp_path: Path) -> None:
    res = read(tmp_path, synth.sample_layers())
    fs = res["fs"]
    tool = b"\x7fELF" + b"\x01" * 1020
    assert fs[b"usr/bin/tool"] == ("f", 1024, 0o4755, 0, 0, None, sha(tool))
    assert fs[b"usr/bin/tool-link"] == ("h", 1024, 0o4755, 0, 0, b"usr/bin/tool", sha(tool))
    assert fs[b"etc/hostname"] == ("f", 8, 0o644, 1000, 1000, None, sha(b"synth-2\n"))
    assert fs[b"etc/os-release"] == ("l", 0, 0o777, 0, 0, b"../usr/lib/os-release", None)
    assert fs[b"dev/null"] == ("c", 0, 0o666, 0, 0, None, None)
    assert fs[b"dev/sda"] == ("b", 0, 0o660, 0, 0, None, None)
    assert fs[b"dev/initctl"] == ("p", 0, 0o600, 0, 0, None, None)
    assert fs[b"caf\xe9"] == ("f", 13, 0o644, 0, 0, None, sha(b"latin-1 name\n"))
    sparse = b"A" * 512 + b"\0" * 8192 + b"B" * 100
    assert fs[b"sparse.img"] == ("f", len(sparse), 0o644, 0, 0, None, sha(sparse))
    assert b"etc/shadow" not in fs
    assert [p for p in fs if p.startswith(b"var")] == [b"var"]
    assert sorted(p for p in fs if p.startswith(b"opt")) == [b"opt", b"opt/app", b"opt/app/new.txt"]
    long_dir = b"deep/" + b"d" * 60 + b"/" + b"e" * 60
    assert fs[long_dir + b"/gnu-long-name-" + b"x" * 40 + b".txt"][0] == "f"
    assert fs[long_dir + b"/pax-long-name-" + b"y" * 40 + b".txt"][0] == "f"
    assert fs[long_dir + b"/ustar-long-name.txt"] == ("f", 6, 0o644, 0, 0, None, sha(b"ustar\n"))
    assert res["filesystem"] == {"files": 10, "dirs": 10, "symlinks": 1, "other": 3, "bytes": 9899}
    assert [la["entries"] for la in res["layers"]] == [18, 11, 8, 1]
    assert [la["size_bytes"] for la in res["layers"]] == [5199, 8831, 4, 8]


# ---------------------------------------------------------------------------------------------------
# Archive formats
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_every_format_reads_back_the_same(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / ("img" if fmt == "oci-dir" else "img.tar")
    arch = synth.write_archive(path, Image(synth.sample_layers()), fmt)
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    res = reference.read_image(path)
    assert res["format"] == {"oci-archive": "oci", "oci-dir": "oci"}.get(fmt, fmt)
    assert [la["diff_id"] for la in res["layers"]] == built.diff_ids == built.config["rootfs"]["diff_ids"]
    assert [la["digest"] for la in res["layers"]] == [b.digest for b in built.layers]
    assert [la["compressed_bytes"] for la in res["layers"]] == [b.size for b in built.layers]
    assert res["filesystem"] == {"files": 10, "dirs": 10, "symlinks": 1, "other": 3, "bytes": 9899}
    assert res["platform"] == "linux/amd64"
    if fmt.startswith("docker"):
        assert all(b.compression == "none" for b in built.layers)
    else:
        assert all(b.compression == "gzip" for b in built.layers)


def test_docker_oci_blob_digests_match_their_names(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "d.tar", Image(synth.sample_layers("gzip")), "docker-oci")
    with tarfile.open(arch.path) as tf:
        names = tf.getnames()
        blobs = [n for n in names if n.startswith("blobs/sha256/") and tf.getmember(n).isfile()]
        for n in blobs:
            f = tf.extractfile(n)
            assert f is not None
            assert sha(f.read()) == n.rsplit("/", 1)[1]
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
        layout = json.loads(tf.extractfile("oci-layout").read())  # type: ignore[union-attr]
    assert len(blobs) == 6  # 4 layers, config, manifest
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= set(names)
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert manifest[0]["RepoTags"] == ["synth:latest"]
    assert manifest[0]["Config"].startswith("blobs/sha256/")
    assert all(p.startswith("blobs/sha256/") for p in manifest[0]["Layers"])
    ann = index["manifests"][0]["annotations"]
    assert ann == {
        "io.containerd.image.name": "docker.io/library/synth:latest",
        "org.opencontainers.image.ref.name": "latest",
    }
    oci_manifest = arch.images[0].manifest  # type: ignore[union-attr]
    assert oci_manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert oci_manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    for desc, blob_path in zip(oci_manifest["layers"], manifest[0]["Layers"], strict=True):
        assert blob_path == "blobs/sha256/" + desc["digest"][7:]


def test_docker_legacy_layout_and_shared_layer_symlink(tmp_path: Path) -> None:
    a = Layer([file("a", b"same")])
    b = Layer([file("b", b"other")])
    arch = synth.write_archive(tmp_path / "l.tar", Image([a, b, a]), "docker-legacy")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    with tarfile.open(arch.path) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        repos = json.loads(tf.extractfile("repositories").read())  # type: ignore[union-attr]
        paths = manifest[0]["Layers"]
        first, third = tf.getmember(paths[0]), tf.getmember(paths[2])
        assert first.isfile()
        assert third.issym()
        assert third.linkname == "../" + paths[0]
        ids = [p.split("/")[0] for p in paths]
        for i in ids:
            assert tf.extractfile(f"{i}/VERSION").read() == b"1.0"  # type: ignore[union-attr]
            assert json.loads(tf.extractfile(f"{i}/json").read())["id"] == i  # type: ignore[union-attr]
        assert manifest[0]["Config"] == built.config_digest[7:] + ".json"
    assert len(set(ids)) == 3
    assert repos == {"synth": {"latest": ids[-1]}}
    res = reference.read_image(arch.path)
    assert res["format"] == "docker-legacy"
    assert res["layers"][0]["diff_id"] == res["layers"][2]["diff_id"]
    assert sorted(res["fs"]) == [b"a", b"b"]


def test_oci_archive_and_dir_hold_the_same_layout(tmp_path: Path) -> None:
    im = Image(synth.sample_layers(), tags=["example.com/team/app:1.2"])
    synth.write_archive(tmp_path / "o.tar", im, "oci-archive")
    synth.write_archive(tmp_path / "o", im, "oci-dir")
    with tarfile.open(tmp_path / "o.tar") as tf:
        in_tar = {m.name: tf.extractfile(m).read() for m in tf.getmembers() if m.isfile()}  # type: ignore[union-attr]
    on_disk = {
        str(p.relative_to(tmp_path / "o")): p.read_bytes() for p in (tmp_path / "o").rglob("*") if p.is_file()
    }
    assert in_tar == on_disk
    index = json.loads(on_disk["index.json"])
    assert index["manifests"][0]["annotations"] == {
        "org.opencontainers.image.ref.name": "example.com/team/app:1.2"
    }
    assert "manifest.json" not in on_disk
    assert reference.read_image(tmp_path / "o", tag="example.com/team/app:1.2")["filesystem"]["files"] == 10


def test_multi_platform_index(tmp_path: Path) -> None:
    def plat(arch: str, variant: str | None = None) -> Image:
        return Image(
            [Layer([file("arch", arch.encode() + (variant or "").encode())])],
            architecture=arch,
            variant=variant,
        )

    idx = ImageIndex([plat("amd64"), plat("arm64", "v8"), plat("arm", "v7")], tags=["multi:1"])
    for fmt in ("oci-archive", "oci-dir", "docker-oci"):
        path = tmp_path / (fmt + ("" if fmt == "oci-dir" else ".tar"))
        arch = synth.write_archive(path, idx, fmt)
        built = arch.images[0]
        assert isinstance(built, synth.BuiltIndex)
        assert [m["platform"] for m in built.index_json["manifests"]] == [
            {"architecture": "amd64", "os": "linux"},
            {"architecture": "arm64", "os": "linux", "variant": "v8"},
            {"architecture": "arm", "os": "linux", "variant": "v7"},
        ]
        want = {"linux/amd64": b"amd64", "linux/arm64/v8": b"arm64v8", "linux/arm/v7": b"armv7"}
        for platform, content in want.items():
            res = reference.read_image(path, platform=platform)
            assert res["platform"] == platform
            assert res["fs"][b"arch"][6] == sha(content)
            assert res["config"]["architecture"] == platform.split("/")[1]
        assert reference.read_image(path)["fs"][b"arch"][6] == sha(b"amd64")
    top = json.loads((tmp_path / "oci-dir" / "index.json").read_bytes())
    assert top["manifests"][0]["mediaType"] == "application/vnd.oci.image.index.v1+json"


def test_docker_archive_with_several_images(tmp_path: Path) -> None:
    base = Layer([file("base", b"b")])
    one = Image([base, Layer([file("one", b"1")])], tags=["app:1", "app:latest"])
    two = Image([base, Layer([file("two", b"2")])], tags=["other/tool:2"])
    for fmt in ("docker-legacy", "docker-oci"):
        path = tmp_path / f"{fmt}.tar"
        synth.write_archive(path, [one, two], fmt)
        with tarfile.open(path) as tf:
            manifest = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
            repos = json.loads(tf.extractfile("repositories").read())  # type: ignore[union-attr]
        assert [m["RepoTags"] for m in manifest] == [["app:1", "app:latest"], ["other/tool:2"]]
        assert sorted(repos) == ["app", "other/tool"]
        assert sorted(repos["app"]) == ["1", "latest"]
        assert sorted(reference.read_image(path, tag="other/tool:2")["fs"]) == [b"base", b"two"]
        assert sorted(reference.read_image(path, tag="app:latest")["fs"]) == [b"base", b"one"]
        assert sorted(reference.read_image(path, index=1)["fs"]) == [b"base", b"two"]
        assert reference.read_image(path, tag="app")["layers"][1]["entries"] == 1


def test_docker_media_type_style(tmp_path: Path) -> None:
    arch = synth.write_archive(
        tmp_path / "d.tar", Image([Layer([file("a", b"1")])], media_types="docker"), "oci-archive"
    )
    m = arch.images[0].manifest  # type: ignore[union-attr]
    assert m["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert m["config"]["mediaType"] == "application/vnd.docker.container.image.v1+json"
    assert m["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    assert reference.read_image(arch.path)["fs"][b"a"][1] == 1


def test_output_is_deterministic(tmp_path: Path) -> None:
    for fmt in ("docker-legacy", "docker-oci", "oci-archive"):
        a = synth.write_archive(tmp_path / f"a-{fmt}.tar", Image(synth.sample_layers("gzip")), fmt)
        b = synth.write_archive(tmp_path / f"b-{fmt}.tar", Image(synth.sample_layers("gzip")), fmt)
        assert a.path.read_bytes() == b.path.read_bytes()
    zs1 = synth.build_layer(Layer([file("z", b"1" * 999)], compression="zstd"))
    zs2 = synth.build_layer(Layer([file("z", b"1" * 999)], compression="zstd"))
    assert zs1.digest == zs2.digest


# ---------------------------------------------------------------------------------------------------
# Config and history
# ---------------------------------------------------------------------------------------------------


def test_config_fields_and_generated_history() -> None:
    im = Image(
        [Layer([file("a", b"")]), Layer([file("b", b"")], created_by=synth.created_by("COPY", ". /app"))],
        architecture="arm",
        variant="v7",
        entrypoint=["/entry"],
        cmd=["serve"],
        workdir="/app",
        user="app",
        env=["PATH=/bin", "A=1"],
        exposed_ports=["8000/tcp"],
        labels={"k": "v"},
    )
    cfg = synth.build_image(im).config
    assert cfg["architecture"] == "arm" and cfg["variant"] == "v7" and cfg["os"] == "linux"
    assert cfg["config"] == {
        "User": "app",
        "ExposedPorts": {"8000/tcp": {}},
        "Env": ["PATH=/bin", "A=1"],
        "Entrypoint": ["/entry"],
        "Cmd": ["serve"],
        "WorkingDir": "/app",
        "Labels": {"k": "v"},
    }
    hist = [(h["created_by"], h.get("empty_layer", False)) for h in cfg["history"]]
    assert hist == [
        ("RUN /bin/sh -c synth-step-0 # buildkit", False),
        ("ENV A=1", True),
        ("LABEL k=v", True),
        ("WORKDIR /app", True),
        ("COPY . /app # buildkit", False),
        ("EXPOSE map[8000/tcp:{}]", True),
        ('ENTRYPOINT ["/entry"]', True),
        ('CMD ["serve"]', True),
    ]
    assert all(h["comment"] == "buildkit.dockerfile.v0" for h in cfg["history"])


def test_classic_history_style() -> None:
    assert synth.created_by("RUN", "apt-get update", "classic") == "/bin/sh -c apt-get update"
    assert synth.created_by("CMD", '["bash"]', "classic") == '/bin/sh -c #(nop)  CMD ["bash"]'
    assert synth.created_by("COPY", ". /app", "classic").startswith("/bin/sh -c #(nop) COPY dir:")
    cfg = synth.build_image(Image([Layer([file("a", b"")])], history_style="classic")).config
    assert cfg["docker_version"] == "20.10.24"
    assert cfg["config"]["AttachStdin"] is False
    assert "comment" not in cfg["history"][0]


def test_history_must_match_layer_count() -> None:
    with pytest.raises(ValueError):
        synth.build_image(Image([Layer([file("a", b"")])], history=[synth.History("x", empty_layer=True)]))


def test_chain_ids() -> None:
    d = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    chain = synth.chain_ids(d)
    assert chain[0] == d[0]
    assert chain[1] == "sha256:" + sha(f"{d[0]} {d[1]}".encode())


# ---------------------------------------------------------------------------------------------------
# Deliberate damage
# ---------------------------------------------------------------------------------------------------


def small(**kw) -> Image:
    """A two-layer image for fault tests."""
    return Image([Layer([file("a", b"A" * 3000)]), Layer([file("b", b"B" * 3000)])], **kw)


def test_wrong_layer_digest(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "w.tar", small(faults=Faults(wrong_layer_digest=1)), "oci-archive")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    assert built.layer_digests[1] != built.layers[1].digest
    assert built.manifest["layers"][1]["digest"] == built.layer_digests[1]
    with pytest.raises(reference.ArchiveError, match="has digest"):
        reference.read_image(arch.path)
    assert reference.read_image(arch.path, verify=False)["layers"][1]["digest"] == built.layers[1].digest


def test_wrong_layer_size(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "s.tar", small(faults=Faults(wrong_layer_size=0)), "oci-archive")
    assert arch.images[0].manifest["layers"][0]["size"] == arch.images[0].layers[0].size + 1  # type: ignore[union-attr]
    with pytest.raises(reference.ArchiveError, match="size"):
        reference.read_image(arch.path)


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-oci", "oci-archive"])
def test_wrong_diff_id(tmp_path: Path, fmt: str) -> None:
    arch = synth.write_archive(tmp_path / "d.tar", small(faults=Faults(wrong_diff_id=0)), fmt)
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    assert built.config["rootfs"]["diff_ids"][0] != built.layers[0].diff_id
    with pytest.raises(reference.ArchiveError, match="diff_ids"):
        reference.read_image(arch.path)


@pytest.mark.parametrize("missing", ["config", "manifest", 0])
def test_missing_blob(tmp_path: Path, missing: str | int) -> None:
    arch = synth.write_archive(tmp_path / "m.tar", small(faults=Faults(missing_blob=missing)), "oci-archive")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    gone = {"config": built.config_digest, "manifest": built.manifest_digest, 0: built.layer_digests[0]}[
        missing
    ]
    with tarfile.open(arch.path) as tf:
        assert "blobs/sha256/" + gone[7:] not in tf.getnames()
    with pytest.raises(reference.ArchiveError, match="missing"):
        reference.read_image(arch.path)


def test_missing_layer_in_docker_legacy(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "m.tar", small(faults=Faults(missing_blob=1)), "docker-legacy")
    with pytest.raises(reference.ArchiveError, match="missing"):
        reference.read_image(arch.path)


def test_truncated_archive(tmp_path: Path) -> None:
    full = synth.write_archive(tmp_path / "full.tar", small(), "docker-oci")
    cut = synth.write_archive(tmp_path / "cut.tar", small(), "docker-oci", truncate_at=3000)
    assert cut.size == 3000
    assert cut.path.read_bytes() == full.path.read_bytes()[:3000]
    with pytest.raises(reference.ArchiveError):
        reference.read_image(cut.path)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "gzip-multi"])
@pytest.mark.parametrize("corrupt", ["truncate", "garbage"])
def test_corrupt_compressed_layer(tmp_path: Path, compression: str, corrupt: str) -> None:
    layers = [Layer([file("a", bytes(range(256)) * 64)], compression=compression, corrupt=corrupt)]
    arch = synth.write_archive(tmp_path / "c.tar", image(layers), "oci-archive")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    assert built.layers[0].digest == synth.sha256(built.layers[0].blob)  # digest matches the damaged blob
    with pytest.raises(reference.ArchiveError, match=r"gzip|zstd|tar"):
        reference.read_image(arch.path)


def test_layer_that_is_not_a_tar(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "n.tar", image([Layer([], corrupt="not-tar")]), "oci-archive")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    assert gzip.decompress(built.layers[0].blob).startswith(b"this is not a tar archive\n")
    with pytest.raises(reference.ArchiveError, match="not a tar"):
        reference.read_image(arch.path)


def test_bad_config_json(tmp_path: Path) -> None:
    arch = synth.write_archive(tmp_path / "b.tar", small(faults=Faults(bad_config_json=True)), "docker-oci")
    built = arch.images[0]
    assert isinstance(built, synth.BuiltImage)
    with pytest.raises(json.JSONDecodeError):
        json.loads(built.config_blob)
    assert built.manifest["config"]["digest"] == synth.sha256(built.config_blob)
    with pytest.raises(reference.ArchiveError, match="JSON"):
        reference.read_image(arch.path)


def test_unknown_layer_media_type(tmp_path: Path) -> None:
    weird = "application/vnd.example.layer.v1.tar+lz4"
    arch = synth.write_archive(
        tmp_path / "u.tar", image([Layer([file("a", b"1")], media_type=weird)]), "oci-archive"
    )
    assert arch.images[0].manifest["layers"][0]["mediaType"] == weird  # type: ignore[union-attr]
    assert reference.read_image(arch.path)["layers"][0]["media_type"] == weird


def test_faults_that_a_format_cannot_express_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        synth.write_archive(tmp_path / "x.tar", small(faults=Faults(wrong_layer_digest=0)), "docker-legacy")
    with pytest.raises(ValueError):
        synth.write_archive(tmp_path / "x.tar", ImageIndex([small()]), "docker-legacy")
    with pytest.raises(ValueError):
        synth.write_archive(tmp_path / "x.tar", small(), "tarball")


# ---------------------------------------------------------------------------------------------------
# The bundled demo image
# ---------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not DEMO.exists(), reason="demo image not generated")
def test_bundled_demo_image() -> None:
    assert DEMO.stat().st_size < 3 * 1024 * 1024
    res = reference.read_image(DEMO)
    assert res["format"] == "docker-oci"
    assert len(res["layers"]) == 5
    total = sum(la["size_bytes"] for la in res["layers"])
    assert 150_000_000 < total < 300_000_000
    assert all(la["media_type"] == "application/vnd.oci.image.layer.v1.tar+gzip" for la in res["layers"])
    fs = res["fs"]
    for path in (
        b"usr/bin/gcc-12",
        b"usr/lib/gcc/x86_64-linux-gnu/12/cc1",
        b"usr/include/python3.11/Python.h",
        b"usr/bin/git",
        b"app/.git/HEAD",
        b"app/tests/test_app.py",
        b"app/Dockerfile",
        b"app/[@click=app.quit()]x",
        b"var/lib/dpkg/status",
        b"var/lib/dpkg/info/gcc-12.list",
        b"usr/local/lib/python3.11/dist-packages/flask-3.0.3.dist-info/RECORD",
    ):
        assert fs[path][0] == "f", path
    assert fs[b"bin"] == ("l", 0, 0o777, 0, 0, b"usr/bin", None)
    assert [p for p in fs if p.startswith(b"var/lib/apt/lists/")] == []
    assert any(p.startswith(b"var/cache/apt/archives/") and p.endswith(b".deb") for p in fs)
    assert any(p.startswith(b"root/.cache/pip/") for p in fs)
    cfg = res["config"]
    assert cfg["config"]["Cmd"] == ["python3", "/app/app.py"]
    assert cfg["config"]["WorkingDir"] == "/app"
    assert cfg["config"]["ExposedPorts"] == {"8000/tcp": {}}
    assert sum(1 for h in cfg["history"] if not h.get("empty_layer")) == 5


@pytest.mark.skipif(not DEMO.exists(), reason="demo image not generated")
def test_demo_generator_reproduces_the_bundled_file(tmp_path: Path) -> None:
    import make_demo

    out = tmp_path / "demo.tar"
    assert make_demo.main([str(out)]) == 0
    # The uncompressed layers and the config are identical; the gzip bytes also are with the same zlib.
    fresh, bundled = reference.read_image(out), reference.read_image(DEMO)
    assert fresh["config"] == bundled["config"]
    assert [la["diff_id"] for la in fresh["layers"]] == [la["diff_id"] for la in bundled["layers"]]
