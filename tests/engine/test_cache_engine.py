"""The layer cache with the real engine: a warm read exports nothing; a derived tag parses one layer."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from slimscope.analysis import analyze
from slimscope.cache import LayerCache
from slimscope.report.json_doc import document
from slimscope.sources import engine, load_image

DERIVED = "slimscope-test/cache-derived:latest"


@pytest.fixture(scope="module")
def layers_tag(build_fixture_image: Callable[[str], str]) -> str:
    return build_fixture_image("layers")


@pytest.fixture(scope="module")
def derived_tag(docker_client: docker.DockerClient, layers_tag: str) -> Iterator[str]:
    dockerfile = f"FROM {layers_tag}\nUSER 0\nRUN echo derived > /derived.txt\n".encode()
    docker_client.images.build(
        fileobj=io.BytesIO(dockerfile), tag=DERIVED, rm=True, forcerm=True, network_mode="host", pull=False
    )
    yield DERIVED
    docker_client.images.remove(DERIVED, force=True)


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The references slimscope asked the engine to export (the real export still runs)."""
    seen: list[str] = []
    real = engine.export

    def counting(found):
        seen.append(found if isinstance(found, str) else found.reference)
        return real(found)

    monkeypatch.setattr(engine, "export", counting)
    return seen


def test_warm_read_of_an_engine_image_exports_nothing(
    tmp_path: Path, layers_tag: str, exports: list[str]
) -> None:
    cold_cache = LayerCache(tmp_path / "cache")
    cold = load_image(layers_tag, cache=cold_cache)
    assert exports == [layers_tag]
    assert cold_cache.stored == len(cold.layers) == 9
    warm_cache = LayerCache(tmp_path / "cache")
    warm = load_image(layers_tag, cache=warm_cache)
    assert exports == [layers_tag]  # no second export
    assert [layer.reused for layer in warm.layers] == [True] * 9
    assert warm.id == cold.id and warm.tags == cold.tags == [layers_tag]
    assert document(analyze(warm)) == document(analyze(cold))


def test_a_derived_tag_parses_only_its_own_layer(
    tmp_path: Path, layers_tag: str, derived_tag: str, exports: list[str]
) -> None:
    load_image(layers_tag, cache=LayerCache(tmp_path / "cache"))
    cache = LayerCache(tmp_path / "cache")
    image = load_image(derived_tag, cache=cache)
    assert exports == [layers_tag, derived_tag]
    assert [layer.reused for layer in image.layers] == [True] * 9 + [False]
    assert cache.stored == 1
    assert document(analyze(image)) == document(analyze(load_image(derived_tag)))


def test_an_evicted_layer_is_read_again_through_the_export(
    tmp_path: Path, layers_tag: str, exports: list[str]
) -> None:
    first = load_image(layers_tag, cache=LayerCache(tmp_path / "cache"))
    victim = first.layers[4].diff_id.split(":")[1]
    (tmp_path / "cache" / "v1" / "layers" / f"{victim}.layer").unlink()
    cache = LayerCache(tmp_path / "cache")
    image = load_image(layers_tag, cache=cache)
    assert exports == [layers_tag, layers_tag]
    assert [layer.reused for layer in image.layers] == [True] * 4 + [False] + [True] * 4
    assert document(analyze(image)) == document(analyze(first))


def test_a_platform_the_engine_image_is_not_is_refused_before_the_export(
    layers_tag: str, exports: list[str]
) -> None:
    from slimscope.errors import SourceError

    other = "linux/s390x"
    with pytest.raises(SourceError) as error:
        load_image(layers_tag, platform=other)
    assert str(error.value).startswith(f"no image for platform {other}: {layers_tag} is linux/")
    assert exports == []
