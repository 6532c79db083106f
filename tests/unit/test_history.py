"""Tests for slimscope.image.history: created_by forms of each builder, and history-to-layer mapping."""

from __future__ import annotations

import time

import pytest

from slimscope.image.history import HistoryEntry, map_history, parse_created_by

CLASSIC_FORMS = [
    ('/bin/sh -c #(nop)  CMD ["sh"]', ("CMD", '["sh"]')),
    ('/bin/sh -c #(nop)  CMD ["nginx" "-g" "daemon off;"]', ("CMD", '["nginx" "-g" "daemon off;"]')),
    (
        "/bin/sh -c #(nop) ADD file:3b8a8e2e0bbd8e0e1b2ae6a0b8ac9e7f1d1e in / ",
        ("ADD", "file:3b8a8e2e0bbd8e0e1b2ae6a0b8ac9e7f1d1e in /"),
    ),
    ("/bin/sh -c #(nop) COPY dir:abc in /app ", ("COPY", "dir:abc in /app")),
    ("/bin/sh -c #(nop) COPY multi:9f2 in /etc/ ", ("COPY", "multi:9f2 in /etc/")),
    ("/bin/sh -c #(nop) WORKDIR /app", ("WORKDIR", "/app")),
    (
        "/bin/sh -c #(nop)  ENV PATH=/usr/local/bin:/usr/bin LANG=C.UTF-8",
        ("ENV", "PATH=/usr/local/bin:/usr/bin LANG=C.UTF-8"),
    ),
    ("/bin/sh -c #(nop)  ARG VERSION=1.2", ("ARG", "VERSION=1.2")),
    ('/bin/sh -c #(nop)  LABEL maintainer=a@b.c org.x="y z"', ("LABEL", 'maintainer=a@b.c org.x="y z"')),
    ("/bin/sh -c #(nop)  EXPOSE map[8080/tcp:{}]", ("EXPOSE", "8080/tcp")),
    ("/bin/sh -c #(nop)  EXPOSE 80/tcp 443/tcp", ("EXPOSE", "80/tcp 443/tcp")),
    ("/bin/sh -c #(nop)  USER app", ("USER", "app")),
    ('/bin/sh -c #(nop)  ENTRYPOINT ["docker-entrypoint.sh"]', ("ENTRYPOINT", '["docker-entrypoint.sh"]')),
    (
        '/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "curl -f http://x/"] "30s" "3s" "0s" \'\\x03\'}',
        ("HEALTHCHECK", '&{["CMD-SHELL" "curl -f http://x/"] "30s" "3s" "0s" \'\\x03\'}'),
    ),
    ("/bin/sh -c #(nop)  SHELL [/bin/bash -o pipefail -c]", ("SHELL", "[/bin/bash -o pipefail -c]")),
    ("/bin/sh -c #(nop)  STOPSIGNAL SIGQUIT", ("STOPSIGNAL", "SIGQUIT")),
    ("/bin/sh -c #(nop)  VOLUME [/var/lib/data]", ("VOLUME", "[/var/lib/data]")),
    ("/bin/sh -c #(nop)  ONBUILD COPY . /app", ("ONBUILD", "COPY . /app")),
    (
        "/bin/sh -c #(nop)  MAINTAINER Jane Doe <jane@example.com>",
        ("MAINTAINER", "Jane Doe <jane@example.com>"),
    ),
    # RUN: no #(nop), just the shell wrapper; build args come first as |N K=V ... and are dropped.
    (
        "/bin/sh -c apt-get update && apt-get install -y curl",
        ("RUN", "apt-get update && apt-get install -y curl"),
    ),
    ("|2 A=1 B=2 /bin/sh -c make", ("RUN", "make")),
    ("|1 GREETING=hello world /bin/sh -c echo $GREETING", ("RUN", "echo $GREETING")),  # value with a space
    ("|1 X=1 echo hi", ("RUN", "echo hi")),  # exec form: no shell wrapper
    (
        "/bin/sh -c set -eux; \\\n\tmake; \\\n\tmake install",
        ("RUN", "set -eux; \\\n\tmake; \\\n\tmake install"),
    ),
    # A SHELL instruction changes the wrapper of later steps.
    ("/bin/bash -o pipefail -c curl -fsSL https://x | sh", ("RUN", "curl -fsSL https://x | sh")),
    ("/bin/bash -o pipefail -c #(nop)  ENV X=1", ("ENV", "X=1")),
    ("/bin/sh -ec make -c x", ("RUN", "make -c x")),
    # Windows.
    ('cmd /S /C #(nop)  CMD ["cmd"]', ("CMD", '["cmd"]')),
    ("cmd /S /C powershell -Command Install-Thing", ("RUN", "powershell -Command Install-Thing")),
    ("cmd /S /C #(nop) COPY file:aa in C:\\app ", ("COPY", "file:aa in C:\\app")),
    ("powershell -Command $ErrorActionPreference = 'Stop'; #(nop)  ENV X=1", ("ENV", "X=1")),
    # buildah (one space after #(nop), as older Docker).
    ("/bin/sh -c #(nop) ENV LANG=C.UTF-8", ("ENV", "LANG=C.UTF-8")),
    ("/bin/sh -c #(nop) LABEL io.buildah.version=1.33.0", ("LABEL", "io.buildah.version=1.33.0")),
    # Odd but classic-shaped.
    ("/bin/sh -c #(nop) ", ("", "")),
    ("/bin/sh -c #(nop) FROBNICATE x", ("", "FROBNICATE x")),
    ('/bin/sh -c echo "#(nop) COPY x"', ("RUN", 'echo "#(nop) COPY x"')),
]


@pytest.mark.parametrize(("created_by", "expected"), CLASSIC_FORMS)
def test_classic_forms(created_by: str, expected: tuple[str, str]) -> None:
    assert parse_created_by(created_by) == (*expected, "classic")


BUILDKIT_FORMS = [
    ("RUN /bin/sh -c apt-get update # buildkit", ("RUN", "apt-get update")),
    ("RUN |1 X=1 /bin/sh -c echo $X # buildkit", ("RUN", "echo $X")),
    ("RUN |2 A=1 B=two words /bin/sh -c make # buildkit", ("RUN", "make")),
    # Exec form: BuildKit writes the words joined by spaces; kaniko keeps the JSON as written.
    ("RUN /bin/busybox --install -s /bin # buildkit", ("RUN", "/bin/busybox --install -s /bin")),
    (
        'RUN ["/bin/busybox","--install","-s","/bin"] # buildkit',
        ("RUN", '["/bin/busybox","--install","-s","/bin"]'),
    ),
    ('RUN ["/bin/busybox","--install","-s","/bin"]', ("RUN", '["/bin/busybox","--install","-s","/bin"]')),
    ("RUN |1 X=1 /bin/busybox --install # buildkit", ("RUN", "/bin/busybox --install")),
    ("RUN /bin/bash -o pipefail -c curl x | sh # buildkit", ("RUN", "curl x | sh")),
    ("RUN cmd /S /C echo hi # buildkit", ("RUN", "echo hi")),
    ("RUN /bin/sh -c cat > /x <<EOF\nhello\nEOF\n # buildkit", ("RUN", "cat > /x <<EOF\nhello\nEOF")),
    ("RUN apt-get update", ("RUN", "apt-get update")),  # kaniko
    ("COPY . /app # buildkit", ("COPY", ". /app")),
    ("COPY --from=builder /out /usr/local/bin/ # buildkit", ("COPY", "--from=builder /out /usr/local/bin/")),
    (
        "COPY --chown=app:app --chmod=755 run.sh /app/ # buildkit",
        ("COPY", "--chown=app:app --chmod=755 run.sh /app/"),
    ),
    ("ADD https://x/y /z # buildkit", ("ADD", "https://x/y /z")),
    ("WORKDIR /app", ("WORKDIR", "/app")),
    ("ENV A=b C=d", ("ENV", "A=b C=d")),
    ("ARG X=1", ("ARG", "X=1")),
    ("ARG TARGETARCH", ("ARG", "TARGETARCH")),
    ("LABEL a=b", ("LABEL", "a=b")),
    ("EXPOSE map[8080/tcp:{}]", ("EXPOSE", "8080/tcp")),
    ("EXPOSE map[443/tcp:{} 8080/tcp:{}]", ("EXPOSE", "443/tcp 8080/tcp")),
    ("EXPOSE [8080/tcp 53/udp]", ("EXPOSE", "8080/tcp 53/udp")),
    ("EXPOSE 8080/tcp", ("EXPOSE", "8080/tcp")),
    ("USER app", ("USER", "app")),
    ('ENTRYPOINT ["x"]', ("ENTRYPOINT", '["x"]')),
    ('CMD ["python" "app.py"]', ("CMD", '["python" "app.py"]')),
    ('CMD ["python","app.py"]', ("CMD", '["python","app.py"]')),
    ('CMD ["/bin/sh" "-c" "python app.py"]', ("CMD", '["/bin/sh" "-c" "python app.py"]')),
    (
        "HEALTHCHECK {Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:3s Retries:3}",
        ("HEALTHCHECK", "{Test:[CMD-SHELL curl -f http://localhost/] Interval:30s Timeout:3s Retries:3}"),
    ),
    ("SHELL [/bin/bash -o pipefail -c]", ("SHELL", "[/bin/bash -o pipefail -c]")),
    ("STOPSIGNAL SIGTERM", ("STOPSIGNAL", "SIGTERM")),
    ("VOLUME [/data]", ("VOLUME", "[/data]")),
    ("ONBUILD RUN echo hi", ("ONBUILD", "RUN echo hi")),
    ("MAINTAINER Jane <j@x>", ("MAINTAINER", "Jane <j@x>")),
    ("  USER app  ", ("USER", "app")),
    ("RUN", ("RUN", "")),
]


@pytest.mark.parametrize(("created_by", "expected"), BUILDKIT_FORMS)
def test_buildkit_forms(created_by: str, expected: tuple[str, str]) -> None:
    assert parse_created_by(created_by) == (*expected, "buildkit")


@pytest.mark.parametrize(
    "created_by",
    [
        "# debian.sh --arch 'amd64' out/ 'bookworm' '@1700000000'",
        "bazel build //app:image",
        "jib-maven-plugin:3.4.0",
        "ko",
        "bash",
        "run apt-get update",  # lower-case keywords are not taken as instructions
        "foo # buildkit",
        "ADD-ON x",
        "#(nop) x",
    ],
)
def test_unknown_forms(created_by: str) -> None:
    assert parse_created_by(created_by) == ("", created_by.strip(), "unknown")


@pytest.mark.parametrize("created_by", ["", "   ", "\n\t", None, 42, ["RUN x"]])
def test_empty_or_junk_created_by(created_by: object) -> None:
    assert parse_created_by(created_by) == ("", "", "unknown")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "created_by",
    [
        "|1 " + "sh -a " * 20000,
        "sh" + " -a x" * 20000,
        "|9 " + "sh -o x " * 20000,
        "|3 " + "powershell -a b " * 20000,
        "RUN " + "x" * 1_000_000,
        "|1 " + ("/a" * 50 + " ") * 5000,
        "|99999999 x",
        "/bin/sh -c " + "#(nop)" * 20000,
    ],
)
def test_hostile_lines_stay_fast(created_by: str) -> None:
    start = time.perf_counter()
    parse_created_by(created_by)
    assert time.perf_counter() - start < 2.0


def _entry(created_by: str, empty: bool = False) -> dict[str, object]:
    item: dict[str, object] = {"created": "2024-01-01T00:00:00Z", "created_by": created_by}
    if empty:
        item["empty_layer"] = True
    return item


INTERLEAVED = [
    _entry("/bin/sh -c #(nop) ADD file:aa in / "),
    _entry('/bin/sh -c #(nop)  CMD ["bash"]', empty=True),
    _entry("ENV A=b", empty=True),
    _entry("RUN /bin/sh -c make # buildkit"),
    _entry("WORKDIR /app"),
    _entry("USER app", empty=True),
    _entry("COPY . /app # buildkit"),
    _entry('CMD ["./app"]', empty=True),
]


def test_map_history_interleaved_empty_layers() -> None:
    entries, layer_to_history, problems = map_history(INTERLEAVED, 4)
    assert problems == []
    assert layer_to_history == [0, 3, 4, 6]
    assert [e.layer_index for e in entries] == [0, None, None, 1, 2, None, 3, None]
    assert [e.empty_layer for e in entries] == [False, True, True, False, False, True, False, True]
    assert [e.instruction for e in entries] == ["ADD", "CMD", "ENV", "RUN", "WORKDIR", "USER", "COPY", "CMD"]
    assert entries[3] == HistoryEntry(
        created_by="RUN /bin/sh -c make # buildkit",
        created="2024-01-01T00:00:00Z",
        author=None,
        comment=None,
        empty_layer=False,
        layer_index=1,
        instruction="RUN",
        arguments="make",
        builder="buildkit",
    )


def test_map_history_keeps_author_and_comment() -> None:
    history = [{"created_by": "COPY x / # buildkit", "author": "me", "comment": "buildkit.dockerfile.v0"}]
    entries, layer_to_history, problems = map_history(history, 1)
    assert (entries[0].author, entries[0].comment, entries[0].created) == (
        "me",
        "buildkit.dockerfile.v0",
        None,
    )
    assert layer_to_history == [0]
    assert problems == []


def test_map_history_too_short() -> None:
    entries, layer_to_history, problems = map_history(INTERLEAVED, 6)
    assert layer_to_history == [0, 3, 4, 6, None, None]
    assert [e.layer_index for e in entries if not e.empty_layer] == [0, 1, 2, 3]
    assert problems == ["history describes 4 layers but the image has 6"]


def test_map_history_too_long() -> None:
    entries, layer_to_history, problems = map_history(INTERLEAVED, 3)
    assert layer_to_history == [0, 3, 4]
    assert [e.layer_index for e in entries] == [0, None, None, 1, 2, None, None, None]
    assert len(entries) == len(INTERLEAVED)
    assert problems == ["history describes 4 layers but the image has 3"]


def test_map_history_empty_history() -> None:
    entries, layer_to_history, problems = map_history([], 2)
    assert entries == []
    assert layer_to_history == [None, None]
    assert problems == ["history describes 0 layers but the image has 2"]
    assert map_history([], 0) == ([], [], [])
    assert map_history([_entry("COPY a / # buildkit")], 0)[2] == [
        "history describes 1 layer but the image has 0"
    ]


def test_map_history_junk_values() -> None:
    history = [
        "not an object",  # counts as an entry that made a layer
        {"created_by": 7, "empty_layer": "true", "created": 1700000000, "author": ["x"], "comment": {}},
        {"empty_layer": True},  # no created_by at all
        {"created_by": None, "empty_layer": None},
        None,
        {"created_by": "RUN /bin/sh -c x # buildkit", "empty_layer": False, "unexpected": object()},
    ]
    entries, layer_to_history, problems = map_history(history, 5)  # type: ignore[arg-type]
    assert [e.empty_layer for e in entries] == [False, False, True, False, False, False]
    assert [e.layer_index for e in entries] == [0, 1, None, 2, 3, 4]
    assert layer_to_history == [0, 1, 3, 4, 5]
    assert entries[0] == HistoryEntry("", None, None, None, False, 0, "", "", "unknown")
    assert entries[1] == HistoryEntry("", None, None, None, False, 1, "", "", "unknown")
    assert entries[5].instruction == "RUN"
    assert problems == [
        "history[0] is a str, not an object",
        "history[1].empty_layer is not a boolean",
        "history[1].created_by is not a string",
        "history[1].created is not a string",
        "history[1].author is not a string",
        "history[1].comment is not a string",
        "history[3].empty_layer is not a boolean",
        "history[4] is a NoneType, not an object",
    ]


@pytest.mark.parametrize("history", [None, {"created_by": "x"}, "RUN x", 5])
def test_map_history_history_not_a_list(history: object) -> None:
    entries, layer_to_history, problems = map_history(history, 2)  # type: ignore[arg-type]
    assert entries == []
    assert layer_to_history == [None, None]
    assert problems[-1] == "history describes 0 layers but the image has 2"
    if history is not None:
        assert problems[0].startswith("history is a ")


@pytest.mark.parametrize("layer_count", [-1, "3", None, True, 2.0])
def test_map_history_bad_layer_count(layer_count: object) -> None:
    entries, layer_to_history, problems = map_history([_entry("COPY a /")], layer_count)  # type: ignore[arg-type]
    assert layer_to_history == []
    assert entries[0].layer_index is None
    assert problems[0].startswith("layer count ")
    assert problems[1] == "history describes 1 layer but the image has 0"


def test_map_history_caps_problem_list() -> None:
    history = [{"created_by": i} for i in range(100)]
    _, _, problems = map_history(history, 100)  # type: ignore[arg-type]
    assert len(problems) == 21
    assert problems[-1] == "... and 80 more history problems"
