"""Blobs of archive files read by offset in worker processes give what a front-to-back read gives."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
import synth

from slimscope import sources
from slimscope.analysis import analyze
from slimscope.errors import FormatError
from slimscope.image import parallel
from slimscope.report.json_doc import document
from slimscope.sources import load_image


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes even for tiny images."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)


def _streamed(monkeypatch: pytest.MonkeyPatch, target: str) -> dict:
    with monkeypatch.context() as m:
        m.setattr(sources, "_regular_file", lambda handle: False)
        return document(analyze(load_image(target)))


def _error_both_ways(monkeypatch: pytest.MonkeyPatch, target: str) -> tuple[str, str]:
    """The error of a read by offset and of a front-to-back read of the same archive."""
    with pytest.raises(FormatError) as by_offset:
        load_image(target)
    with monkeypatch.context() as m:
        m.setattr(sources, "_regular_file", lambda handle: False)
        with pytest.raises(FormatError) as streamed:
            load_image(target)
    return str(by_offset.value), str(streamed.value)


def _write(tmp_path: Path, fmt: str, image: synth.Image) -> str:
    path = tmp_path / "image.tar"
    synth.write_archive(path, image, fmt)
    return f"oci-archive:{path}" if fmt == "oci-archive" else str(path)


@pytest.mark.parametrize("fmt", ["docker-legacy", "docker-oci", "oci-archive"])
@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_worker_processes_agree_with_a_streamed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None, fmt: str, compression: str
) -> None:
    target = _write(tmp_path, fmt, synth.Image(synth.sample_layers(compression), tags=["p:1"]))
    scans: list[str] = []
    real = parallel._parse

    def counting(jobs, *args):
        scans.extend(job.name for job in jobs)
        return real(jobs, *args)

    monkeypatch.setattr(parallel, "_parse", counting)
    doc = document(analyze(load_image(target)))
    assert len(scans) == 4  # every layer went through the worker pool
    assert doc == _streamed(monkeypatch, target)
    assert multiprocessing.active_children() == []


def test_a_corrupt_layer_in_a_worker_is_the_same_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None
) -> None:
    layers = synth.sample_layers("gzip")
    layers[1].corrupt = "garbage"
    target = _write(tmp_path, "docker-oci", synth.Image(layers))
    parallel_error, streamed_error = _error_both_ways(monkeypatch, target)
    assert parallel_error == streamed_error
    assert parallel_error.startswith("layer 1 (sha256:")
    assert multiprocessing.active_children() == []


def test_a_truncated_archive_is_reported_before_any_worker_starts(tmp_path: Path, workers: None) -> None:
    target = Path(_write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none"))))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"^the archive is truncated"):
        load_image(str(target))


# -- one big uncompressed layer parsed in two halves -------------------------------------------------
@pytest.fixture
def halves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Split every uncompressed layer; records how many layers were stitched from two halves."""
    monkeypatch.setattr(parallel, "PARALLEL_MIN", 0)
    monkeypatch.setattr(parallel, "SPLIT_MIN", 0)
    merged: list[int] = []
    real = parallel._merge

    def counting(first, second):
        merged.append(len(first.paths) + len(second.paths))
        return real(first, second)

    monkeypatch.setattr(parallel, "_merge", counting)
    return merged


def _files(n: int, size: int = 700) -> list[synth.Entry]:
    return [synth.file(f"data/f{i:04d}.bin", bytes([i % 251]) * size) for i in range(n)]


def _one_layer(tmp_path: Path, entries: list[synth.Entry], **kw) -> str:
    layer = synth.Layer(synth.with_parents(entries), compression="none", **kw)
    return _write(tmp_path, "docker-legacy", synth.Image([layer]))


def _member_offsets(tar: bytes) -> list[int]:
    """Offsets of the member headers of an uncompressed tar (ustar/pax, as synth writes them)."""
    offsets, pos = [], 0
    while pos + 512 <= len(tar) and tar[pos : pos + 512] != bytes(512):
        offsets.append(pos)
        size = int(tar[pos + 124 : pos + 136].split(b"\0")[0] or b"0", 8)
        pos += 512 + (size + 511) // 512 * 512
    return offsets


def test_a_big_layer_parsed_in_halves_is_the_whole_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    target = _one_layer(tmp_path, _files(400))
    doc = document(analyze(load_image(target)))
    assert halves == [401]  # data/, data/f0000.bin ... data/f0399.bin
    assert doc == _streamed(monkeypatch, target)
    assert doc["layers"][0]["entries"] == 401
    assert multiprocessing.active_children() == []


def test_a_tar_inside_a_file_does_not_fool_the_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    inner = synth.layer_tar(_files(300, 100))  # a file whose bytes are a tar, lying across the middle
    target = _one_layer(tmp_path, [*_files(20), synth.file("data/inner.tar", inner), *_files(5)])
    doc = document(analyze(load_image(target)))
    assert halves == []  # the first half's walk stepped over the false header: it read on to the end
    assert doc == _streamed(monkeypatch, target)
    assert doc["filesystem"]["files"] == 21


def test_a_global_pax_header_keeps_the_layer_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    target = _one_layer(tmp_path, [synth.pax_global({"uid": "4242"}), *_files(400)])
    doc = document(analyze(load_image(target)))
    assert halves == []  # the second half would not know the global uid
    assert doc == _streamed(monkeypatch, target)


def test_an_error_past_the_middle_is_reported_as_by_a_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    tar = bytearray(synth.layer_tar(synth.with_parents(_files(400))))
    offsets = _member_offsets(bytes(tar))
    broken = offsets[len(offsets) * 3 // 4]
    tar[broken + 257 : broken + 263] = b"xxxxxx"  # no ustar magic, so the (now wrong) checksum counts
    tar[broken + 148 : broken + 156] = b"0000000\0"
    layer = synth.Layer([], compression="none", raw=bytes(tar))
    target = _write(tmp_path, "docker-legacy", synth.Image([layer]))
    split_error, streamed_error = _error_both_ways(monkeypatch, target)
    assert split_error == streamed_error
    assert "corrupt tar header after member" in split_error


def test_progress_follows_the_workers_and_adds_up_as_a_streamed_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    target = _one_layer(tmp_path, _files(3000, 2000))
    ticks: list[int] = []
    load_image(target, progress=sources.Progress(advance=ticks.append))
    assert halves == [3001]
    streamed: list[int] = []
    with monkeypatch.context() as m:
        m.setattr(sources, "_regular_file", lambda handle: False)
        load_image(target, progress=sources.Progress(advance=streamed.append))
    # every byte the workers read is counted (the first half may read a little past the middle)
    assert sum(streamed) <= sum(ticks) < sum(streamed) + (1 << 20)


def test_waiting_runs_once_while_the_workers_parse(tmp_path: Path, workers: None) -> None:
    """The CLI's imports run then: once per read, in this thread, with the workers alive."""
    import threading

    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("gzip")))
    calls: list[tuple[str, int]] = []

    def waiting() -> None:
        calls.append((threading.current_thread().name, len(multiprocessing.active_children())))

    load_image(target, progress=sources.Progress(waiting=waiting))
    assert calls == [(threading.current_thread().name, parallel.WORKERS)]


def test_waiting_is_not_called_when_the_image_is_parsed_here(tmp_path: Path) -> None:
    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("gzip")))  # under PARALLEL_MIN
    calls: list[int] = []
    load_image(target, progress=sources.Progress(waiting=lambda: calls.append(1)))
    assert calls == []


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The start method of every worker pool made from here on."""
    started: list[str] = []
    real = parallel._Workers

    def counting(context):
        started.append(context.get_start_method())
        return real(context)

    monkeypatch.setattr(parallel, "_Workers", counting)
    return started


def test_prestarted_workers_are_forked_once_and_lent_to_each_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None, made: list[str]
) -> None:
    """Forked before a thread starts, they serve reads made from a thread (the explorer's loader)."""
    import threading

    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("none")))
    expected = _streamed(monkeypatch, target)
    parallel.prestart()
    try:
        pool = parallel._PRESTARTED
        assert made == ["fork"] and pool is not None
        docs: list[dict] = []
        for _ in range(2):  # the two images of a diff
            reader = threading.Thread(target=lambda: docs.append(document(analyze(load_image(target)))))
            reader.start()
            reader.join()
        assert docs == [expected, expected]
        assert made == ["fork"]  # no other pool: the reads borrowed this one and gave it back
        assert parallel._PRESTARTED is pool
        assert len(multiprocessing.active_children()) == parallel.WORKERS
    finally:
        parallel.stop_prestarted()
    assert parallel._PRESTARTED is None
    assert multiprocessing.active_children() == []


def test_an_interrupted_read_ends_the_prestarted_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None
) -> None:
    """Ctrl-C while the workers parse: they may hold unfinished work, so they end, not go back."""
    target = _write(tmp_path, "docker-oci", synth.Image(synth.sample_layers("gzip")))

    def interrupt() -> None:
        raise KeyboardInterrupt

    parallel.prestart()
    try:
        with pytest.raises(KeyboardInterrupt):
            load_image(target, progress=sources.Progress(waiting=interrupt))
        assert parallel._PRESTARTED is None
        assert multiprocessing.active_children() == []
    finally:
        parallel.stop_prestarted()


def test_a_corrupt_layer_gives_the_prestarted_workers_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None
) -> None:
    """A worker reports a bad blob as its result: the pool is idle again and serves the next read."""
    layers = synth.sample_layers("gzip")
    layers[1].corrupt = "garbage"
    target = _write(tmp_path, "docker-oci", synth.Image(layers))
    parallel.prestart()
    try:
        pool = parallel._PRESTARTED
        with pytest.raises(FormatError, match=r"^layer 1 "):
            load_image(target)
        assert parallel._PRESTARTED is pool
    finally:
        parallel.stop_prestarted()
    assert multiprocessing.active_children() == []


def test_prestart_does_nothing_once_a_thread_runs() -> None:
    import threading

    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        parallel.prestart()
        assert parallel._PRESTARTED is None
    finally:
        stop.set()
        other.join()


def test_a_read_that_hashes_cached_layers_forks_its_workers_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: None, made: list[str]
) -> None:
    """A rebuilt image: its cached layers are hashed in threads, the new ones parsed in forked workers."""
    from slimscope.cache import LayerCache

    layers = synth.sample_layers("gzip")
    old = tmp_path / "old.tar"
    synth.write_archive(old, synth.Image(layers[:2]), "docker-oci")
    new = tmp_path / "new.tar"
    synth.write_archive(new, synth.Image(layers), "docker-oci")
    load_image(str(old), cache=LayerCache(tmp_path / "cache"))
    made.clear()  # that read made its own pool
    scans: list[str] = []
    real_parse = parallel._parse

    def parsing(jobs, *args):
        scans.extend(job.name for job in jobs)
        return real_parse(jobs, *args)

    monkeypatch.setattr(parallel, "_parse", parsing)
    doc = document(analyze(load_image(str(new), cache=LayerCache(tmp_path / "cache"))))
    assert len(scans) == len(layers) - 2  # only the new layers were parsed
    assert made == ["fork"]
    assert parallel._PRESTARTED is None and multiprocessing.active_children() == []
    assert doc == _streamed(monkeypatch, str(new))


# -- a split layer's sha256 checked after the analysis (load_image(verify_later=True)) --------------
def _tampered(tmp_path: Path) -> str:
    """One big uncompressed layer whose bytes no longer match the config's diff_id (it still parses)."""
    marker = synth.file("data/marker.txt", b"MARKER-ORIGINAL")
    target = _one_layer(tmp_path, [*_files(200), marker, *_files(200, 300)])
    data = Path(target).read_bytes()
    assert data.count(b"MARKER-ORIGINAL") == 1
    Path(target).write_bytes(data.replace(b"MARKER-ORIGINAL", b"MARKER-TAMPERED"))
    return target


def test_a_split_layer_is_verified_after_the_analysis_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int]
) -> None:
    target = _one_layer(tmp_path, _files(400))
    image = load_image(target, verify_later=True)
    assert halves == [401] and len(image.pending) == 1  # the split layer's digest check
    doc = document(analyze(image))
    image.verify()
    assert image.pending == []
    assert doc == _streamed(monkeypatch, target)
    assert image.layers[0].diff_id == load_image(target).layers[0].diff_id


def test_a_split_layer_that_does_not_match_fails_at_verify_and_is_not_cached(
    tmp_path: Path, halves: list[int]
) -> None:
    from slimscope.cache import LayerCache
    from slimscope.errors import DigestMismatch

    target = _tampered(tmp_path)
    with pytest.raises(DigestMismatch) as at_once:
        load_image(target)
    cache = LayerCache(tmp_path / "cache")
    image = load_image(target, verify_later=True, cache=cache)
    analyze(image)
    with pytest.raises(DigestMismatch) as later:
        image.verify()
    assert str(later.value) == str(at_once.value)
    assert str(at_once.value).startswith("layer 0 (")
    assert "): uncompressed sha256 is sha256:" in str(at_once.value)
    assert str(at_once.value).endswith(f"but the config says {image.layers[0].diff_id}")
    image.verify()  # the failed check is not run again, and the cache step after it never runs
    assert cache.stored == 0 and not (tmp_path / "cache").exists()


def test_the_cli_writes_nothing_for_a_split_layer_that_does_not_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, halves: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    from slimscope.cli import main

    target = _tampered(tmp_path)
    monkeypatch.setenv("SLIMSCOPE_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out.json"
    assert main([target, "--json", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slimscope: error: layer 0 (") and "but the config says sha256:" in err
    assert err.count("\n") == 1
    assert not out.exists() and not (tmp_path / "cache").exists()
