"""Tests for slimscope.analysis.dockerfile: parsing stages, and aligning instructions with image history.

The histories are written the way each builder writes them; the ONBUILD/SHELL ones were taken from real
builds (Docker 20.10, classic builder and BuildKit) of the Dockerfile in `ONBUILD_DOCKERFILE`.
"""

from __future__ import annotations

import pytest

from slimscope.analysis.dockerfile import (
    Alignment,
    Heredoc,
    Instruction,
    align,
    parse_dockerfile,
    read_dockerfile,
    stage_copies,
)
from slimscope.errors import SlimscopeError
from slimscope.image.history import HistoryEntry, map_history

LAYER, EMPTY = False, True
# Content digests as the classic builder writes them in COPY/ADD lines.
SHA1 = "5a8c0e4b54f0bd0e7a5f3a5b0d2e1ad59e9f1b0bb2e6a2d4b4c1d0b5e7d88f1c"
SHA2 = "0f4a9c3e8d2b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f"
SHA3 = "9a1b2c3d4e5f60718293a4b5c6d7e8f9091a2b3c4d5e6f708192a3b4c5d6e7f8"
SHA4 = "37a76ec18f9887751cd8473744917d08b7431fc4085097bb6a09d81b41775473"
SHA5 = "1f2e3d4c5b6a79880f1e2d3c4b5a69788f9e0d1c2b3a4f5e6d7c8b9a0f1e2d3c"
SHA6 = "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233"
SHA7 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SHA8 = "7027c77992f5b5a06465828d75ae4ff9adcec5f94bc05d3f683eb205e0ec1ac0"
SHA9 = "d43244f0b5d23b2de792b51350187a04fed5a9728be91aaf5b22ce5d11f7d9ba"
SHA10 = "ba316c36b69c7c28f28419293fd9abddc907a01ba5f320d5fd1566b0e7074303"
SHA11 = "7a379d0ef3d363574f9a38cf03a78aa104889c30582434cdb486f5c62436edb0"
SHA12 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"


def history(*steps: tuple[str, bool]) -> list[HistoryEntry]:
    """History entries from (created_by, empty_layer) pairs, layers numbered as in a real image."""
    raw = [
        {"created_by": created_by, "empty_layer": True} if empty else {"created_by": created_by}
        for created_by, empty in steps
    ]
    entries, _, problems = map_history(raw, sum(1 for _, empty in steps if not empty))
    assert problems == []
    return entries


def summary(alignment: Alignment) -> list[tuple[int, str | None, int, bool] | None]:
    """Per history entry: (stage, stage name, Dockerfile line, base) or None."""
    return [None if a is None else (a.stage, a.stage_name, a.line, a.base) for a in alignment.history]


def layer_lines(alignment: Alignment) -> dict[int, tuple[int, int, bool] | None]:
    """Per layer: (stage, Dockerfile line, base) or None."""
    return {index: None if a is None else (a.stage, a.line, a.base) for index, a in alignment.layers.items()}


# --- parsing -----------------------------------------------------------------------------------------

MULTI = """\
# syntax=docker/dockerfile:1
ARG ALPINE=3.20
ARG GO_VERSION=1.22
ARG REGISTRY
FROM ${REGISTRY:-docker.io}/library/alpine:${ALPINE} AS base
RUN apk add --no-cache ca-certificates
ENV APP=/opt/app

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS Build
WORKDIR /go/src
COPY . .
RUN CGO_ENABLED=0 go build \\
      -o /out/server \\
      ./cmd/server

FROM base AS runtime
COPY --from=build /out/server /usr/local/bin/server
COPY --from=1 /go/src/config.yaml /etc/server/
COPY --from=busybox:1.36 ["/bin/busybox", "/bin/busybox"]
COPY --chown=app:app --chmod=0644 static /srv/static
EXPOSE 8080
ENTRYPOINT ["server"]
"""


def test_stages_names_bases_and_lines() -> None:
    dockerfile = parse_dockerfile(MULTI)
    assert [(s.index, s.name, s.base, s.base_stage, s.line, s.platform) for s in dockerfile.stages] == [
        (0, "base", "docker.io/library/alpine:3.20", None, 5, None),
        (1, "Build", "golang:1.22", None, 9, "$BUILDPLATFORM"),
        (2, "runtime", "base", 0, 16, None),
    ]
    assert dockerfile.args == {"ALPINE": "3.20", "GO_VERSION": "1.22"}
    assert [(i.stage, i.line, i.end_line, i.keyword) for i in dockerfile.stages[1].instructions] == [
        (1, 10, 10, "WORKDIR"),
        (1, 11, 11, "COPY"),
        (1, 12, 14, "RUN"),
    ]
    assert [s.label for s in dockerfile.stages] == ["base", "Build", "runtime"]


def test_build_args_override_global_args_only() -> None:
    dockerfile = parse_dockerfile(MULTI, {"ALPINE": "3.19", "REGISTRY": "registry.local:5000", "OTHER": "x"})
    assert dockerfile.stages[0].base == "registry.local:5000/library/alpine:3.19"
    assert dockerfile.stages[1].base == "golang:1.22"
    assert dockerfile.args == {"ALPINE": "3.19", "GO_VERSION": "1.22", "REGISTRY": "registry.local:5000"}


def test_arg_defaults_may_use_earlier_args_and_quotes() -> None:
    text = 'ARG V=3\nARG IMAGE="python:${V}-slim"\nARG UNSET\nFROM $IMAGE\nFROM "${UNSET-busybox}" AS b\n'
    dockerfile = parse_dockerfile(text)
    assert [s.base for s in dockerfile.stages] == ["python:3-slim", "busybox"]
    assert parse_dockerfile(text, {"V": "3.12"}).stages[0].base == "python:3.12-slim"


def test_continuation_lines_are_joined_as_docker_joins_them() -> None:
    run = parse_dockerfile(MULTI).stages[1].instructions[2]
    assert run.value == "CGO_ENABLED=0 go build       -o /out/server       ./cmd/server"
    text = (
        "FROM a\nENV A=1 \\\n    B=2\n"
        "RUN apt-get update \\\n\n    # a comment\n    && apt-get install -y curl\n"
    )
    env, run = parse_dockerfile(text).stages[0].instructions
    assert (env.line, env.end_line, env.value) == (2, 3, "A=1     B=2")
    assert (run.line, run.end_line, run.value) == (4, 7, "apt-get update     && apt-get install -y curl")


def test_trailing_continuation_at_end_of_file() -> None:
    (run,) = parse_dockerfile("FROM a\nRUN echo hi \\").stages[0].instructions
    assert (run.line, run.end_line, run.value) == (2, 2, "echo hi")


def test_escape_directive_and_lower_case_keywords() -> None:
    text = "# escape=`\nfrom mcr.microsoft.com/windows/nanoserver:ltsc2022\nrun dir `\n    c:\\\ncopy a b\n"
    stage = parse_dockerfile(text).stages[0]
    assert [(i.keyword, i.line, i.end_line, i.value) for i in stage.instructions] == [
        ("RUN", 3, 4, "dir     c:\\"),
        ("COPY", 5, 5, "a b"),
    ]


def test_copy_from_stage_name_index_and_image() -> None:
    dockerfile = parse_dockerfile(MULTI)
    copies = stage_copies(dockerfile, "runtime")
    assert [(c.line, c.copy_from, c.src, c.dest) for c in copies] == [
        (17, 1, ["/out/server"], "/usr/local/bin/server"),  # "build" names stage 1 (case-insensitive)
        (18, 1, ["/go/src/config.yaml"], "/etc/server/"),
        (19, "busybox:1.36", ["/bin/busybox"], "/bin/busybox"),
    ]
    assert copies == stage_copies(dockerfile)  # the last stage by default
    assert stage_copies(dockerfile, 2) == copies
    assert stage_copies(dockerfile, "base") == []
    assert copies[0].flags == (("from", "build"),)
    assert copies[0].flag("from") == "build"
    assert copies[0].arguments == "/out/server /usr/local/bin/server"
    chown = dockerfile.stages[2].instructions[3]
    assert (chown.flags, chown.copy_from, chown.src, chown.dest) == (
        (("chown", "app:app"), ("chmod", "0644")),
        None,
        ["static"],
        "/srv/static",
    )
    assert chown.flag("link") is None


def test_copy_from_a_later_or_unknown_stage_is_an_image_name() -> None:
    text = "FROM a AS one\nCOPY --from=two /x /x\nCOPY --from=5 /y /y\nFROM b AS two\n"
    assert [c.copy_from for c in stage_copies(parse_dockerfile(text), "one")] == ["two", "5"]


def test_exec_forms() -> None:
    stage = parse_dockerfile('FROM a\nRUN ["a", "b c"]\nRUN echo [x]\nCMD ["x"]\nENV A=[1]\n').stages[0]
    assert [i.exec_form for i in stage.instructions] == [["a", "b c"], None, ["x"], None]


def test_heredocs() -> None:
    text = (
        "FROM alpine\n"
        "RUN <<EOF\n"
        "set -e\n"
        "FROM not-an-instruction\n"
        "EOF\n"
        "COPY <<-EOT /etc/app.conf\n"
        "\tkey=value\n"
        "\tEOT\n"
        'RUN cat <<A <<"B" > /f\n'
        "a\n"
        "A\n"
        "b\n"
        "B\n"
        "RUN echo $((1 << 2)) <<<here\n"
    )
    dockerfile = parse_dockerfile(text)
    assert len(dockerfile.stages) == 1
    assert [
        (i.keyword, i.line, i.end_line, i.value, i.heredocs) for i in dockerfile.stages[0].instructions
    ] == [
        ("RUN", 2, 5, "<<EOF", (Heredoc("EOF", "set -e\nFROM not-an-instruction\n"),)),
        ("COPY", 6, 8, "<<-EOT /etc/app.conf", (Heredoc("EOT", "key=value\n"),)),
        ("RUN", 9, 13, 'cat <<A <<"B" > /f', (Heredoc("A", "a\n"), Heredoc("B", "b\n"))),
        ("RUN", 14, 14, "echo $((1 << 2)) <<<here", ()),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile:1: no FROM instruction"),
        ("# only a comment\nARG A=1\n", "Dockerfile:2: no FROM instruction"),
        ("ARG A=1\nRUN echo hi\nFROM a\n", "Dockerfile:2: RUN before the first FROM"),
        ("FROM a\nFROBNICATE x\n", "Dockerfile:2: unknown instruction 'FROBNICATE'"),
        ("import os\nprint(os.name)\n", "Dockerfile:1: unknown instruction 'import'"),
        ('{\n  "a": 1\n}\n', "Dockerfile:1: unknown instruction '{'"),
        ("FROM a\nRUN\n", "Dockerfile:2: RUN needs arguments"),
        (
            "FROM a\n\nRUN <<EOF\necho hi\nEO\n",
            "Dockerfile:3: unterminated heredoc <<EOF (no line 'EOF' follows)",
        ),
        ("FROM a b c d\n", "Dockerfile:1: FROM 'a b c d': expected 'FROM image [AS name]'"),
        ("FROM $NOPE\n", "Dockerfile:1: FROM '$NOPE' is empty after ARG substitution"),
        ("FROM a\nRUN x\x00y\n", "Dockerfile:2: not a Dockerfile (binary data)"),
    ],
)
def test_bad_dockerfiles(text: str, message: str) -> None:
    with pytest.raises(SlimscopeError) as info:
        parse_dockerfile(text)
    assert str(info.value) == message


def test_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "Dockerfile.prod"
    path.write_text("FROM a\nWAT now\n")
    with pytest.raises(SlimscopeError) as info:
        read_dockerfile(str(path))
    assert str(info.value) == f"{path}:2: unknown instruction 'WAT'"
    path.write_bytes(b"FROM a\nRUN \xff\xfe\n")
    with pytest.raises(SlimscopeError) as info:
        read_dockerfile(str(path))
    assert str(info.value) == f"{path}:2: not a Dockerfile (not UTF-8 text)"
    with pytest.raises(SlimscopeError) as info:
        read_dockerfile(str(tmp_path / "missing"))
    assert str(info.value) == f"cannot read Dockerfile {tmp_path / 'missing'}: No such file or directory"
    with pytest.raises(SlimscopeError) as info:
        parse_dockerfile("FROM a\nRUN\n", path="ctx/Dockerfile")
    assert str(info.value) == "ctx/Dockerfile:2: RUN needs arguments"


def test_read_dockerfile_with_build_args(tmp_path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("ARG BASE=alpine\nFROM $BASE\nRUN true\n")
    assert read_dockerfile(str(path), {"BASE": "debian"}).stages[0].base == "debian"


def test_stage_lookup() -> None:
    dockerfile = parse_dockerfile(MULTI)
    assert [dockerfile.stage(ref).index for ref in ("base", "BUILD", "build", 1, "2", None)] == [
        0,
        1,
        1,
        1,
        2,
        2,
    ]
    with pytest.raises(SlimscopeError) as info:
        dockerfile.stage("test")
    assert str(info.value) == "Dockerfile: no build stage 'test' (stages: base, Build, runtime)"
    with pytest.raises(SlimscopeError):
        dockerfile.stage(3)


# --- alignment: one stage on a base image ------------------------------------------------------------

APP = """\
ARG PYTHON=3.12
FROM python:${PYTHON}-slim AS app
ARG APP_VERSION=1.0
LABEL org.opencontainers.image.title="demo app" \\
      org.opencontainers.image.version=$APP_VERSION
ENV LANG=C.UTF-8 \\
    PIP_NO_CACHE_DIR=1
WORKDIR /srv
COPY requirements.txt .
RUN pip install -r requirements.txt \\
 && rm -rf /root/.cache
COPY . /srv/app
EXPOSE 8000
USER nobody
CMD ["python", "-m", "app"]
"""

PYTHON_BASE_CLASSIC = [
    (f"/bin/sh -c #(nop) ADD file:{SHA1} in / ", LAYER),
    ('/bin/sh -c #(nop)  CMD ["bash"]', EMPTY),
    (
        "/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
        "/sbin:/bin",
        EMPTY,
    ),
    ("/bin/sh -c #(nop)  ENV LANG=C.UTF-8", EMPTY),
    (
        "/bin/sh -c set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates "
        "netbase tzdata; rm -rf /var/lib/apt/lists/*",
        LAYER,
    ),
    ("/bin/sh -c #(nop)  ENV PYTHON_VERSION=3.12.4", EMPTY),
    ('/bin/sh -c set -eux; ./configure --enable-shared; make -j "$(nproc)"; make install', LAYER),
    ('/bin/sh -c #(nop)  CMD ["python3"]', EMPTY),
]

APP_CLASSIC = [
    ("/bin/sh -c #(nop)  ARG APP_VERSION=1.0", EMPTY),
    (
        "/bin/sh -c #(nop)  LABEL org.opencontainers.image.title=demo app "
        "org.opencontainers.image.version=1.0",
        EMPTY,
    ),
    ("/bin/sh -c #(nop)  ENV LANG=C.UTF-8 PIP_NO_CACHE_DIR=1", EMPTY),
    ("/bin/sh -c #(nop) WORKDIR /srv", LAYER),
    (f"/bin/sh -c #(nop) COPY file:{SHA2} in . ", LAYER),
    ("|1 APP_VERSION=1.0 /bin/sh -c pip install -r requirements.txt  && rm -rf /root/.cache", LAYER),
    (f"/bin/sh -c #(nop) COPY dir:{SHA3} in /srv/app ", LAYER),
    ("/bin/sh -c #(nop)  EXPOSE 8000", EMPTY),
    ("/bin/sh -c #(nop)  USER nobody", EMPTY),
    ('/bin/sh -c #(nop)  CMD ["python" "-m" "app"]', EMPTY),
]

PYTHON_BASE_BUILDKIT = [
    ("# debian.sh --arch 'amd64' out/ 'bookworm' '@1720396800'", LAYER),
    ("ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", EMPTY),
    ("ENV LANG=C.UTF-8", EMPTY),
    ("RUN /bin/sh -c set -eux; apt-get update; apt-get install -y ca-certificates # buildkit", LAYER),
    ("ENV PYTHON_VERSION=3.12.4", EMPTY),
    ('RUN /bin/sh -c set -eux; ./configure; make -j "$(nproc)"; make install # buildkit', LAYER),
    (
        "RUN /bin/sh -c set -eux; for src in idle3 pydoc3 python3; do "
        "ln -svT $src /usr/local/bin/${src%3}; done # buildkit",
        LAYER,
    ),
    ('CMD ["python3"]', EMPTY),
]

APP_BUILDKIT = [
    ("ARG APP_VERSION=1.0", EMPTY),
    ("LABEL org.opencontainers.image.title=demo app org.opencontainers.image.version=1.0", EMPTY),
    ("ENV LANG=C.UTF-8 PIP_NO_CACHE_DIR=1", EMPTY),
    ("WORKDIR /srv", LAYER),
    ("COPY requirements.txt . # buildkit", LAYER),
    (
        "RUN |1 APP_VERSION=1.0 /bin/sh -c pip install -r requirements.txt  && rm -rf /root/.cache "
        "# buildkit",
        LAYER,
    ),
    ("COPY . /srv/app # buildkit", LAYER),
    ("EXPOSE map[8000/tcp:{}]", EMPTY),
    ("USER nobody", EMPTY),
    ('CMD ["python" "-m" "app"]', EMPTY),
]

BASE_OF_APP = (0, "app", 2, True)
APP_EXPECTED = [(0, "app", line, False) for line in (3, 4, 6, 8, 9, 10, 12, 13, 14, 15)]


def test_align_classic_on_a_base_image() -> None:
    entries = history(*PYTHON_BASE_CLASSIC, *APP_CLASSIC)
    alignment = align(parse_dockerfile(APP), entries)
    assert alignment.builder == "classic"
    assert alignment.target == 0
    assert summary(alignment) == [BASE_OF_APP] * 8 + APP_EXPECTED
    assert layer_lines(alignment) == {
        0: (0, 2, True),
        1: (0, 2, True),
        2: (0, 2, True),
        3: (0, 8, False),
        4: (0, 9, False),
        5: (0, 10, False),
        6: (0, 12, False),
    }
    assert alignment.unmatched == []
    base = alignment.history[0]
    assert base is not None and base.instruction is None and base.score == 0.0
    run = alignment.history[13]
    assert run is not None and run.instruction is not None
    assert (run.instruction.keyword, run.instruction.line, run.instruction.end_line, run.score) == (
        "RUN",
        10,
        11,
        1.0,
    )
    assert alignment.for_layer(5) == run
    assert alignment.for_layer(99) is None


def test_align_buildkit_on_a_base_image() -> None:
    entries = history(*PYTHON_BASE_BUILDKIT, *APP_BUILDKIT)
    alignment = align(parse_dockerfile(APP), entries)
    assert alignment.builder == "buildkit"
    assert summary(alignment) == [BASE_OF_APP] * 8 + APP_EXPECTED
    assert layer_lines(alignment) == {
        0: (0, 2, True),
        1: (0, 2, True),
        2: (0, 2, True),
        3: (0, 2, True),
        4: (0, 8, False),
        5: (0, 9, False),
        6: (0, 10, False),
        7: (0, 12, False),
    }
    assert alignment.unmatched == []
    # The LABEL's $APP_VERSION is recorded substituted (1.0): near, not equal.
    assert [a.score if a else None for a in alignment.history[8:]] == [1.0, 0.933, *[1.0] * 8]


# --- alignment: FROM an earlier stage ----------------------------------------------------------------

ALPINE_CLASSIC = [
    (f"/bin/sh -c #(nop) ADD file:{SHA4} in / ", LAYER),
    ('/bin/sh -c #(nop)  CMD ["/bin/sh"]', EMPTY),
]
RUNTIME_CLASSIC = [
    ("/bin/sh -c apk add --no-cache ca-certificates", LAYER),
    ("/bin/sh -c #(nop)  ENV APP=/opt/app", EMPTY),
    (f"/bin/sh -c #(nop) COPY file:{SHA5} in /usr/local/bin/server ", LAYER),
    (f"/bin/sh -c #(nop) COPY file:{SHA6} in /etc/server/ ", LAYER),
    (f"/bin/sh -c #(nop) COPY file:{SHA7} in /bin/busybox ", LAYER),
    (
        f"/bin/sh -c #(nop) COPY --chown=app:appdir:{SHA12} in /srv/static ",
        LAYER,
    ),
    ("/bin/sh -c #(nop)  EXPOSE 8080", EMPTY),
    ('/bin/sh -c #(nop)  ENTRYPOINT ["server"]', EMPTY),
]
ALPINE_BUILDKIT = [
    (f"/bin/sh -c #(nop) ADD file:{SHA4} in / ", LAYER),
    ('/bin/sh -c #(nop)  CMD ["/bin/sh"]', EMPTY),
]
RUNTIME_BUILDKIT = [
    ("RUN /bin/sh -c apk add --no-cache ca-certificates # buildkit", LAYER),
    ("ENV APP=/opt/app", EMPTY),
    ("COPY /out/server /usr/local/bin/server # buildkit", LAYER),
    ("COPY /go/src/config.yaml /etc/server/ # buildkit", LAYER),
    ("COPY /bin/busybox /bin/busybox # buildkit", LAYER),
    ("COPY static /srv/static # buildkit", LAYER),
    ("EXPOSE map[8080/tcp:{}]", EMPTY),
    ('ENTRYPOINT ["server"]', EMPTY),
]
RUNTIME_EXPECTED = [
    (0, "base", 5, True),
    (0, "base", 5, True),
    (0, "base", 6, False),
    (0, "base", 7, False),
    (2, "runtime", 17, False),
    (2, "runtime", 18, False),
    (2, "runtime", 19, False),
    (2, "runtime", 20, False),
    (2, "runtime", 21, False),
    (2, "runtime", 22, False),
]
RUNTIME_LAYERS = {
    0: (0, 5, True),
    1: (0, 6, False),
    2: (2, 17, False),
    3: (2, 18, False),
    4: (2, 19, False),
    5: (2, 20, False),
}


@pytest.mark.parametrize(
    ("steps", "builder"),
    [(ALPINE_CLASSIC + RUNTIME_CLASSIC, "classic"), (ALPINE_BUILDKIT + RUNTIME_BUILDKIT, "buildkit")],
)
def test_align_from_an_earlier_stage(steps: list[tuple[str, bool]], builder: str) -> None:
    alignment = align(parse_dockerfile(MULTI), history(*steps))
    assert alignment.builder == builder
    assert alignment.target == 2
    assert summary(alignment) == RUNTIME_EXPECTED
    assert layer_lines(alignment) == RUNTIME_LAYERS
    assert alignment.unmatched == []


def test_align_a_named_target_stage() -> None:
    golang = [
        ("# debian.sh --arch 'amd64' out/ 'bookworm' '@1720396800'", LAYER),
        ("RUN /bin/sh -c set -eux; apt-get update; apt-get install -y gcc git # buildkit", LAYER),
        ("ENV GOLANG_VERSION=1.22.5", EMPTY),
        ("ENV GOPATH=/go", EMPTY),
        ("WORKDIR /go", LAYER),
    ]
    build = [
        ("WORKDIR /go/src", LAYER),
        ("COPY . . # buildkit", LAYER),
        ("RUN /bin/sh -c CGO_ENABLED=0 go build       -o /out/server       ./cmd/server # buildkit", LAYER),
    ]
    dockerfile = parse_dockerfile(MULTI)
    for target in ("build", 1):
        alignment = align(dockerfile, history(*golang, *build), target=target)
        assert alignment.target == 1
        assert summary(alignment) == [(1, "Build", 9, True)] * 5 + [
            (1, "Build", n, False) for n in (10, 11, 12)
        ]
    with pytest.raises(SlimscopeError):
        align(dockerfile, history(*golang), target="nope")


# --- alignment: ONBUILD triggers and SHELL, from real builds -------------------------------------------

ONBUILD_DOCKERFILE = """\
FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ONBUILD RUN echo triggered > /trig
ONBUILD ENV TRIG=1

FROM base AS child
ARG NODEF
ARG WITHDEF=x
ARG OVER=default
MAINTAINER Jane Doe <jane@example.com>
SHELL ["/bin/sh", "-ec"]
RUN echo $NODEF $OVER > /x
ENV LEGACY some value here
WORKDIR /app
WORKDIR sub
COPY a.txt b.txt ./
COPY d /app/d2
ADD a.txt /added
COPY --chown=1:1 a.txt /chowned
USER 1000
VOLUME /data
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD echo ok
CMD echo shell form
ENTRYPOINT ["/bin/sh", "-c"]
"""

ONBUILD_CLASSIC = [
    (f"/bin/sh -c #(nop) COPY file:{SHA8} in /bin/busybox ", LAYER),
    ("/bin/busybox --install -s /bin", LAYER),
    ("/bin/sh -c #(nop)  ONBUILD RUN echo triggered > /trig", EMPTY),
    ("/bin/sh -c #(nop)  ONBUILD ENV TRIG=1", EMPTY),
    ("/bin/sh -c echo triggered > /trig", LAYER),
    ("/bin/sh -c #(nop)  ENV TRIG=1", EMPTY),
    ("/bin/sh -c #(nop)  ARG NODEF", EMPTY),
    ("/bin/sh -c #(nop)  ARG WITHDEF=x", EMPTY),
    ("/bin/sh -c #(nop)  ARG OVER=default", EMPTY),
    ("/bin/sh -c #(nop)  MAINTAINER Jane Doe <jane@example.com>", EMPTY),
    ("/bin/sh -ec #(nop)  SHELL [/bin/sh -ec]", EMPTY),
    ("|2 OVER=given WITHDEF=x /bin/sh -ec echo $NODEF $OVER > /x", LAYER),
    ("/bin/sh -ec #(nop)  ENV LEGACY=some value here", EMPTY),
    ("/bin/sh -ec #(nop) WORKDIR /app", LAYER),
    ("/bin/sh -ec #(nop) WORKDIR /app/sub", LAYER),
    (f"/bin/sh -ec #(nop) COPY multi:{SHA9} in ./ ", LAYER),
    (f"/bin/sh -ec #(nop) COPY dir:{SHA10} in /app/d2 ", LAYER),
    (f"/bin/sh -ec #(nop) ADD file:{SHA11} in /added ", LAYER),
    (f"/bin/sh -ec #(nop) COPY --chown=1:1file:{SHA11} in /chowned ", LAYER),
    ("/bin/sh -ec #(nop)  USER 1000", EMPTY),
    ("/bin/sh -ec #(nop)  VOLUME [/data]", EMPTY),
    ("/bin/sh -ec #(nop)  STOPSIGNAL SIGTERM", EMPTY),
    ('/bin/sh -ec #(nop)  HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" \'\\x00\'}', EMPTY),
    ('/bin/sh -ec #(nop)  CMD ["/bin/sh" "-ec" "echo shell form"]', EMPTY),
    ('/bin/sh -ec #(nop)  ENTRYPOINT ["/bin/sh" "-c"]', EMPTY),
]

# BuildKit records no ONBUILD lines, only the triggers.
ONBUILD_BUILDKIT = [
    ("COPY busybox /bin/busybox # buildkit", LAYER),
    ("RUN /bin/busybox --install -s /bin # buildkit", LAYER),
    ("RUN /bin/sh -c echo triggered > /trig # buildkit", LAYER),
    ("ENV TRIG=1", EMPTY),
    ("ARG NODEF", EMPTY),
    ("ARG WITHDEF=x", EMPTY),
    ("ARG OVER=default", EMPTY),
    ("MAINTAINER Jane Doe <jane@example.com>", EMPTY),
    ("SHELL [/bin/sh -ec]", EMPTY),
    ("RUN |3 NODEF= WITHDEF=x OVER=given /bin/sh -ec echo $NODEF $OVER > /x # buildkit", LAYER),
    ("ENV LEGACY=some value here", EMPTY),
    ("WORKDIR /app", LAYER),
    ("WORKDIR /app/sub", LAYER),
    ("COPY a.txt b.txt ./ # buildkit", LAYER),
    ("COPY d /app/d2 # buildkit", LAYER),
    ("ADD a.txt /added # buildkit", LAYER),
    ("COPY a.txt /chowned # buildkit", LAYER),
    ("USER 1000", EMPTY),
    ("VOLUME [/data]", EMPTY),
    ("STOPSIGNAL SIGTERM", EMPTY),
    ('HEALTHCHECK &{["CMD-SHELL" "echo ok"] "5s" "0s" "0s" \'\\x00\'}', EMPTY),
    ('CMD ["/bin/sh" "-ec" "echo shell form"]', EMPTY),
    ('ENTRYPOINT ["/bin/sh" "-c"]', EMPTY),
]

CHILD_LINES = list(range(8, 27))


def test_align_onbuild_triggers_and_shell_classic() -> None:
    alignment = align(parse_dockerfile(ONBUILD_DOCKERFILE), history(*ONBUILD_CLASSIC))
    assert alignment.builder == "classic"
    assert [(a.stage, a.line, a.trigger) if a else None for a in alignment.history] == [
        (0, 2, False),
        (0, 3, False),
        (0, 4, False),
        (0, 5, False),
        (1, 4, True),  # the trigger ran while building `child`; its line is the ONBUILD line in `base`
        (1, 5, True),
        *[(1, line, False) for line in CHILD_LINES],
    ]
    trigger = alignment.history[4]
    assert trigger is not None and trigger.instruction is not None
    assert (trigger.instruction.stage, trigger.instruction.keyword) == (0, "ONBUILD")
    assert layer_lines(alignment) == {
        0: (0, 2, False),
        1: (0, 3, False),
        2: (1, 4, False),
        3: (1, 13, False),
        4: (1, 15, False),
        5: (1, 16, False),
        6: (1, 17, False),
        7: (1, 18, False),
        8: (1, 19, False),
        9: (1, 20, False),
    }
    assert alignment.unmatched == []


def test_align_onbuild_triggers_and_shell_buildkit() -> None:
    alignment = align(parse_dockerfile(ONBUILD_DOCKERFILE), history(*ONBUILD_BUILDKIT))
    assert alignment.builder == "buildkit"
    assert [(a.stage, a.line, a.trigger) if a else None for a in alignment.history] == [
        (0, 2, False),
        (0, 3, False),
        (1, 4, True),
        (1, 5, True),
        *[(1, line, False) for line in CHILD_LINES],
    ]
    assert alignment.unmatched == []  # ONBUILD lines are not expected from BuildKit


def test_shell_form_cmd_uses_the_shell_set_before_it() -> None:
    alignment = align(parse_dockerfile(ONBUILD_DOCKERFILE), history(*ONBUILD_BUILDKIT))
    cmd = alignment.history[-2]
    assert cmd is not None and cmd.instruction is not None
    assert (cmd.instruction.keyword, cmd.score) == ("CMD", 1.0)


# --- alignment: robustness ---------------------------------------------------------------------------


def test_entries_no_instruction_explains_stay_unattributed() -> None:
    # A `docker build --label` entry at the end, a `docker commit` in the middle, the EXPOSE step missing.
    steps = [
        *PYTHON_BASE_CLASSIC,
        *APP_CLASSIC[:6],
        ("manual fix-up", LAYER),
        APP_CLASSIC[6],
        *APP_CLASSIC[8:],
        ("/bin/sh -c #(nop)  LABEL org.example.build=42", EMPTY),
    ]
    alignment = align(parse_dockerfile(APP), history(*steps))
    assert summary(alignment) == [
        *[BASE_OF_APP] * 8,
        *APP_EXPECTED[:6],
        None,
        APP_EXPECTED[6],
        *APP_EXPECTED[8:],
        None,
    ]
    assert [i.line for i in alignment.unmatched] == [13]
    assert alignment.layers[6] is None  # the docker commit layer
    assert alignment.layers[7] == alignment.history[15]


def test_from_scratch_has_no_base_entries() -> None:
    steps = [("/bin/sh -c #(nop) ADD file:abc123abc123 in / ", LAYER), ("COPY app /app # buildkit", LAYER)]
    alignment = align(parse_dockerfile("FROM scratch\nCOPY app /app\n"), history(*steps))
    assert summary(alignment) == [None, (0, None, 2, False)]


def test_only_a_from_line_makes_everything_base() -> None:
    alignment = align(parse_dockerfile("FROM python:3.12\n"), history(*PYTHON_BASE_CLASSIC))
    assert summary(alignment) == [(0, None, 1, True)] * 8
    assert alignment.unmatched == []


@pytest.mark.parametrize(
    "entries",
    [
        [],
        history(("", LAYER), ("", LAYER)),
        history(("# debian.sh bookworm", LAYER), ("garbage #(nop)", EMPTY), ("RUN", EMPTY)),
        map_history([None, 3, {"created_by": 7}, {"empty_layer": "yes"}, {"created_by": "COPY a b"}], 2)[0],
    ],
)
def test_alignment_never_raises_on_odd_history(entries: list[HistoryEntry]) -> None:
    alignment = align(parse_dockerfile(APP), entries)
    assert len(alignment.history) == len(entries)
    assert all(isinstance(i, Instruction) for i in alignment.unmatched)


def test_empty_history_leaves_every_expected_instruction_unmatched() -> None:
    alignment = align(parse_dockerfile(APP), [])
    assert alignment.history == [] and alignment.layers == {}
    assert [i.keyword for i in alignment.unmatched] == [
        "LABEL",
        "ENV",
        "WORKDIR",
        "COPY",
        "RUN",
        "COPY",
        "EXPOSE",
        "USER",
        "CMD",
    ]


def test_a_different_command_still_aligns_by_position() -> None:
    steps = [
        *PYTHON_BASE_CLASSIC,
        *APP_CLASSIC[:5],
        ("/bin/sh -c pip install -r requirements.lock", LAYER),
        *APP_CLASSIC[6:],
    ]
    alignment = align(parse_dockerfile(APP), history(*steps))
    assert summary(alignment) == [BASE_OF_APP] * 8 + APP_EXPECTED
    run = alignment.history[13]
    assert run is not None and 0 < run.score < 1


def test_long_history_is_bounded() -> None:
    # 300 instructions x 1000 entries is over the table limit: only the newest entries take part.
    steps = [(f"/bin/sh -c echo {n}", LAYER) for n in range(1000)]
    dockerfile = parse_dockerfile("FROM a\n" + "".join(f"RUN echo {n}\n" for n in range(700, 1000)))
    alignment = align(dockerfile, history(*steps))
    assert [a.line if a else None for a in alignment.history[700:]] == list(range(2, 302))
    assert all(a is not None and a.base and a.line == 1 for a in alignment.history[:700])
