"""Synthetic images for the explorer tests (deterministic, no engine): built with fixtures/synth.py."""

from __future__ import annotations

from pathlib import Path

import synth
from synth import Image, Layer, created_by, directory, file, symlink, whiteout, with_parents

from slimscope.analysis import Analysis, analyze
from slimscope.sources import load_image

DPKG_BASE = "Package: base-files\nStatus: install ok installed\nVersion: 12.4\nArchitecture: amd64\n"
DPKG_GCC = "Package: gcc-12\nStatus: install ok installed\nVersion: 12.2.0-14\nArchitecture: amd64\n"

# Hostile names, as in fixtures/images/hostile/Dockerfile (plus a few more), all below hostile/.
HOSTILE_NAMES: list[bytes] = [
    b"esc-\x1b[31mred",
    b"new\nline",
    "c1-\u009bx".encode(),
    "bidi-\u202etxt.exe".encode(),
    b"[@click=app.quit()]x",
    b"[link=http:/x]y",  # touch '[link=http://x]y': file 'x]y' in folder '[link=http:'
    b"[link=x]y",
    b"a[/]b",  # touch 'a[/]b': file ']b' in folder 'a['
    b"bad-\xff-byte",
    b"[b]bold[/b]",
    b"tab\there",
]


def explorer_image() -> Image:
    """Five layers with every change mark, findings of every category, a package and hidden bytes.

    0 ADD rootfs: etc/, usr/bin/app (200 B), docs (2,000 B), dpkg status, tmp-big (3,000 B), var/tmp/build
    1 RUN apt-get install gcc-12: usr/bin/gcc-12 (1,000 B), usr/lib/gcc/.../cc1 (4,000 B), dpkg database
    2 COPY . /app: app/main.py (300 B), app/.env (8 B), app/tests/test_main.py (120 B)
    3 RUN pip install: root/.cache/pip/wheel.whl (500 B), flask (700 B)
    4 RUN chmod, echo, rm, echo: usr/bin/app stored again, etc/hostname modified, tmp-big and
      var/tmp/build deleted, app/VERSION added
    """
    base = Layer(
        with_parents(
            [
                file("etc/hostname", b"base\n"),
                file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
                file("usr/bin/app", b"\x7fELF" + b"a" * 196, mode=0o644),
                file("usr/share/doc/base-files/copyright", b"c" * 2000),
                file("var/lib/dpkg/status", DPKG_BASE),
                file("tmp-big", b"t" * 3000),
                file("var/tmp/build/a.o", b"o" * 600),
                file("var/tmp/build/b.o", b"o" * 400),
            ]
        ),
        created_by="ADD rootfs.tar / # buildkit",
    )
    apt = Layer(
        with_parents(
            [
                file("usr/bin/gcc-12", b"\x7fELF" + b"g" * 996, mode=0o755),
                file("usr/lib/gcc/x86_64-linux-gnu/12/cc1", b"\x7fELF" + b"1" * 3996, mode=0o755),
                file("var/lib/dpkg/status", DPKG_BASE + "\n" + DPKG_GCC),
                file(
                    "var/lib/dpkg/info/gcc-12:amd64.list",
                    "/usr/bin/gcc-12\n/usr/lib/gcc\n/usr/lib/gcc/x86_64-linux-gnu\n"
                    "/usr/lib/gcc/x86_64-linux-gnu/12\n/usr/lib/gcc/x86_64-linux-gnu/12/cc1\n",
                ),
            ]
        ),
        created_by=created_by("RUN", "apt-get install -y gcc-12"),
    )
    app = Layer(
        with_parents(
            [
                file("app/main.py", b"#" * 300),
                file("app/.env", b"TOKEN=x\n"),
                file("app/tests/test_main.py", b"t" * 120),
            ]
        ),
        created_by=created_by("COPY", ". /app"),
    )
    pip = Layer(
        with_parents(
            [
                file("root/.cache/pip/wheel.whl", b"w" * 500),
                file("usr/local/lib/python3.11/site-packages/flask/__init__.py", b"f" * 700),
            ]
        ),
        created_by=created_by("RUN", "pip install flask"),
    )
    last = Layer(
        [
            directory("app"),
            file("app/VERSION", b"1\n"),
            directory("etc"),
            file("etc/hostname", b"changed\n"),
            whiteout("tmp-big"),
            directory("usr"),
            directory("usr/bin"),
            file("usr/bin/app", b"\x7fELF" + b"a" * 196, mode=0o755),
            directory("var"),
            directory("var/tmp"),
            whiteout("var/tmp/build"),
        ],
        created_by=created_by(
            "RUN", "chmod 0755 /usr/bin/app && echo changed > /etc/hostname && rm -rf /tmp-big /var/tmp/build"
        ),
    )
    return Image([base, apt, app, pip, last], tags=["explorer:latest"])


def wide_image(children: int = 1000) -> Image:
    """One folder `many/` with `children` files of sizes 1..children bytes (file-0001 is 1 byte)."""
    entries = [directory("many")]
    entries += [file(f"many/file-{i:04d}", b"x" * i) for i in range(1, children + 1)]
    entries.append(file("top.txt", b"top\n"))
    return Image([Layer(entries, created_by=created_by("RUN", "make many"))], tags=["wide:latest"])


def hostile_image() -> Image:
    """hostile/ with names that are terminal escapes, markup, bidi and bad UTF-8; a hostile history line."""
    folders = ["hostile", "hostile/[link=http:", "hostile/a[", "hostile/[b]bold[", "hostile/[red]big["]
    entries = [directory(name) for name in folders]
    entries += [file(b"hostile/" + name, b"") for name in sorted(HOSTILE_NAMES)]
    entries.append(symlink(b"hostile/link-\x1b]0;title\x07", b"esc-\x1b[31mred"))
    entries.append(file("hostile/[red]big[/red]", b"z" * 5000))
    layer = Layer(
        entries, created_by=created_by("RUN", "touch \x1b[2J[@click=app.quit()]evil [link=http://x]y")
    )
    return Image([layer], tags=["hostile:latest"])


def analysis_of(image: Image, directory_: Path, reference: str) -> Analysis:
    """Write the image as a docker-oci archive, read it back and analyse it (reference as shown)."""
    path = directory_ / f"{image.tags[0].replace(':', '_')}.tar"
    synth.write_archive(path, image, "docker-oci")
    loaded = load_image(str(path))
    loaded.reference = reference
    return analyze(loaded)


# History lines as official images write them: every RUN starts with `set -eux;`, some hold backslashes.
SHELL_HISTORY = [
    "ADD rootfs.tar / # buildkit",
    created_by("RUN", "set -eux; apt-get update; apt-get install -y --no-install-recommends ca-certificates"),
    created_by("RUN", r"set -eux; printf 'deb http://deb.example/ bookworm main\n' > /etc/apt/sources.list"),
    created_by("RUN", "set -eux; pip install --no-cache-dir flask==3.0.0 gunicorn==22.0.0"),
]


def shell_image() -> Image:
    """Four layers with the histories above (a file or two each)."""
    files = [
        [file("etc/os-release", b"ID=debian\n"), file("usr/bin/sh", b"\x7fELF" + b"s" * 96)],
        [file("usr/bin/curl", b"\x7fELF" + b"c" * 496), file("etc/ssl/certs/ca.pem", b"p" * 300)],
        [file("etc/apt/sources.list", b"deb http://deb.example/ bookworm main\n")],
        [file("usr/local/lib/python3.11/site-packages/flask/app.py", b"f" * 800)],
    ]
    layers = [Layer(with_parents(entries), created_by=line) for entries, line in zip(files, SHELL_HISTORY)]
    return Image(layers, tags=["shell:latest"])


def search_image() -> Image:
    """srv/pkg00..pkg29, each with mod0..mod9, each with file00..file19 (6,000 files, 300 `file13`s),
    and a small etc/: a search with many matches spread over many folders."""
    entries = [file("etc/file13.conf", b"c" * 10)]
    for pkg in range(30):
        for mod in range(10):
            folder = f"srv/pkg{pkg:02d}/mod{mod}"
            entries += [file(f"{folder}/file{i:02d}", b"x" * (1000 - pkg)) for i in range(20)]
    return Image([Layer(with_parents(entries), created_by=created_by("RUN", "make srv"))], tags=["search:1"])
