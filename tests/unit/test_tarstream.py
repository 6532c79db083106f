"""The hand-written tar parser against Python's tarfile, member by member."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

import slimscope.image.tarstream as tarstream
from slimscope.errors import FormatError
from slimscope.image.layer import DIR, FILE, HARDLINK, OPAQUE, OTHER_WH, SYMLINK, WHITEOUT
from slimscope.image.tarstream import TarStream, normalize


@pytest.fixture(autouse=True, params=["compiled", "python"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs on the parser with its C fast path and on the Python parser alone."""
    if request.param == "python":
        monkeypatch.setattr(tarstream, "_tarscan", None)
    elif tarstream._tarscan is None:
        pytest.skip("the C fast path is not built")
    return request.param


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def _parse(data: bytes, chunk: int = 7919) -> TarStream:
    stream = TarStream()
    for start in range(0, len(data), chunk):
        stream.feed(data[start : start + chunk])
    stream.close()
    return stream


def _assert_matches_tarfile(data: bytes, chunk: int = 7919) -> TarStream:
    stream = _parse(data, chunk)
    entries = stream.entries
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
        members = tf.getmembers()
        assert len(entries) == len(members)
        for i, member in enumerate(members):
            raw = member.name.encode("utf-8", "surrogateescape")
            assert entries.paths[i] == normalize(raw) or entries.kinds[i] in (WHITEOUT, OPAQUE, OTHER_WH)
            assert entries.modes[i] == member.mode & 0o7777
            assert entries.uids[i] == member.uid
            assert entries.gids[i] == member.gid
            assert entries.mtimes[i] == int(member.mtime)
            if member.isreg():
                assert entries.kinds[i] in (FILE, WHITEOUT, OPAQUE, OTHER_WH)
                content = tf.extractfile(member).read()
                if entries.kinds[i] == FILE:
                    assert entries.sizes[i] == member.size
                    assert entries.digest(i) == hashlib.sha256(content).digest()
            elif member.isdir():
                assert entries.kinds[i] == DIR
            elif member.issym():
                assert entries.kinds[i] == SYMLINK
                assert entries.links[i] == member.linkname.encode("utf-8", "surrogateescape")
            elif member.islnk():
                assert entries.kinds[i] == HARDLINK
                assert entries.sizes[i] == 0
    return stream


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 512, 4096, 1 << 20])
def test_matches_tarfile(fmt: int, chunk: int) -> None:
    long_dir = "usr/share/" + "d" * 120
    members = [
        (_info("usr/", tarfile.DIRTYPE, mode=0o755), None),
        (_info("usr/bin/", tarfile.DIRTYPE, mode=0o755), None),
        (_info("usr/bin/tool", mode=0o4755, uid=0, gid=0, mtime=1700000000), b"#!/bin/sh\necho hi\n" * 50),
        (_info("usr/bin/empty"), b""),
        (_info("usr/bin/alias", tarfile.SYMTYPE, linkname="tool"), None),
        (_info("usr/bin/hard", tarfile.LNKTYPE, linkname="usr/bin/tool"), None),
        (_info("usr/bin/exactly512"), b"x" * 512),
        (_info("etc/big", uid=1000, gid=1000), bytes(range(256)) * 4000),
    ]
    if fmt != tarfile.USTAR_FORMAT:
        members.append((_info(long_dir + "/file-with-a-long-name.txt", uid=70000), b"long"))
        members.append((_info("usr/bin/longlink", tarfile.SYMTYPE, linkname="../" + "x" * 150), None))
    stream = _assert_matches_tarfile(_tar(members, fmt), chunk)
    assert stream.entries.size_bytes == 900 + 0 + 512 + 256 * 4000 + (4 if fmt != tarfile.USTAR_FORMAT else 0)


def test_pax_global_header_applies_to_later_members() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"uid": "4242"}) as tf:
        tf.addfile(_info("a/", tarfile.DIRTYPE))
        info = _info("a/f", uid=1)
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    data = buf.getvalue()
    assert data[156:157] == b"g"
    stream = _assert_matches_tarfile(data)
    assert list(stream.entries.uids) == [4242, 4242]


def test_non_utf8_names_are_kept_as_bytes() -> None:
    info = tarfile.TarInfo("caf\udce9")  # surrogateescape of byte 0xe9
    info.size = 1
    buf = io.BytesIO()
    with tarfile.open(
        fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape"
    ) as tf:
        tf.addfile(info, io.BytesIO(b"x"))
    stream = _parse(buf.getvalue())
    assert stream.entries.paths == [b"caf\xe9"]


def test_whiteouts_and_opaque_markers() -> None:
    data = _tar(
        [
            (_info("etc/.wh.passwd"), b""),
            (_info("var/cache/.wh..wh..opq"), b""),
            (_info(".wh.tmp"), b""),
            (_info(".wh..wh.plnk"), b""),
            (_info("./opt/new"), b"n"),
        ]
    )
    entries = _parse(data).entries
    assert entries.paths == [b"etc/passwd", b"var/cache", b"tmp", b".wh..wh.plnk", b"opt/new"]
    assert list(entries.kinds) == [WHITEOUT, OPAQUE, WHITEOUT, OTHER_WH, FILE]
    assert entries.size_bytes == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"./", b""),
        (b"./usr/bin/", b"usr/bin"),
        (b"/abs/x", b"abs/x"),
        (b"a//b", b"a/b"),
        (b"a/./b", b"a/b"),
        (b"../../etc/passwd", b"etc/passwd"),
        (b"a/../b", b"b"),
        (b".hidden", b".hidden"),
    ],
)
def test_normalize(raw: bytes, expected: bytes) -> None:
    assert normalize(raw) == expected


def test_trailing_zero_blocks_and_junk_after_end_are_ignored() -> None:
    data = _tar([(_info("f"), b"1")]) + b"junk" * 100
    entries = _parse(data).entries
    assert entries.paths == [b"f"]


def test_truncated_inside_member_data() -> None:
    data = _tar([(_info("f"), b"x" * 5000)])
    with pytest.raises(FormatError, match="truncated tar"):
        _parse(data[:2000])


def test_stream_ending_at_member_boundary_without_end_marker_is_accepted() -> None:
    data = _tar([(_info("f"), b"x" * 512)])
    entries = _parse(data[: 512 + 512]).entries
    assert entries.paths == [b"f"]


def test_not_a_tar() -> None:
    with pytest.raises(FormatError, match="not a tar archive"):
        _parse(b"PK\x03\x04" + b"z" * 2000)


def test_corrupt_header_after_first_member() -> None:
    data = bytearray(_tar([(_info("a"), b"1"), (_info("b"), b"2")]))
    data[1024 + 257] ^= (
        0xFF  # second header's magic: no longer "ustar", so its checksum is checked (and wrong)
    )
    with pytest.raises(FormatError, match="corrupt tar header after member 1"):
        _parse(bytes(data))


def test_huge_declared_size_does_not_allocate() -> None:
    header = bytearray(_tar([(_info("f"), b"")])[:512])
    header[124:136] = b"17777777777\0"  # 8 GiB - 1
    header[148:156] = b"        "
    header[148:156] = b"%06o\0 " % (sum(header))
    stream = TarStream()
    stream.feed(bytes(header) + b"x" * 4096)
    assert stream.entries.sizes[0] == 0o17777777777
    with pytest.raises(FormatError, match="truncated"):
        stream.close()
