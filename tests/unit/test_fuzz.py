"""Fuzzing the tar and archive readers: any input either reads or fails with a SlimscopeError.

The budget is fixed for CI; set SLIMSCOPE_FUZZ_EXAMPLES for a longer run. Crashes found become
regression cases in test_hostile.py.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache

import synth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slimscope.analysis import analyze
from slimscope.errors import SlimscopeError
from slimscope.image.tarstream import TarStream
from slimscope.sources.archive import read_archive

EXAMPLES = int(os.environ.get("SLIMSCOPE_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("SLIMSCOPE_FUZZ_RANDOM") != "1",
)


@lru_cache(maxsize=1)
def _layer_tar() -> bytes:
    return synth.layer_tar(synth.sample_layers("none")[1])


@lru_cache(maxsize=1)
def _archive() -> bytes:
    buf = io.BytesIO()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "a.tar")
        synth.write_archive(path, synth.Image(synth.sample_layers("gzip")), "docker-oci")
        with open(path, "rb") as handle:
            buf.write(handle.read())
    return buf.getvalue()


mutations = st.tuples(
    st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=8),
    st.one_of(st.none(), st.integers(min_value=0)),
)


@FUZZ
@given(mutations, st.integers(min_value=1, max_value=4096))
def test_tar_stream_never_crashes(mutation: tuple[list[tuple[int, int]], int | None], chunk: int) -> None:
    data = synth.mutate(_layer_tar(), *mutation)
    stream = TarStream()
    try:
        for start in range(0, len(data), chunk):
            stream.feed(data[start : start + chunk])
        stream.close()
    except SlimscopeError:
        return


@FUZZ
@given(st.binary(max_size=3000))
def test_tar_stream_on_random_bytes(data: bytes) -> None:
    stream = TarStream()
    try:
        stream.feed(data)
        stream.close()
    except SlimscopeError:
        return


@FUZZ
@given(mutations)
def test_archive_reader_never_crashes(mutation: tuple[list[tuple[int, int]], int | None]) -> None:
    data = synth.mutate(_archive(), *mutation)
    try:
        contents = read_archive(io.BytesIO(data))
    except SlimscopeError:
        return
    # Whatever was read must also merge and analyse without crashing.
    from slimscope.sources import _assemble
    from slimscope.sources.reference import SourceSpec

    try:
        image = _assemble(contents, SourceSpec("archive", "fuzz.tar"), "docker-archive", None)
    except SlimscopeError:
        return
    analyze(image)
