"""The compiled fast path of the tar parser (_tarscan.c) against the Python parser alone.

Both read the same streams, cut into chunks every way; every column, every problem and every error
message must come out the same. The Python parser is itself checked against tarfile
(test_tarstream.py), so agreeing with it is agreeing with tarfile.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from collections.abc import Iterator
from functools import lru_cache

import pytest
import synth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slimscope.image.tarstream as tarstream
from slimscope.errors import SlimscopeError

compiled = tarstream._tarscan
needs_compiled = pytest.mark.skipif(
    compiled is None and not os.environ.get("SLIMSCOPE_REQUIRE_COMPILED"),
    reason="the C fast path is not built (no compiler at install time, or SLIMSCOPE_PURE_PYTHON set)",
)
pytestmark = needs_compiled

EXAMPLES = int(os.environ.get("SLIMSCOPE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("SLIMSCOPE_FUZZ_RANDOM") != "1",
)
COLUMNS = ("paths", "kinds", "sizes", "modes", "uids", "gids", "mtimes", "digests", "links", "captured")


def _read(data: bytes, cuts: list[int], fast: bool, *, capture: bool = True, stop_at: int | None = None):
    """Everything the parser made of `data` fed in pieces of the given sizes (repeated), or its error."""
    saved = tarstream._tarscan
    if not fast:
        tarstream._tarscan = None
    try:
        stream = tarstream.TarStream(capture=tarstream.CAPTURE if capture else None, stop_at=stop_at)
        assert (stream._scan is not None) == fast
        pos = 0
        i = 0
        try:
            while pos < len(data) and not stream.stopped:
                step = cuts[i % len(cuts)]
                stream.feed(data[pos : pos + step])
                pos += step
                i += 1
            stream.close()
        except SlimscopeError as exc:
            return ("error", type(exc).__name__, str(exc), len(stream.entries))
        entries = stream.entries
        return (
            tuple(
                bytes(getattr(entries, name))
                if name not in ("paths", "links", "captured")
                else getattr(entries, name)
                for name in COLUMNS
            ),
            entries.problems,
            entries.size_bytes,
            stream.stopped,
        )
    finally:
        tarstream._tarscan = saved


def _same(data: bytes, cuts: list[int], **kw) -> None:
    expected = _read(data, cuts, False, **kw)
    got = _read(data, cuts, True, **kw)
    assert got == expected


def test_the_compiled_path_is_built() -> None:
    """CI (SLIMSCOPE_REQUIRE_COMPILED) must run the parser users get from `./dev setup`."""
    assert compiled is not None, "slimscope.image._tarscan did not build or import"


@lru_cache(maxsize=1)
def _plain_tar() -> bytes:
    """Many plain members (what the fast path takes) around the odd ones it leaves to Python."""
    rng = random.Random(7)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for i in range(300):
            name = rng.choice(["usr/lib/", "./usr/share/", "/opt/", "etc/", "var/lib/dpkg/info/", ""])
            name += f"f{i}" + rng.choice(["", ".so", "/", ".list", "/.hidden", "/.wh.gone", "/../up", "//x"])
            info = tarfile.TarInfo(name)
            info.mode = rng.choice([0o644, 0o755, 0o4755])
            info.uid, info.gid, info.mtime = (
                rng.randrange(70000),
                rng.randrange(70000),
                rng.randrange(1 << 33),
            )
            kind = rng.random()
            if kind < 0.6:
                data = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 511, 512, 513, 3000])))
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            if kind < 0.75:
                info.type = tarfile.DIRTYPE
            elif kind < 0.9:
                info.type, info.linkname = tarfile.SYMTYPE, rng.choice(["../x", "/abs", "", "a" * 99])
            else:
                info.type, info.linkname = tarfile.LNKTYPE, rng.choice(["usr/lib/f1", "./a", "/b", "c/../d"])
            tf.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("cuts", [[1 << 20], [512], [511], [1], [4096, 7, 513], [100_000, 1]])
def test_plain_members_read_the_same_in_any_chunks(cuts: list[int]) -> None:
    _same(_plain_tar(), cuts)
    _same(_plain_tar(), cuts, capture=False)


def test_files_are_hashed_by_openssl_directly() -> None:
    """On this machine kind hashlib runs on libcrypto, so the C loop finds its SHA-256 functions."""
    if not os.environ.get("SLIMSCOPE_REQUIRE_COMPILED") and not compiled.direct_sha256():
        pytest.skip("hashlib's libcrypto was not found (another build of Python)")
    assert compiled.direct_sha256() is True


def test_large_files_inside_a_chunk_hash_the_same() -> None:
    """Files from 64 KiB up are hashed with the GIL released; sizes around that bound, whole in a chunk."""
    rng = random.Random(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for i, size in enumerate([(64 << 10) - 1, 64 << 10, (64 << 10) + 1, 1 << 20, 3_000_001]):
            info = tarfile.TarInfo(f"big/f{i}")
            info.size = size
            tf.addfile(info, io.BytesIO(rng.randbytes(size)))
    data = buf.getvalue()
    for cuts in ([len(data)], [1 << 20], [(64 << 10) + 700]):
        _same(data, cuts)


@pytest.fixture
def through_hashlib() -> Iterator[None]:
    """The C loop hashing with hashlib objects, as it does where libcrypto's functions are not found."""
    before = compiled.direct_sha256()
    assert compiled.direct_sha256(False) is False
    try:
        yield
    finally:
        compiled.direct_sha256(before)


@pytest.mark.parametrize("cuts", [[1 << 20], [511], [4096, 7, 513]])
def test_files_hash_the_same_through_hashlib(cuts: list[int], through_hashlib: None) -> None:
    _same(_plain_tar(), cuts)
    for layer in synth.sample_layers("none"):
        _same(synth.layer_tar(layer), cuts)


@pytest.mark.parametrize("fmt", ["pax", "gnu", "ustar"])
def test_every_member_kind_reads_the_same(fmt: str) -> None:
    for layer in synth.sample_layers("none"):
        data = synth.layer_tar(layer, fmt=fmt)
        for cuts in ([1 << 20], [512], [333], [1]):
            _same(data, cuts)


def test_stop_at_a_header_reads_the_same() -> None:
    data = _plain_tar()
    offsets = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        offsets = [m.offset for m in tf.getmembers()]
    for at in (offsets[len(offsets) // 2], offsets[-1], offsets[5] + 512, 0, len(data) + 512):
        for cuts in ([1 << 20], [512], [777]):
            expected = _read(data, cuts, False, stop_at=at)
            assert _read(data, cuts, True, stop_at=at) == expected


def _python_headers(data: bytes) -> tuple[int, tarstream.TarStream]:
    """How many headers of `data` the Python parser read (the rest went through C), and the stream."""
    calls = 0
    original = tarstream.TarStream._header

    def counting(self, block):
        nonlocal calls
        calls += 1
        return original(self, block)

    stream = tarstream.TarStream()
    tarstream.TarStream._header = counting  # type: ignore[method-assign]
    try:
        stream.feed(data)
    finally:
        tarstream.TarStream._header = original  # type: ignore[method-assign]
    return calls, stream


def test_fast_path_really_takes_the_plain_members() -> None:
    """Most members of an ordinary layer go through C: the Python header code runs for the odd ones."""
    calls, stream = _python_headers(_plain_tar())
    # 300 members: the odd names (leading "/", "/.", "..", "//", whiteouts, dpkg lists), the long
    # names' extended headers and the end marker are Python's; the rest are not.
    assert 0 < calls < 200
    assert len(stream.entries) == 300


# Edits aimed at headers: the fields the fast path parses itself (name, numbers, typeflag, link, magic,
# prefix) of a member near the start.
header_edits = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=40).map(lambda k: k * 512)
        | st.integers(min_value=0, max_value=len(_plain_tar()) - 1),
        st.integers(min_value=0, max_value=511),
        st.sampled_from(
            [0, 0x20, ord("."), ord("/"), ord("0"), ord("7"), ord("8"), ord("5"), ord("x"), 0x80, 0xFF]
        ),
    ).map(lambda t: (t[0] // 512 * 512 + t[1], t[2])),
    max_size=6,
)


@FUZZ
@given(header_edits, st.one_of(st.none(), st.integers(min_value=0)), st.integers(min_value=1, max_value=5000))
def test_mutated_streams_read_the_same(edits: list[tuple[int, int]], cut: int | None, chunk: int) -> None:
    data = synth.mutate(_plain_tar(), edits, cut)
    _same(data, [chunk])
    _same(data, [1 << 20])


names = st.text(alphabet="./aw h\\", min_size=1, max_size=12)


@FUZZ
@given(
    st.lists(
        st.tuples(
            names,
            st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
            names,
        ),
        min_size=1,
        max_size=8,
    )
)
def test_odd_names_read_the_same(members: list[tuple[str, bytes, str]]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, kind, link in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = link
                tf.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(link)
                tf.addfile(info, io.BytesIO(b"x" * len(link)))
            else:
                tf.addfile(info)
    _same(buf.getvalue(), [1 << 20])
    _same(buf.getvalue(), [512])


def _tar(members: list[tuple[str, bytes, int]]) -> bytes:
    """A ustar stream of (name, type, data size) members, links pointing at "t"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        for name, kind, size in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = "t"
            if kind == tarfile.REGTYPE:
                info.size = size
                tf.addfile(info, io.BytesIO(b"w" * size))
            else:
                tf.addfile(info)
    return buf.getvalue()


def test_whiteouts_are_taken_by_the_fast_path() -> None:
    """Empty regular files named .wh.* become whiteouts in C: no Python header call but the end marker."""
    members = [
        ("usr/.wh.bin", tarfile.REGTYPE, 0),
        ("./etc/.wh..wh..opq", tarfile.REGTYPE, 0),
        (".wh..wh..opq", tarfile.REGTYPE, 0),
        (".wh.x", tarfile.REGTYPE, 0),
        ("a/.wh..wh.plnk", tarfile.REGTYPE, 0),
        ("a/b..c", tarfile.REGTYPE, 1),
        ("d/.wh.x/", tarfile.DIRTYPE, 0),
        ("d/.wh.x/f", tarfile.REGTYPE, 0),
    ] + [(f"var/lib/.wh.f{i}", tarfile.REGTYPE, 0) for i in range(500)]
    calls, stream = _python_headers(_tar(members))
    assert calls == 1  # the end marker
    entries = stream.entries
    assert list(zip(entries.paths[:8], entries.kinds[:8])) == [
        (b"usr/bin", tarstream.WHITEOUT),
        (b"etc", tarstream.OPAQUE),
        (b"", tarstream.OPAQUE),
        (b"x", tarstream.WHITEOUT),
        (b"a/.wh..wh.plnk", tarstream.OTHER_WH),
        (b"a/b..c", tarstream.FILE),
        (b"d/.wh.x", tarstream.DIR),
        (b"d/.wh.x/f", tarstream.FILE),
    ]
    assert entries.paths[-1] == b"var/lib/f499" and entries.kinds[-1] == tarstream.WHITEOUT
    assert entries.size_bytes == 1
    assert bytes(entries.digests[:32]) == bytes(32) and not entries.links
    for cuts in ([1 << 20], [512], [1]):
        _same(_tar(members), cuts)


# Names built from the parts a whiteout's name is made of, the odd ones included.
wh_parts = st.sampled_from([".wh.", ".wh.a", ".wh..wh..opq", ".wh..wh.x", "a", ".a", "..a", "a..", ".", ".."])
wh_names = st.tuples(
    st.sampled_from(["", "./", "/", "././"]),
    st.lists(wh_parts, min_size=1, max_size=4),
    st.sampled_from(["", "/"]),
).map(lambda t: t[0] + "/".join(t[1]) + t[2])


@FUZZ
@given(
    st.lists(
        st.tuples(
            wh_names,
            st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE]),
            st.sampled_from([0, 0, 1, 600]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_whiteout_names_read_the_same(members: list[tuple[str, bytes, int]]) -> None:
    data = _tar(members)
    _same(data, [1 << 20])
    _same(data, [512])
    _same(data, [700, 1])
