"""The rewrite plan and its Dockerfile: base, packages, copies, prune stage, untrusted names, JSON, CLI."""

from __future__ import annotations

import json
import re

import jsonschema
import pytest
import synth
from synth import directory, file, symlink
from test_closure import (
    GLIBC,
    GLIBC_INFO,
    STATIC,
    Fetcher,
    elf,
    elf_files,  # noqa: F401 - the fixture
    image_of,
    xz_image,
)

from slimscope.analysis import analyze
from slimscope.analysis.closure import runtime_closure
from slimscope.analysis.dockerfile import parse_dockerfile
from slimscope.analysis.suggest import PRUNE, find_base, plan
from slimscope.cli import main
from slimscope.commands.suggest import make_suggestion
from slimscope.report.json_doc import document, schema

INSTRUCTIONS = re.compile(
    r"^(FROM|RUN|COPY|ENV|WORKDIR|USER|EXPOSE|VOLUME|STOPSIGNAL|HEALTHCHECK|ENTRYPOINT|CMD) "
)


def status(*packages: str) -> str:
    return "".join(
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\n"
        f"Version: 1.0\n{'Depends: ' + deps + chr(10) if deps else ''}\n"
        for name, _, deps in (p.partition(";") for p in packages)
    )


def dpkg_list(name: str, *paths: str) -> synth.Entry:
    return file(f"var/lib/dpkg/info/{name}:amd64.list", "".join(f"/{p}\n" for p in paths))


def suggestion_of(
    layers, infos=None, *, base_layers: int | None = 1, dockerfile: str | None = None, **config
):
    image = image_of(layers, **config)
    analysis = analyze(image)
    closure = runtime_closure(analysis, Fetcher(image, {**GLIBC_INFO, **(infos or {})}, layers))
    local = [("debian:test", [layer.diff_id for layer in image.layers[:base_layers]])] if base_layers else []
    parsed = parse_dockerfile(dockerfile) if dockerfile else None
    base = find_base(analysis, closure, dockerfile=parsed, local_images=local)
    return analysis, plan(
        analysis, closure, base, image="naive:1", dockerfile=parsed, dockerfile_text=dockerfile
    )


def check_safe(text: str) -> None:
    """Printable ASCII only; every line a comment, an instruction or a continuation of RUN."""
    assert all(ch == "\n" or " " <= ch <= "~" for ch in text), text
    for line in text.splitlines():
        assert not line or line.startswith(("#", " ")) or INSTRUCTIONS.match(line), line


# A Debian-like base (layer 0) and a layer installing python with dpkg and pip installing a package.
BASE = [
    *GLIBC,
    file("usr/bin/apt-get", "APT"),
    file("bin/rm", "RM"),
    file("var/lib/dpkg/status", status("libc6", "dash")),
    dpkg_list(
        "libc6",
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libm.so.6",
        "lib64/ld-linux-x86-64.so.2",
    ),
]
PY_LAYER = [
    file(
        "var/lib/dpkg/status",
        status("libc6", "dash", "python3.11-minimal;libc6", "libpython3.11-stdlib", "gcc-12"),
    ),
    dpkg_list("python3.11-minimal", "usr/bin/python3.11", "usr/bin/python3"),
    dpkg_list("libpython3.11-stdlib", "usr/lib/python3.11/os.py", "usr/lib/python3.11/json/__init__.py"),
    dpkg_list("gcc-12", "usr/bin/x86_64-linux-gnu-gcc-12"),
    file("usr/bin/python3.11", "PY"),
    symlink("usr/bin/python3", "python3.11"),
    file("usr/bin/x86_64-linux-gnu-gcc-12", "GCC" * 100),
    file("usr/lib/python3.11/os.py", "import sys"),
    file("usr/lib/python3.11/json/__init__.py", ""),
    file("usr/local/lib/python3.11/dist-packages/pkg/__init__.py", "x = 1"),
    file("usr/local/lib/python3.11/dist-packages/pkg/mod.py", "y = 2"),
    *(file(f"usr/local/lib/python3.11/dist-packages/pkg/m{i}.py", "") for i in range(4)),
    file("usr/local/lib/python3.11/dist-packages/pkg/__pycache__/mod.cpython-311.pyc", "PYC" * 50),
    file("usr/local/lib/python3.11/dist-packages/pkg/__pycache__/__init__.cpython-311.pyc", "PYC"),
    file("usr/local/lib/python3.11/dist-packages/pkg-1.0.dist-info/RECORD", "pkg/__init__.py,,\n"),
    file("app/app/__init__.py", ""),
    file("app/app/main.py", "import pkg"),
    file("app/app/.env", "SECRET=1"),
]
PY_INFO = {"usr/bin/python3.11": elf("libm.so.6", "libc.so.6")}


def test_python_plan_packages_copies_and_prune_stage():
    analysis, s = suggestion_of([BASE, PY_LAYER], PY_INFO, Cmd=["python3", "/app/app/main.py"], User="1000")
    assert s.base.name == "debian:test" and s.base.how == "engine" and s.base.manager == "apt"
    assert s.packages == [
        "libpython3.11-stdlib",
        "python3.11-minimal",
    ]  # libc6 is in the base, gcc not needed
    copies = {(c.stage, c.src) for c in s.copies}
    assert copies == {
        ("build", b"app/app/__init__.py"),  # split around app/app/.env: a possible secret does not ship
        ("build", b"app/app/main.py"),
        (PRUNE, b"usr/local/lib/python3.11/dist-packages"),  # too many pieces: pruned instead
    }
    assert s.prune == [b"usr/local/lib/python3.11/dist-packages/pkg/__pycache__"]
    assert s.provides(b"usr/lib/x86_64-linux-gnu/libc.so.6") == "base"
    assert s.provides(b"usr/bin/python3.11") == "package python3.11-minimal"
    text = s.dockerfile
    check_safe(text)
    assert "FROM naive:1 AS build\n" in text
    assert f"FROM build AS {PRUNE}\n" in text
    assert 'RUN ["rm", "-rf", "--", "/usr/local/lib/python3.11/dist-packages/pkg/__pycache__"]' in text
    assert "FROM debian:test\n" in text
    assert "libpython3.11-stdlib python3.11-minimal" in text and "apt-get clean" in text
    assert 'COPY --from=build ["/app/app/main.py", "/app/app/main.py"]' in text
    assert f'COPY --from={PRUNE} ["/usr/local/lib/python3.11/dist-packages", ' in text
    assert 'CMD ["python3", "/app/app/main.py"]' in text and "USER 1000\n" in text
    assert 0 < s.estimated_bytes < analysis.summary.image_bytes


def test_split_copies_without_rm_and_whole_folder_when_too_many():
    base = [entry for entry in BASE if entry.name != b"bin/rm"]
    _, s = suggestion_of([base, PY_LAYER], PY_INFO, Cmd=["python3", "/app/app/main.py"])
    assert not s.prune
    srcs = {c.src for c in s.copies}
    assert b"usr/local/lib/python3.11/dist-packages/pkg-1.0.dist-info" in srcs
    assert b"usr/local/lib/python3.11/dist-packages/pkg/m3.py" in srcs
    many = [file(f"app/app/m{i}.py", "") for i in range(60)] + [file("app/app/.env", "S=1")]
    layer = [e for e in PY_LAYER if e.name != b"app/app/.env"] + many
    _, s = suggestion_of([base, layer], PY_INFO, Cmd=["python3", "/app/app/main.py"])
    assert any(c.src == b"app/app" for c in s.copies)
    assert any("copied whole" in note for note in s.notes)


def test_static_program_on_scratch_copies_at_the_path_it_runs_from():
    layers = [
        [file("etc/ssl/certs/ca-certificates.crt", "CA"), directory("usr/local/bin")],
        [file("opt/srv/server", "S"), symlink("usr/local/bin/server", "/opt/srv/server")],
    ]
    _, s = suggestion_of(layers, {"opt/srv/server": STATIC}, Cmd=["server"])
    assert s.base.name == "scratch" and s.base.how == "static"
    assert {(c.src, c.dest) for c in s.copies} == {
        (b"usr/local/bin/server", b"usr/local/bin/server"),
        (b"etc/ssl/certs/ca-certificates.crt", b"etc/ssl/certs/ca-certificates.crt"),
    }
    assert "FROM scratch\n" in s.dockerfile and not s.packages


def test_links_not_owned_by_packages_are_made_with_ln():
    layers = [BASE, [file("opt/tool/bin/tool", "T"), symlink("usr/local/bin/tool", "/opt/tool/bin/tool")]]
    _, s = suggestion_of(layers, {"opt/tool/bin/tool": elf("libc.so.6")}, Cmd=["tool"])
    assert s.base.name == "debian:test"
    assert s.links == [(b"usr/local/bin/tool", b"/opt/tool/bin/tool")]
    assert '"/opt/tool/bin/tool", "/usr/local/bin/tool"]' in s.dockerfile
    check_safe(s.dockerfile)


def test_untrusted_names_and_config_cannot_break_the_dockerfile():
    hostile = [
        file("app/app/main.py", ""),
        file("app/app/__init__.py", ""),
        file("app/app/evil\nRUN rm -rf /.py", "x"),
        file("app/app/star*[x].py", "x"),
        file("app/app/\x1b[31mred.py", "x"),
        file("app/app/.env", "S=1"),  # forces the folder to be split or pruned
    ]
    layer = [e for e in PY_LAYER if not e.name.startswith(b"app/")] + hostile
    base = [entry for entry in BASE if entry.name != b"bin/rm"]
    argv = ["python3", "/app/app/main.py", "\u202e\x1b]0;pwned\x07"]
    env = ["PATH=/usr/bin:/bin", "EVIL=a\nRUN curl x", 'QUOTE=a"b$HOME\\c', "BIDI=\u202e"]
    _, s = suggestion_of([base, layer], PY_INFO, Cmd=argv, Env=env, WorkingDir="/app/$(x)", User="a b")
    text = s.dockerfile
    check_safe(text)
    cmd = next(line for line in text.splitlines() if line.startswith("CMD "))
    assert json.loads(cmd[4:]) == argv  # exact, through JSON escapes
    assert 'ENV QUOTE="a\\"b\\$HOME\\\\c"' in text
    assert "EVIL" not in text.split("# Runtime")[1].replace("ENV EVIL", "") or "ENV EVIL" not in text
    assert "ENV EVIL" not in text and "ENV BIDI" not in text and "WORKDIR" not in text and "USER" not in text
    assert any("EVIL" in note for note in s.notes)
    assert any(c.src == b"app/app" for c in s.copies)  # unsafe names: not split, copied with their folder


def test_dockerfile_builder_stages_keep_the_users_text():
    text = 'ARG BASE=debian:test\n# build it\nFROM ${BASE}\nRUN make \\\n  all\nCMD ["/app"]\n'
    layers = [BASE, [file("app", "A")]]
    _, s = suggestion_of(layers, {"app": elf("libc.so.6")}, dockerfile=text, Cmd=["/app"])
    assert s.build_stage == "build" and s.base.name == "debian:test"
    assert "ARG BASE=debian:test\n# build it\nFROM ${BASE} AS build\nRUN make \\\n  all\n" in s.dockerfile
    named = 'FROM debian:test AS build\nRUN true\nFROM build AS app\nCMD ["/app"]\n'
    _, s = suggestion_of(layers, {"app": elf("libc.so.6")}, dockerfile=named, Cmd=["/app"])
    assert s.build_stage == "app"
    clash = "FROM debian:test AS build\nFROM build\n"
    _, s = suggestion_of(layers, {"app": elf("libc.so.6")}, dockerfile=clash, Cmd=["/app"])
    assert s.build_stage == "slimscope-build" and "FROM build AS slimscope-build\n" in s.dockerfile


def test_json_document_carries_the_suggestion_and_validates():
    analysis, s = suggestion_of([BASE, PY_LAYER], PY_INFO, Cmd=["python3", "/app/app/main.py"])
    doc = json.loads(json.dumps(document(analysis)))
    jsonschema.validate(doc, schema())
    suggestion = doc["suggestion"]
    assert suggestion["base"] == "debian:test" and suggestion["dockerfile"] == s.dockerfile
    assert {"from": "build", "src": "/app/app/__init__.py"}.items() <= suggestion["copies"][0].items()
    assert suggestion["packages"] == s.packages and suggestion["estimated_bytes"] == s.estimated_bytes


# -- the whole pipeline on real archives -------------------------------------------------------------------
def test_dynamic_binary_without_a_known_base_ships_its_loader_and_libraries(tmp_path, elf_files):  # noqa: F811 - the fixture
    path = tmp_path / "xz.tar"
    synth.write_archive(path, xz_image(elf_files), "docker-oci")
    analysis, s = make_suggestion(str(path), local_images=[])
    assert s.base.name == "scratch" and s.base.how == "none"
    srcs = {c.src: c.dest for c in s.copies}
    assert srcs[b"lib64/ld-linux-x86-64.so.2"] == b"lib64/ld-linux-x86-64.so.2"  # where the kernel looks
    assert b"lib/x86_64-linux-gnu/liblzma.so.5" in srcs and b"lib/x86_64-linux-gnu/libc.so.6" in srcs
    for lib_ in s.closure.libraries:
        assert s.provides(lib_.at) == "copy", lib_
    # With the first layer as the base, only what the second layer added is copied.
    analysis, s = make_suggestion(str(path), local_images=[("base:1", [analysis.image.layers[0].diff_id])])
    assert s.base.name == "base:1" and s.base.manager is None
    assert {c.src for c in s.copies} == {b"usr/bin/xz", b"usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1"}
    assert s.links == [(b"usr/lib/x86_64-linux-gnu/liblzma.so.5", b"liblzma.so.5.4.1")]


def test_cli_prints_writes_and_validates(tmp_path, capsys, elf_files):  # noqa: F811 - the fixture
    path = tmp_path / "xz.tar"
    synth.write_archive(path, xz_image(elf_files), "oci-archive")
    out, doc = tmp_path / "Dockerfile", tmp_path / "doc.json"
    assert (
        main(["suggest", f"oci-archive:{path}", "--write", str(out), "--json", str(doc), "--no-progress"])
        == 0
    )
    captured = capsys.readouterr()
    assert "Suggested runtime" in captured.out and out.read_text().startswith("# Generated by slimscope")
    jsonschema.validate(json.loads(doc.read_text()), schema())
    assert main(["suggest", f"oci-archive:{path}", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert captured.out == out.read_text() and "Suggested runtime" in captured.err
    assert main(["suggest", str(path), "--smoke", "true"]) == 2
    assert main(["suggest", str(tmp_path / "missing.tar")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["docker-legacy", "oci-dir"])
def test_same_suggestion_from_every_source_format(tmp_path, elf_files, fmt):  # noqa: F811 - the fixture
    reference = tmp_path / "ref.tar"
    synth.write_archive(reference, xz_image(elf_files), "docker-oci")
    other = synth.write_archive(tmp_path / "other", xz_image(elf_files), fmt)
    _, a = make_suggestion(str(reference), local_images=[])
    _, b = make_suggestion(str(other.path), local_images=[])
    assert [(c.src, c.bytes) for c in a.copies] == [(c.src, c.bytes) for c in b.copies]


def test_parser_directives_stay_on_top_and_the_escape_character_is_used():
    text = "# escape=`\n# syntax=docker/dockerfile:1\nFROM debian:test\nRUN true\n"
    _, s = suggestion_of([BASE, PY_LAYER], PY_INFO, dockerfile=text, Cmd=["python3", "/app/app/main.py"])
    lines = s.dockerfile.splitlines()
    assert lines[:2] == ["# escape=`", "# syntax=docker/dockerfile:1"]
    assert "RUN apt-get update `" in lines and "RUN apt-get update \\" not in lines
    assert "FROM debian:test AS build" in lines


def test_secrets_in_copied_folders_are_left_out_with_a_note():
    _, s = suggestion_of([BASE, PY_LAYER], PY_INFO, Cmd=["python3", "/app/app/main.py"])
    assert any("/app/app/.env is left out" in note for note in s.notes)


def test_a_program_whose_name_copy_would_read_as_a_pattern_is_copied_with_its_folder():
    layers = [[file("srv/ser*ver", "S"), file("srv/data", "D")]]
    _, s = suggestion_of(layers, {"srv/ser*ver": STATIC}, Cmd=["/srv/ser*ver"])
    assert [(c.src, c.dest, c.bytes) for c in s.copies] == [(b"srv", b"srv", 2)]
    assert any("cannot be named in COPY" in note for note in s.notes)
    check_safe(s.dockerfile)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("2026/12/04 19:22:06 serving on :8080\n", "2026/12/04 19:22:36 serving on :8080\n"),
        ("2026-12-04T19:22:06.123456Z INFO ready\n", "2026-12-04T19:23:01.9Z INFO ready\n"),
        ("[19:22:06,123] started in 0.4 s\n", "[19:22:41,007] started in 0.4 s\n"),
        ("built 2026-12-04\n", "built 2026-12-05\n"),
    ],
)
def test_verify_compares_output_with_dates_and_times_masked(one: str, other: str) -> None:
    from slimscope.commands.suggest import mask_times

    assert one != other and mask_times(one) == mask_times(other)
    assert "<time>" in mask_times(one)


def test_other_differences_in_output_still_count() -> None:
    from slimscope.commands.suggest import mask_times

    one, other = "2026/12/04 19:22:06 serving on :8080", "2026/12/04 19:22:06 serving on :9090"
    assert mask_times(one) != mask_times(other)
    assert mask_times("took 12 ms") == "took 12 ms" and mask_times("version 1.2.3") == "version 1.2.3"
