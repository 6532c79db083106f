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

    def counting(jobs, done, on_blob):
        scans.extend(job.name for job in jobs)
        return real(jobs, done, on_blob)

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
    with pytest.raises(FormatError) as parallel_error:
        load_image(target)
    with monkeypatch.context() as m:
        m.setattr(sources, "_regular_file", lambda handle: False)
        with pytest.raises(FormatError) as streamed_error:
            load_image(target)
    assert str(parallel_error.value) == str(streamed_error.value)
    assert str(parallel_error.value).startswith("layer 1 (sha256:")
    assert multiprocessing.active_children() == []


def test_a_truncated_archive_is_reported_before_any_worker_starts(tmp_path: Path, workers: None) -> None:
    target = Path(_write(tmp_path, "docker-legacy", synth.Image(synth.sample_layers("none"))))
    data = target.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"^the archive is truncated"):
        load_image(str(target))
