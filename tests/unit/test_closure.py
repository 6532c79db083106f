"""The runtime closure and the second pass: ELF loading rules, languages, wrappers, contents read again.

Closure tests build images in memory (tar members -> LayerEntries) and answer content requests with
`describe()` of the members' bytes, or with hand-made `FileInfo`s where real ELF files would be needed
(RUNPATH, other machines, musl). Reader tests write real archives with `fixtures/synth.py` and copy real
ELF files from the host.
"""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import pytest
import synth
from synth import directory, file, symlink, with_parents

from slimscope.analysis import analyze
from slimscope.analysis.closure import runtime_closure
from slimscope.errors import SourceError
from slimscope.fs import SHIFT
from slimscope.image.inspect import (
    GO_BUILDINFO,
    ContentReader,
    ElfInfo,
    FileInfo,
    GoInfo,
    _go_buildinfo,
    _manifest,
    describe,
)
from slimscope.image.model import Image, Layer
from slimscope.image.tarstream import TarStream
from slimscope.sources import load_image, parse_source

X86 = {"bits": 64, "machine": "EM_X86_64", "little_endian": True}
INTERP = "/lib64/ld-linux-x86-64.so.2"


def elf(*needed: str, interp: str | None = INTERP, **kw) -> FileInfo:
    """A FileInfo of a dynamically linked x86-64 ELF file."""
    fields = {**X86, "type": "ET_DYN", "interp": interp, "needed": tuple(needed), **kw}
    return FileInfo(1000, "elf", elf=ElfInfo(**fields))


def lib(*needed: str, **kw) -> FileInfo:
    """A FileInfo of a shared library (no interpreter)."""
    return elf(*needed, interp=None, **kw)


STATIC = FileInfo(1000, "elf", elf=ElfInfo(**X86, type="ET_EXEC"))

# A merged-/usr glibc system: /lib -> usr/lib, /lib64 -> usr/lib64, the loader and libc.
GLIBC = [
    symlink("lib", "usr/lib"),
    symlink("lib64", "usr/lib64"),
    directory("usr/lib/x86_64-linux-gnu"),
    file("usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "LD"),
    symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    file("usr/lib/x86_64-linux-gnu/libc.so.6", "LIBC"),
    file("usr/lib/x86_64-linux-gnu/libm.so.6", "LIBM"),
    file("etc/ld.so.conf", "include /etc/ld.so.conf.d/*.conf\n"),
    file("etc/ld.so.conf.d/libc.conf", "/usr/local/lib\n"),
    file("bin/sh", "SH"),
]
GLIBC_INFO = {
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": lib(),
    "usr/lib/x86_64-linux-gnu/libc.so.6": lib("ld-linux-x86-64.so.2"),
    "usr/lib/x86_64-linux-gnu/libm.so.6": lib("libc.so.6"),
    "bin/sh": elf("libc.so.6"),
}


def entries_of(members: list) -> object:
    stream = TarStream()
    stream.feed(synth.layer_tar(synth.Layer(with_parents(members))))
    stream.close()
    return stream.entries


def image_of(layers: list[list], **config) -> Image:
    """An Image from layers of synth members; config keys as in the image config (Cmd, Env...)."""
    config.setdefault("Env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    built = [
        Layer(i, f"sha256:{i:064x}", f"sha256:{i:064x}", 0, "none", None, entries_of(members))
        for i, members in enumerate(layers)
    ]
    return Image(
        reference="test",
        source="docker-archive",
        id="sha256:" + "f" * 64,
        platform="linux/amd64",
        created=None,
        config={"config": config},
        layers=built,
        history=[],
    )


class Fetcher:
    """Answers content requests: hand-made FileInfo by path, else describe() of the member's bytes."""

    def __init__(self, image: Image, infos: dict[str, FileInfo], members: list[list]) -> None:
        self.image = image
        self.infos = {k.encode(): v for k, v in infos.items()}
        self.data = {m.name: m.data for layer in members for m in layer if m.kind == "f"}
        self.calls: list[set[int]] = []

    def __call__(self, refs: set[int]) -> dict[int, FileInfo]:
        self.calls.append(set(refs))
        out = {}
        for ref in refs:
            path = self.image.layers[ref >> SHIFT].entries.paths[ref & 0xFFFFFFFF]
            out[ref] = self.infos.get(path) or describe(self.data.get(path, b""))
        return out


def closure_of(layers: list[list], infos: dict[str, FileInfo] | None = None, **config):
    image = image_of(layers, **config)
    analysis = analyze(image)
    fetch = Fetcher(image, {**GLIBC_INFO, **(infos or {})}, layers)
    return runtime_closure(analysis, fetch), fetch


def needed(closure) -> set[str]:
    return {n.canonical.decode() for n in closure.needs.values()}


# -- describe ------------------------------------------------------------------------------------------
def test_describe_real_static_and_dynamic_elf():
    busybox = Path("/bin/busybox")
    if not busybox.is_file():
        pytest.skip("no /bin/busybox on this host")
    info = describe(busybox.read_bytes())
    assert info.kind == "elf" and info.elf is not None
    assert info.elf.static and info.elf.interp is None
    dynamic = describe(Path(shutil.which("xz") or "/usr/bin/xz").read_bytes())
    assert dynamic.elf is not None and not dynamic.elf.static
    assert "libc.so.6" in dynamic.elf.needed and dynamic.elf.interp.endswith("ld-linux-x86-64.so.2")


def test_describe_scripts_jars_text_and_garbage():
    script = describe(b"#!/usr/bin/env python3 -u\nprint(1)\n")
    assert script.kind == "script" and script.shebang == ("/usr/bin/env", "python3 -u")
    assert describe(b"#!/bin/sh\n").shebang == ("/bin/sh",)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as jar:
        jar.writestr(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nMain-Class: a.Main\r\nClass-Path: lib/a.jar\r\n  lib/b.jar\r\n\r\n",
        )
    info = describe(buf.getvalue())
    assert info.kind == "jar" and info.jar.main_class == "a.Main"
    assert info.jar.class_path == ("lib/a.jar", "lib/b.jar")
    assert describe(b"\x7fELF" + b"\xff" * 60).kind == "data"  # a broken ELF header is not fatal
    assert describe(b"PK\x03\x04garbage").kind == "text"
    assert describe(b"home = /usr/bin\n").text == b"home = /usr/bin\n"


def test_manifest_continuation_lines_and_sections():
    fields = _manifest("Main-Class: x.Y\nClass-Path: a.jar b\n .jar\n\nName: other\nMain-Class: no\n")
    assert fields == {"main-class": "x.Y", "class-path": "a.jar b.jar"}


def test_go_buildinfo():
    mod = (
        b"path\texample.com/app/cmd/server\nmod\texample.com/app\t(devel)\t\n"
        b"build\tCGO_ENABLED=1\nbuild\t-ldflags=-X main.v=1\n"
    )
    framed = b"\x00" * 16 + mod + b"\x00" * 16

    def varint(n: int) -> bytes:
        out = b""
        while n >= 0x80:
            out += bytes([n & 0x7F | 0x80])
            n >>= 7
        return out + bytes([n])

    header = GO_BUILDINFO + bytes([8, 2]) + b"\x00" * 16
    blob = b"junk" + header + varint(8) + b"go1.22.1" + varint(len(framed)) + framed
    info = _go_buildinfo(blob)
    assert info == GoInfo(
        version="go1.22.1",
        path="example.com/app/cmd/server",
        module="example.com/app",
        settings=(("CGO_ENABLED", "1"), ("-ldflags", "-X main.v=1")),
    )
    assert info.setting("-ldflags") == "-X main.v=1"
    assert _go_buildinfo(GO_BUILDINFO + bytes([8, 0]) + b"\x00" * 16) is None  # pre-1.18: pointers


# -- ELF loading -----------------------------------------------------------------------------------------
def test_dynamic_program_through_path_and_merged_usr():
    layers = [[*GLIBC, file("usr/bin/tool", "T"), symlink("usr/bin/tool-link", "tool")]]
    closure, fetch = closure_of(layers, {"usr/bin/tool": elf("libm.so.6")}, Cmd=["tool-link", "-v"])
    assert closure.program == b"usr/bin/tool"
    assert closure.runtime == "native" and not closure.static
    assert {
        "usr/bin/tool",
        "usr/lib/x86_64-linux-gnu/libm.so.6",
        "usr/lib/x86_64-linux-gnu/libc.so.6",
    } <= needed(closure)
    loader = closure.needs[b"usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"]
    assert loader.at == b"lib64/ld-linux-x86-64.so.2"  # as the kernel opens it
    assert (b"usr/bin/tool-link", b"tool") in closure.needs[b"usr/bin/tool"].links
    assert not closure.missing
    assert len(fetch.calls) == 1  # the libraries were asked for with the program, in one round


def test_runpath_origin_rpath_inheritance_ld_library_path_and_wrong_machine():
    layers = [
        [
            *GLIBC,
            file("opt/app/bin/app", "A"),
            file("opt/app/lib/libown.so", "O"),
            file("opt/rp/libinherited.so", "I"),
            file("opt/ldp/libenv.so", "E"),
            file("usr/lib/x86_64-linux-gnu/libwide.so", "W32"),
            file("usr/lib/libwide.so", "W64"),
            file("usr/local/lib/libconf.so", "C"),
        ]
    ]
    infos = {
        "opt/app/bin/app": elf(
            "libown.so", "libenv.so", "libwide.so", "libconf.so", runpath=("$ORIGIN/../lib",)
        ),
        "opt/app/lib/libown.so": lib("libinherited.so", "libnothere.so.1", rpath=("/opt/rp",)),
        "opt/rp/libinherited.so": lib("libc.so.6"),
        "opt/ldp/libenv.so": lib(),
        "usr/lib/x86_64-linux-gnu/libwide.so": lib(bits=32, machine="EM_386"),
        "usr/lib/libwide.so": lib(),
        "usr/local/lib/libconf.so": lib(),
    }
    closure, _ = closure_of(
        layers,
        infos,
        Cmd=["/opt/app/bin/app"],
        Env=["PATH=/usr/bin:/bin", "LD_LIBRARY_PATH=/opt/ldp"],
    )
    found = {lib.name: lib.at for lib in closure.libraries}
    assert found["libown.so"] == b"opt/app/lib/libown.so"  # $ORIGIN
    assert found["libinherited.so"] == b"opt/rp/libinherited.so"  # the library's own RPATH
    assert found["libenv.so"] == b"opt/ldp/libenv.so"  # LD_LIBRARY_PATH
    assert found["libwide.so"] == b"lib/libwide.so"  # the 32-bit one is passed over (/lib: usr/lib)
    assert found["libconf.so"] == b"usr/local/lib/libconf.so"  # ld.so.conf include glob
    assert found["libnothere.so.1"] is None
    assert any("libnothere.so.1" in m for m in closure.missing)


def test_musl_loader_uses_its_path_file():
    layers = [
        [
            file("lib/ld-musl-x86_64.so.1", "M"),
            file("etc/ld-musl-x86_64.path", "/opt/musl\n"),
            file("opt/musl/libz.so.1", "Z"),
            file("usr/lib/libz.so.1", "Z2"),
            file("usr/bin/app", "A"),
        ]
    ]
    infos = {
        "usr/bin/app": elf("libz.so.1", interp="/lib/ld-musl-x86_64.so.1"),
        "lib/ld-musl-x86_64.so.1": lib(),
        "opt/musl/libz.so.1": lib(),
        "usr/lib/libz.so.1": lib(),
    }
    closure, _ = closure_of(layers, infos, Cmd=["app"])
    assert {lib.name: lib.at for lib in closure.libraries}["libz.so.1"] == b"opt/musl/libz.so.1"


def test_static_binary_with_certificates_zone_and_user():
    layers = [
        [
            file("server", "S"),
            file("etc/ssl/certs/ca-certificates.crt", "CA"),
            file("usr/share/zoneinfo/Europe/Paris", "TZ"),
            file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
            file("etc/group", "app:x:1000:\n"),
        ]
    ]
    closure, _ = closure_of(layers, {"server": STATIC}, Cmd=["/server"], User="app", Env=["TZ=Europe/Paris"])
    assert closure.static and closure.runtime == "static"
    assert needed(closure) == {
        "server",
        "etc/ssl/certs/ca-certificates.crt",
        "usr/share/zoneinfo/Europe/Paris",
        "etc/passwd",
        "etc/group",
    }


def test_missing_command_and_no_command():
    closure, _ = closure_of([GLIBC], Cmd=["/does/not/exist"])
    assert closure.missing and "not found" in closure.missing[0]
    closure, _ = closure_of([GLIBC])
    assert not closure.needs and "no ENTRYPOINT or CMD" in closure.notes[0]


# -- commands running commands ---------------------------------------------------------------------------
def test_shell_string_env_wrappers_and_shebang():
    layers = [
        [
            *GLIBC,
            file("usr/bin/env", "E"),
            file("usr/bin/tini", "T"),
            file("srv/server", "S"),
            file("srv/run.sh", "#!/bin/sh\nexec /srv/server\n", mode=493),
            file("srv/conf/app.yaml", "x: 1"),
        ]
    ]
    infos = {p: elf("libc.so.6") for p in ("usr/bin/env", "usr/bin/tini", "srv/server")}
    shell, _ = closure_of(
        layers, infos, Cmd=["/bin/sh", "-c", "cd /srv && X=1 exec ./server --config conf/app.yaml"]
    )
    assert {"srv/server"} <= needed(shell)
    wrapped, _ = closure_of(layers, infos, Entrypoint=["tini", "--"], Cmd=["env", "-i", "A=b", "/srv/server"])
    assert {"usr/bin/tini", "usr/bin/env", "srv/server"} <= needed(wrapped)
    script, _ = closure_of(layers, infos, Cmd=["/srv/run.sh"])
    assert script.scripts == [b"srv/run.sh"] and "bin/sh" in needed(script)
    applet, _ = closure_of(
        [*layers, [file("bin/busybox", "B")]],
        {**infos, "bin/busybox": STATIC},
        Cmd=["busybox", "sh", "-c", "/srv/server"],
    )
    assert {"bin/busybox", "srv/server"} <= needed(applet)
    args, _ = closure_of(layers, infos, Cmd=["/srv/server", "--config=/srv/conf/app.yaml"])
    assert "srv/conf/app.yaml" in needed(args)


# -- languages ----------------------------------------------------------------------------------------------
PYTHON = [
    *GLIBC,
    file("usr/bin/python3.11", "PY"),
    symlink("usr/bin/python3", "python3.11"),
    file("usr/lib/python3.11/os.py", "import sys"),
    file("usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so", "SSL"),
    file("usr/lib/python3.11/ensurepip/__init__.py", ""),
    file("usr/lib/python3.11/config-3.11-x86_64-linux-gnu/libpython3.11.a", "AR"),
    file("usr/lib/x86_64-linux-gnu/libssl.so.3", "LSSL"),
    file("usr/local/lib/python3.11/dist-packages/pkg/__init__.py", ""),
    file("usr/local/lib/python3.11/dist-packages/pkg/_speed.cpython-311-x86_64-linux-gnu.so", "SPEED"),
]
PYTHON_INFO = {
    "usr/bin/python3.11": elf("libm.so.6", "libc.so.6"),
    "usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so": lib("libssl.so.3"),
    "usr/lib/x86_64-linux-gnu/libssl.so.3": lib("libc.so.6"),
    "usr/local/lib/python3.11/dist-packages/pkg/_speed.cpython-311-x86_64-linux-gnu.so": lib("libc.so.6"),
}


def test_python_system_interpreter_stdlib_site_packages_and_package_root():
    layers = [
        PYTHON,
        [
            file("app/app/__init__.py", ""),
            file("app/app/main.py", "print(1)"),
            file("app/app/pages.py", ""),
            file("app/wheels/x.whl", "W"),
        ],
    ]
    closure, _ = closure_of(layers, PYTHON_INFO, Cmd=["python3", "/app/app/main.py"])
    assert closure.runtime == "python"
    stdlib = closure.needs[b"usr/lib/python3.11"]
    assert stdlib.kind == "dir" and b"usr/lib/python3.11/ensurepip" in stdlib.skip
    assert b"usr/lib/python3.11/config-3.11-x86_64-linux-gnu" in stdlib.skip
    assert {"usr/local/lib/python3.11/dist-packages", "app/app"} <= needed(closure)
    assert "app" not in needed(closure)  # the package's folder, not the whole build context
    libraries = {lib.name for lib in closure.libraries}
    assert {"libssl.so.3", "libm.so.6"} <= libraries  # extensions' libraries are part of the closure


def test_python_virtualenv_console_script_and_module_spec():
    layers = [
        PYTHON,
        [
            symlink("opt/venv/bin/python", "/usr/bin/python3.11"),
            file("opt/venv/bin/gunicorn", "#!/opt/venv/bin/python\nimport gunicorn\n", mode=0o755),
            file(
                "opt/venv/pyvenv.cfg",
                "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n",
            ),
            file("opt/venv/lib/python3.11/site-packages/gunicorn/__init__.py", ""),
            file("srv/web/__init__.py", ""),
            file("srv/web/wsgi.py", ""),
        ],
    ]
    closure, fetch = closure_of(
        layers, PYTHON_INFO, Cmd=["/opt/venv/bin/gunicorn", "web.wsgi:app"], WorkingDir="/srv"
    )
    names = needed(closure)
    assert {"opt/venv", "usr/lib/python3.11", "srv/web"} <= names
    assert "usr/local/lib/python3.11/dist-packages" not in names  # the venv does not see system site
    assert closure.scripts == [b"opt/venv/bin/gunicorn"]
    assert len(fetch.calls) <= 3


NODE = [*GLIBC, file("usr/bin/node", "N")]


def test_node_build_output_and_production_dependencies():
    layers = [
        NODE,
        [
            file(
                "app/package.json",
                '{"name": "app", "dependencies": {"ms": "2"}, "devDependencies": {"typescript": "5"}}',
            ),
            file("app/dist/index.js", "require('ms')"),
            file("app/src/index.ts", ""),
            file("app/node_modules/ms/package.json", '{"name": "ms", "version": "2.1.3"}'),
            file("app/node_modules/ms/index.js", ""),
            file("app/node_modules/typescript/package.json", '{"name": "typescript", "version": "5.0.0"}'),
            file("app/node_modules/typescript/lib/tsc.js", "x" * 1000),
            symlink("app/node_modules/.bin/tsc", "../typescript/bin/tsc"),
        ],
    ]
    closure, _ = closure_of(
        layers, {"usr/bin/node": elf("libc.so.6")}, Cmd=["node", "dist/index.js"], WorkingDir="/app"
    )
    assert closure.runtime == "node"
    assert {"app/package.json", "app/dist", "app/node_modules", "app/dist/index.js"} <= needed(closure)
    assert "app/src" not in needed(closure)
    modules = closure.needs[b"app/node_modules"]
    assert modules.skip == {b"app/node_modules/typescript"}


def test_java_jar_manifest_class_path_and_jre():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Main-Class: a.Main\nClass-Path: lib/dep.jar\n\n")
    layers = [
        [
            *GLIBC,
            file("opt/jdk/bin/java", "J"),
            file("opt/jdk/bin/javac", "JC"),
            file("opt/jdk/lib/modules", "M"),
            file("opt/jdk/jmods/java.base.jmod", "JM"),
            file("opt/jdk/lib/server/libjvm.so", "JVM"),
            symlink("usr/bin/java", "/opt/jdk/bin/java"),
            file("app/app.jar", buf.getvalue()),
            file("app/lib/dep.jar", "PK"),
        ]
    ]
    infos = {"opt/jdk/bin/java": elf("libc.so.6"), "opt/jdk/lib/server/libjvm.so": lib("libm.so.6")}
    closure, _ = closure_of(layers, infos, Cmd=["java", "-Xmx64m", "-jar", "/app/app.jar"])
    assert closure.runtime == "java"
    assert {"app/app.jar", "app/lib/dep.jar", "opt/jdk"} <= needed(closure)
    home = closure.needs[b"opt/jdk"]
    assert b"opt/jdk/bin/javac" in home.skip and b"opt/jdk/jmods" in home.skip
    assert b"opt/jdk/bin/java" not in home.skip
    assert "libm.so.6" in {lib.name for lib in closure.libraries}  # libjvm.so's libraries too


def test_go_program_is_rebuilt_static_when_the_toolchain_and_module_are_there():
    go = GoInfo("go1.19.8", "example.com/app", "example.com/app", (("CGO_ENABLED", "1"),))
    info = elf("libc.so.6", go=True, go_info=go, debug_bytes=400)
    layers = [
        [*GLIBC, file("usr/lib/go-1.19/bin/go", "GO"), symlink("usr/bin/go", "../lib/go-1.19/bin/go")],
        [
            file("app/go.mod", "module example.com/app\n\ngo 1.19\n"),
            file("app/main.go", ""),
            file("app/server", "S"),
        ],
    ]
    infos = {"app/server": info, "usr/lib/go-1.19/bin/go": STATIC}
    closure, fetch = closure_of(layers, infos, Cmd=["/app/server"], WorkingDir="/app")
    assert closure.static and closure.runtime == "go"
    (rebuild,) = closure.rebuild
    assert (rebuild.module_dir, rebuild.package, rebuild.tool) == (b"app", ".", b"usr/bin/go")
    assert rebuild.ldflags == "-s -w" and rebuild.bytes == 600
    assert not closure.libraries  # a static rebuild needs no libraries
    assert len(fetch.calls) == 1
    # Without the go command the binary ships as it is, with its libraries.
    closure, _ = closure_of([GLIBC, layers[1]], infos, Cmd=["/app/server"], WorkingDir="/app")
    assert not closure.rebuild and not closure.static
    assert "libc.so.6" in {lib.name for lib in closure.libraries}


# -- the second pass over real archives ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def elf_files() -> dict[str, bytes]:
    """A small dynamic binary (xz) and its libraries, and a static busybox, from the host."""
    paths = {
        "bin/busybox": "/bin/busybox",
        "usr/bin/xz": shutil.which("xz") or "/usr/bin/xz",
        "usr/lib/x86_64-linux-gnu/liblzma.so.5": "/lib/x86_64-linux-gnu/liblzma.so.5",
        "usr/lib/x86_64-linux-gnu/libc.so.6": "/lib/x86_64-linux-gnu/libc.so.6",
        "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "/lib64/ld-linux-x86-64.so.2",
    }
    out = {}
    for name, host in paths.items():
        path = Path(host)
        if not path.exists():
            pytest.skip(f"{host} is not on this host")
        out[name] = path.resolve().read_bytes()
    return out


def xz_image(elf_files: dict[str, bytes]) -> synth.Image:
    base = [
        symlink("lib", "usr/lib"),
        symlink("lib64", "usr/lib64"),
        file("usr/lib/x86_64-linux-gnu/libc.so.6", elf_files["usr/lib/x86_64-linux-gnu/libc.so.6"]),
        file(
            "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
            elf_files["usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"],
        ),
        symlink("usr/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
    ]
    tool = [
        file("usr/lib/x86_64-linux-gnu/liblzma.so.5.4.1", elf_files["usr/lib/x86_64-linux-gnu/liblzma.so.5"]),
        symlink("usr/lib/x86_64-linux-gnu/liblzma.so.5", "liblzma.so.5.4.1"),
        file("usr/bin/xz", elf_files["usr/bin/xz"], mode=0o755),
        file("bin/busybox", elf_files["bin/busybox"], mode=0o755),
    ]
    return synth.Image(
        layers=[synth.Layer(with_parents(base)), synth.Layer(with_parents(tool), compression="gzip")],
        cmd=["xz", "--version"],
    )


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_reader_reads_only_wanted_files_from_every_format(tmp_path, elf_files, fmt):
    archive = synth.write_archive(tmp_path / "img", xz_image(elf_files), fmt)
    spec = parse_source(str(archive.path))
    image = load_image(str(archive.path))
    analysis = analyze(image)
    reader = ContentReader(image, spec)
    closure = runtime_closure(analysis, reader.read)
    assert closure.program == b"usr/bin/xz" and not closure.missing
    libs = {lib.name: lib.at for lib in closure.libraries if lib.needed_by == b"usr/bin/xz"}
    assert libs == {
        "liblzma.so.5": b"lib/x86_64-linux-gnu/liblzma.so.5",
        "libc.so.6": b"lib/x86_64-linux-gnu/libc.so.6",
    }
    assert reader.stats.rounds == 1 and reader.stats.blobs == 2
    busybox = analysis.fs.lookup(b"bin/busybox")
    info = reader.read({busybox})[busybox]
    assert info.elf is not None and info.elf.static


def test_reader_skips_big_files_and_detects_a_changed_source(tmp_path, elf_files):
    path = tmp_path / "img.tar"
    synth.write_archive(path, xz_image(elf_files), "docker-oci")
    image = load_image(str(path))
    analysis = analyze(image)
    ref = analysis.fs.lookup(b"usr/bin/xz")
    small = ContentReader(image, parse_source(str(path)), limit=1000)
    assert small.read({ref})[ref].kind == "skipped" and small.stats.skipped == 1
    other = synth.Image(layers=[synth.Layer([file("x", "changed")])] * 2)
    synth.write_archive(path, other, "docker-oci")
    with pytest.raises(SourceError):
        ContentReader(image, parse_source(str(path))).read({ref})


def test_reader_legacy_archive_with_equal_sized_and_identical_layers(tmp_path):
    one = [file("a/one", "1" * 100)]
    two = [file("a/two", "2" * 100)]  # the same tar size: only the digest tells them apart
    layers = [synth.Layer(one), synth.Layer(two), synth.Layer(one)]  # the third is the first again
    archive = synth.write_archive(tmp_path / "legacy.tar", synth.Image(layers=layers), "docker-legacy")
    image = load_image(str(archive.path))
    assert image.layers[0].compressed_bytes == image.layers[1].compressed_bytes
    refs = {(n << SHIFT) | 0 for n in range(3)}
    found = ContentReader(image, parse_source(str(archive.path))).read(refs)
    assert {ref >> SHIFT: info.text for ref, info in found.items()} == {
        0: b"1" * 100,
        1: b"2" * 100,
        2: b"1" * 100,
    }
