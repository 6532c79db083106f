"""Package databases: owned files, installing layers and build-only marks for dpkg, apk, pip and npm."""

from __future__ import annotations

import io
import json
import tarfile

from slimscope.analysis.packages import Package, build_only_paths, build_tool_reason, read_packages
from slimscope.fs import Filesystem
from slimscope.image.layer import LayerEntries
from slimscope.image.tarstream import TarStream


def layer(*members: tuple) -> LayerEntries:
    """Build a layer from (name, kind, data_or_link) tuples; kind in f d l h (whiteouts are `.wh.` files)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "f":
                data = payload.encode() if isinstance(payload, str) else payload
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
                continue
            info.type = {"d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE, "h": tarfile.LNKTYPE}[kind]
            if kind in "lh":
                info.linkname = payload
            tf.addfile(info)
    stream = TarStream()
    stream.feed(buf.getvalue())
    stream.close()
    return stream.entries


def stanza(
    name: str,
    version: str = "1.0",
    depends: str = "",
    *,
    arch: str = "amd64",
    status: str = "install ok installed",
    extra: str = "",
) -> str:
    lines = [
        f"Package: {name}",
        f"Status: {status}",
        "Priority: optional",
        "Section: libs",
        "Installed-Size: 100",
        "Maintainer: Debian <debian@example.org>",
        f"Architecture: {arch}",
        f"Version: {version}",
    ]
    if depends:
        lines.append(f"Depends: {depends}")
    if extra:
        lines.append(extra)
    lines += ["Description: a package", " with a long description", " .", " and more"]
    return "\n".join(lines) + "\n"


def status(*stanzas: str) -> tuple[str, str, str]:
    return ("var/lib/dpkg/status", "f", "\n".join(stanzas))


def listing(name: str, *paths: str) -> tuple[str, str, str]:
    return (f"var/lib/dpkg/info/{name}.list", "f", "".join(p + "\n" for p in ("/.", *paths)))


def by_name(packages: list[Package], manager: str | None = None) -> dict[str, Package]:
    out = {p.name: p for p in packages if manager is None or p.manager == manager}
    assert len(out) == len([p for p in packages if manager is None or p.manager == manager])
    return out


def summary(p: Package) -> tuple:
    return (p.layer, p.files, p.bytes, p.build_only, p.reason)


# -- dpkg --------------------------------------------------------------------------------------------
LIBC6 = stanza("libc6", "2.36-9+deb12u4", "libgcc-s1", extra="Multi-Arch: same")
DASH = stanza("dash", "0.5.12-2", extra="Essential: yes\nPriority: required")
OLDCONF = stanza("oldconf", "1", status="deinstall ok config-files")
NO_NAME = "Status: install ok installed\nVersion: 1\n"
PYTHON3 = stanza("python3", "3.11.2-1+b1", "libpython3.11 (>= 3.11.2), libc6 (>= 2.36)")
LIBPYTHON = stanza("libpython3.11", "3.11.2-6", "libc6 (>= 2.34)")
CURL = stanza("curl", "7.88.1-10", "libc6 (>= 2.34)")
CURL2 = stanza("curl", "7.88.1-10+deb12u5", "libc6 (>= 2.34)")
OLDPKG = stanza("oldpkg", "1", "libc6")
GCC = stanza(
    "gcc-12",
    "12.2.0-14",
    "cpp-12 (= 12.2.0-14), gcc-12-base (= 12.2.0-14), libisl23 (>= 0.15), "
    "libmpc3 (>= 1.1.0), libc6 (>= 2.36)",
)
CPP = stanza("cpp-12", "12.2.0-14", "gcc-12-base (= 12.2.0-14), libisl23 (>= 0.15), libmpc3, libc6")
GCC_BASE = stanza("gcc-12-base", "12.2.0-14", extra="Priority: required")
ISL = stanza("libisl23", "0.25-1.1", "libc6 (>= 2.14)")
MPC = stanza("libmpc3", "1.3.1-1", "libc6 (>= 2.4)")
PYDEV = stanza("python3-dev", "3.11.2-1+b1", "python3 (= 3.11.2-1+b1), libpython3.11-dev (>= 3.11.2)")
LIBPYDEV = stanza("libpython3.11-dev", "3.11.2-6", "libpython3.11 (= 3.11.2-6), libc6-dev | libc-dev")


def debian_layers(extended_states: str | None = None) -> list[LayerEntries]:
    base = layer(
        ("usr/lib/x86_64-linux-gnu/libc.so.6", "f", b"c" * 1000),
        ("usr/bin/dash", "f", b"d" * 100),
        ("usr/bin/sh", "l", "dash"),
        ("lib", "l", "usr/lib"),
        ("bin", "l", "usr/bin"),
        status(LIBC6, DASH, OLDCONF, NO_NAME),
        listing(
            "libc6:amd64",
            "/lib",
            "/lib/x86_64-linux-gnu",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/share/doc/libc6/copyright",
        ),
        listing("dash", "/bin", "/bin/dash", "/bin/sh"),
    )
    install = layer(
        ("usr/bin/python3.11", "f", b"p" * 500),
        ("usr/bin/python3", "l", "python3.11"),
        ("usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0", "f", b"l" * 4000),
        ("usr/bin/curl", "f", b"u" * 300),
        ("usr/bin/oldtool", "f", b"o" * 50),
        status(LIBC6, DASH, PYTHON3, LIBPYTHON, CURL, OLDPKG),
        listing("python3", "/usr/bin/python3.11", "/usr/bin/python3"),
        listing("libpython3.11:amd64", "/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0"),
        listing("curl", "/usr/bin/curl"),
        listing("oldpkg", "/usr/bin/oldtool"),
    )
    build = [
        ("usr/bin/.wh.curl", "f", b""),
        ("var/lib/dpkg/info/.wh.curl.list", "f", b""),
        ("usr/bin/x86_64-linux-gnu-gcc-12", "f", b"g" * 3000),
        ("usr/bin/gcc-12", "h", "usr/bin/x86_64-linux-gnu-gcc-12"),
        ("usr/lib/gcc/x86_64-linux-gnu/12/cc1", "f", b"1" * 7000),
        ("usr/share/doc/gcc-12-base/README", "f", b"r" * 5),
        ("usr/lib/x86_64-linux-gnu/libisl.so.23", "f", b"i" * 2000),
        ("usr/lib/x86_64-linux-gnu/libmpc.so.3", "f", b"m" * 600),
        ("usr/bin/x86_64-linux-gnu-python3-config", "f", b"x" * 20),
        ("usr/include/python3.11/Python.h", "f", b"h" * 80),
        ("usr/lib/x86_64-linux-gnu/libpython3.11.a", "f", b"a" * 900),
        status(LIBC6, DASH, PYTHON3, LIBPYTHON, OLDPKG, GCC, CPP, GCC_BASE, ISL, MPC, PYDEV, LIBPYDEV),
        listing("gcc-12", "/usr/bin", "/usr/bin/gcc-12", "/usr/bin/x86_64-linux-gnu-gcc-12"),
        listing("cpp-12", "/usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
        listing("gcc-12-base", "/usr/share/doc/gcc-12-base/README"),
        listing("libisl23:amd64", "/usr/lib/x86_64-linux-gnu/libisl.so.23"),
        listing("libmpc3:amd64", "/usr/lib/x86_64-linux-gnu/libmpc.so.3"),
        listing("python3-dev", "/usr/bin/x86_64-linux-gnu-python3-config"),
        listing(
            "libpython3.11-dev:amd64",
            "/usr/include/python3.11/Python.h",
            "/usr/lib/x86_64-linux-gnu/libpython3.11.a",
        ),
    ]
    if extended_states is not None:
        build.append(("var/lib/apt/extended_states", "f", extended_states))
    reinstall = layer(
        ("usr/bin/.wh.oldtool", "f", b""),
        ("var/lib/dpkg/info/.wh.oldpkg.list", "f", b""),
        ("usr/bin/curl", "f", b"U" * 320),
        status(LIBC6, DASH, PYTHON3, LIBPYTHON, GCC, CPP, GCC_BASE, ISL, MPC, PYDEV, LIBPYDEV, CURL2),
        listing("curl", "/usr/bin/curl"),
    )
    return [base, install, layer(*build), reinstall]


def test_dpkg_files_layers_and_build_only() -> None:
    packages = read_packages(Filesystem(debian_layers()))
    dpkg = by_name(packages, "dpkg")
    assert set(dpkg) == {
        "libc6",
        "dash",
        "python3",
        "libpython3.11",
        "curl",
        "gcc-12",
        "cpp-12",
        "gcc-12-base",
        "libisl23",
        "libmpc3",
        "python3-dev",
        "libpython3.11-dev",
    }
    assert {name: summary(p) for name, p in dpkg.items()} == {
        # usrmerge: the list says /lib/..., the file lives in usr/lib through `lib -> usr/lib`
        "libc6": (0, 1, 1000, False, ""),
        "dash": (0, 1, 100, False, ""),
        "python3": (1, 1, 500, False, ""),
        "libpython3.11": (1, 1, 4000, False, ""),
        "curl": (3, 1, 320, False, ""),  # removed in layer 2, installed again in layer 3
        "gcc-12": (2, 2, 3000, True, "build tool"),  # a hard link: two files, one inode
        "cpp-12": (2, 1, 7000, True, "build tool"),
        "gcc-12-base": (2, 1, 5, False, ""),  # Priority: required
        "libisl23": (2, 1, 2000, True, "only needed by gcc-12, cpp-12"),
        "libmpc3": (2, 1, 600, True, "only needed by gcc-12, cpp-12"),
        "python3-dev": (2, 1, 20, True, "development files"),
        "libpython3.11-dev": (2, 2, 980, True, "development files"),
    }
    assert dpkg["libc6"].paths == [b"usr/lib/x86_64-linux-gnu/libc.so.6"]
    assert dpkg["libc6"].arch == "amd64"
    assert dpkg["libc6"].version == "2.36-9+deb12u4"
    assert dpkg["libc6"].depends == []  # libgcc-s1 is not installed
    assert dpkg["dash"].paths == [b"usr/bin/dash"]  # /bin/sh is a symlink
    assert dpkg["python3"].paths == [b"usr/bin/python3.11"]
    assert sorted(dpkg["gcc-12"].paths) == [b"usr/bin/gcc-12", b"usr/bin/x86_64-linux-gnu-gcc-12"]
    assert dpkg["gcc-12"].depends == ["cpp-12", "gcc-12-base", "libisl23", "libmpc3", "libc6"]
    assert dpkg["python3"].depends == ["libpython3.11", "libc6"]
    assert dpkg["libpython3.11-dev"].depends == ["libpython3.11"]
    assert dpkg["curl"].version == "7.88.1-10+deb12u5"
    assert all(p.location is None for p in dpkg.values())

    paths = build_only_paths(packages)
    assert set(paths) == {
        "dpkg:gcc-12",
        "dpkg:cpp-12",
        "dpkg:libisl23",
        "dpkg:libmpc3",
        "dpkg:python3-dev",
        "dpkg:libpython3.11-dev",
    }
    assert paths["dpkg:libisl23"] == [b"usr/lib/x86_64-linux-gnu/libisl.so.23"]


def test_dpkg_extended_states_keep_packages_installed_by_hand() -> None:
    states = (
        "Package: libisl23\nArchitecture: amd64\nAuto-Installed: 1\n\n"
        "Package: cpp-12\nArchitecture: amd64\nAuto-Installed: 1\n\n"
        "Package: libmpc3\nArchitecture: amd64\nAuto-Installed: 0\n"
    )
    dpkg = by_name(read_packages(Filesystem(debian_layers(states))), "dpkg")
    assert summary(dpkg["libmpc3"]) == (2, 1, 600, False, "")  # installed by hand: needed
    assert summary(dpkg["libisl23"]) == (2, 1, 2000, True, "only needed by gcc-12, cpp-12")
    assert dpkg["cpp-12"].reason == "build tool"


def test_dpkg_provides_alternatives_and_any() -> None:
    fs = Filesystem(
        [
            layer(
                status(
                    stanza("make", "4.3", "libfoo1, awk, libbar1"),
                    stanza("mawk", "1.3.4", extra="Provides: awk"),
                    stanza("tool", "1", "awk:any (>= 1) | gawk", extra="Pre-Depends: libbar1"),
                    stanza("libbar1", "1"),
                    stanza("libfoo1", "1"),
                )
            )
        ]
    )
    dpkg = by_name(read_packages(fs))
    assert {n: (p.build_only, p.reason) for n, p in dpkg.items()} == {
        "make": (True, "build tool"),
        "mawk": (False, ""),
        "tool": (False, ""),
        "libbar1": (False, ""),
        "libfoo1": (True, "only needed by make"),
    }
    assert dpkg["make"].depends == ["libfoo1", "mawk", "libbar1"]
    assert dpkg["tool"].depends == ["libbar1", "mawk"]
    assert dpkg["tool"].layer == 0 and dpkg["tool"].files == 0


def test_distroless_status_d_with_md5sums() -> None:
    fs = Filesystem(
        [
            layer(
                ("usr/lib/x86_64-linux-gnu/libc.so.6", "f", b"c" * 70),
                ("var/lib/dpkg/status.d/base", "f", "Package: base-files\nVersion: 12.4\n"),
            ),
            layer(
                ("var/lib/dpkg/status.d/libc6", "f", "Package: libc6\nVersion: 2.36\nArchitecture: amd64\n"),
                (
                    "var/lib/dpkg/status.d/libc6.md5sums",
                    "f",
                    "0123  usr/lib/x86_64-linux-gnu/libc.so.6\n4567  usr/share/doc/libc6/copyright\n",
                ),
            ),
        ]
    )
    dpkg = by_name(read_packages(fs))
    assert {n: summary(p) for n, p in dpkg.items()} == {
        "base-files": (0, 0, 0, False, ""),
        "libc6": (1, 1, 70, False, ""),
    }


def test_dpkg_multiarch_and_build_tool_names() -> None:
    assert build_tool_reason("dpkg", "libssl-dev:amd64") == "development files"
    assert build_tool_reason("dpkg", "gcc-14-x86-64-linux-gnu") == "build tool"
    assert build_tool_reason("dpkg", "cpp-12") == "build tool"
    assert build_tool_reason("dpkg", "binutils-common") == "build tool"
    assert build_tool_reason("dpkg", "gcc-12-base") == ""
    assert build_tool_reason("dpkg", "libgcc-s1") == ""
    assert build_tool_reason("dpkg", "libllvm15") == ""
    assert build_tool_reason("apk", "build-base") == "build tool"
    assert build_tool_reason("apk", ".build-deps") == "build dependency group"
    assert build_tool_reason("apk", ".rundeps") == ""
    fs = Filesystem(
        [
            layer(
                ("usr/lib/x86_64-linux-gnu/libz.so.1", "f", b"z" * 10),
                ("usr/lib/i386-linux-gnu/libz.so.1", "f", b"z" * 9),
                status(stanza("zlib1g", "1", arch="amd64"), stanza("zlib1g", "1", arch="i386")),
                listing("zlib1g:amd64", "/usr/lib/x86_64-linux-gnu/libz.so.1"),
                listing("zlib1g:i386", "/usr/lib/i386-linux-gnu/libz.so.1"),
            )
        ]
    )
    found = sorted((p.arch, p.bytes) for p in read_packages(fs))
    assert found == [("amd64", 10), ("i386", 9)]


def test_database_deleted_then_written_again() -> None:
    fs = Filesystem(
        [
            layer(status(stanza("libc6"), stanza("tzdata"))),
            layer(("var/lib/dpkg/.wh.status", "f", b"")),
            layer(status(stanza("libc6"))),
            layer(("usr/lib/apk/db/installed", "f", "P:musl\nV:1\n"), ("lib", "l", "usr/lib")),
        ]
    )
    found = {(p.manager, p.name): p.layer for p in read_packages(fs)}
    assert found == {("dpkg", "libc6"): 2, ("apk", "musl"): 3}  # apk's database in a usr-merged /lib


# -- apk ---------------------------------------------------------------------------------------------
def apk_db(*records: str) -> tuple[str, str, str]:
    return ("lib/apk/db/installed", "f", "\n".join(records))


MUSL = (
    "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nS:383152\nI:622592\nT:the musl c library\n"
    "p:so:libc.musl-x86_64.so.1=1\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:Q1xyz=\nR:libc.musl-x86_64.so.1\n"
)
PY = "P:python3\nV:3.11.6-r0\nA:x86_64\nD:so:libc.musl-x86_64.so.1 musl>=1.2\nF:usr/bin\nR:python3.11\n"
BUILD_BASE = "P:build-base\nV:0.5-r3\nA:x86_64\nD:gcc make musl-dev !conflicting\n"
GCC_APK = "P:gcc\nV:12.2.1-r10\nA:x86_64\nD:mpc1 so:libc.musl-x86_64.so.1\nF:usr/bin\nR:gcc\n"
MPC1 = "P:mpc1\nV:1.3.1-r1\nA:x86_64\nD:so:libc.musl-x86_64.so.1\nF:usr/lib\nR:libmpc.so.3\n"
MAKE = "P:make\nV:4.4.1-r1\nA:x86_64\nF:usr/bin\nR:make\n"
MUSL_DEV = "P:musl-dev\nV:1.2.4-r2\nA:x86_64\nD:musl=1.2.4-r2\nF:usr/include\nR:stdio.h\n"


def test_apk_installed_database() -> None:
    fs = Filesystem(
        [
            layer(
                ("lib/ld-musl-x86_64.so.1", "f", b"m" * 600),
                ("lib/libc.musl-x86_64.so.1", "l", "ld-musl-x86_64.so.1"),
                apk_db(MUSL),
            ),
            layer(
                ("usr/bin/python3.11", "f", b"p" * 400),
                ("usr/bin/gcc", "f", b"g" * 900),
                ("usr/lib/libmpc.so.3", "f", b"c" * 90),
                ("usr/bin/make", "f", b"k" * 70),
                ("usr/include/stdio.h", "f", b"s" * 8),
                ("etc/apk/world", "f", "python3\nbuild-base\n"),
                apk_db(MUSL, PY, BUILD_BASE, GCC_APK, MPC1, MAKE, MUSL_DEV),
            ),
            layer(
                ("usr/include/linux/a.h", "f", b"x" * 3),
                ("etc/shadow", "f", b"secret"),
                apk_db(
                    MUSL,
                    PY,
                    BUILD_BASE,
                    GCC_APK,
                    MPC1,
                    MAKE,
                    MUSL_DEV,
                    "P:.build-deps\nV:20240101.000000\nA:noarch\nD:linux-headers\n",
                    "P:linux-headers\nV:6.5-r0\nA:x86_64\nF:usr/include/linux\nR:a.h\nR:../../../../etc/shadow\n",
                ),
            ),
        ]
    )
    apk = by_name(read_packages(fs), "apk")
    assert {n: summary(p) for n, p in apk.items()} == {
        "musl": (0, 1, 600, False, ""),  # the symlink is not a file
        "python3": (1, 1, 400, False, ""),
        "build-base": (1, 0, 0, True, "build tool"),
        "gcc": (1, 1, 900, True, "build tool"),
        "mpc1": (1, 1, 90, True, "only needed by build-base, gcc"),
        "make": (1, 1, 70, True, "build tool"),
        "musl-dev": (1, 1, 8, True, "development files"),
        ".build-deps": (2, 0, 0, True, "build dependency group"),
        "linux-headers": (2, 1, 3, True, "only needed by .build-deps"),  # ../ escapes: ignored
    }
    assert apk["python3"].depends == ["musl"]
    assert apk["build-base"].depends == ["gcc", "make", "musl-dev"]
    assert apk["musl"].arch == "x86_64" and apk["musl"].version == "1.2.4-r2"
    assert apk["linux-headers"].paths == [b"usr/include/linux/a.h"]


# -- pip ---------------------------------------------------------------------------------------------
SITE = "usr/local/lib/python3.11/site-packages"


def test_pip_record_paths_metadata_and_escapes() -> None:
    metadata = (
        "Metadata-Version: 2.1\nName: Tool\nVersion: 1.0\nRequires-Dist: requests (>=2.0)\n"
        "Requires-Dist: pytest ; extra == 'test'\n\nName: not-a-header\n"
    )
    record = (
        "tool/__init__.py,sha256=abc,100\n"
        "tool/core.py,sha256=def,250\n"
        "tool-1.0.dist-info/METADATA,,\n"
        "tool-1.0.dist-info/RECORD,,\n"
        "../../../bin/tool,sha256=ghi,50\n"
        "../../../../../../../../etc/passwd,,\n"  # climbs out of the image: ignored
        "tool/missing.py,,\n"
        '"tool/quoted,name.py",,\n'
    )
    fs = Filesystem(
        [
            layer(("etc/passwd", "f", b"root:x:0:0")),
            layer(
                (f"{SITE}/tool/__init__.py", "f", b"i" * 100),
                (f"{SITE}/tool/core.py", "f", b"c" * 250),
                (f"{SITE}/tool/quoted,name.py", "f", b"q" * 7),
                ("usr/local/bin/tool", "f", b"t" * 50),
                (f"{SITE}/tool-1.0.dist-info/METADATA", "f", metadata),
                (f"{SITE}/tool-1.0.dist-info/RECORD", "f", record),
            ),
            layer(
                (f"{SITE}/plain_pkg-2.0.dist-info/RECORD", "f", "plain_pkg/x.py,,\n"),
                (f"{SITE}/plain_pkg/x.py", "f", b"x" * 9),
            ),
        ]
    )
    pip = by_name(read_packages(fs), "pip")
    tool = pip["Tool"]
    assert (tool.version, tool.layer, tool.files) == ("1.0", 1, 6)
    assert tool.bytes == 100 + 250 + 7 + 50 + len(metadata) + len(record)
    assert tool.location == f"{SITE}/tool-1.0.dist-info".encode()
    assert b"usr/local/bin/tool" in tool.paths and b"etc/passwd" not in tool.paths
    assert tool.depends == ["requests"]
    assert (tool.build_only, tool.reason, tool.arch) == (False, "", None)
    plain = pip["plain_pkg"]
    assert (plain.version, plain.layer, plain.files, plain.bytes) == ("2.0", 2, 1, 9)  # from the folder name


# -- npm ---------------------------------------------------------------------------------------------
def pkg(name: str, version: str = "1.0.0", **deps: dict) -> str:
    return json.dumps({"name": name, "version": version, **deps})


def test_npm_packages_nested_scoped_and_dev_dependencies() -> None:
    nm = "app/node_modules"
    app = json.dumps(
        {
            "name": "web",
            "dependencies": {"express": "^4"},
            "devDependencies": {"jest": "^29", "@types/node": "^20", "ms": "^2", "absent": "1"},
        }
    )
    express = pkg("express", "4.18.2", dependencies={"debug": "2.6.9"})
    debug = pkg("debug", "2.6.9", dependencies={"ms": "2.0.0"})
    members = [
        ("app/package.json", "f", app),
        ("app/server.js", "f", b"s" * 10),
        (f"{nm}/express/package.json", "f", express),
        (f"{nm}/express/index.js", "f", b"e" * 200),
        (f"{nm}/express/node_modules/debug/package.json", "f", debug),
        (f"{nm}/express/node_modules/debug/src/index.js", "f", b"d" * 80),
        (f"{nm}/ms/package.json", "f", pkg("ms", "2.1.3")),
        (f"{nm}/ms/index.js", "f", b"m" * 30),
        (f"{nm}/jest/package.json", "f", pkg("jest", "29.7.0", dependencies={"jest-cli": "^29", "ms": "^2"})),
        (f"{nm}/jest/bin/jest.js", "f", b"j" * 40),
        (f"{nm}/jest-cli/package.json", "f", pkg("jest-cli", "29.7.0", dependencies={"chalk": "^4"})),
        (f"{nm}/jest-cli/build/index.js", "f", b"c" * 500),
        (f"{nm}/chalk/package.json", "f", pkg("chalk", "4.1.2")),
        (f"{nm}/chalk/source/index.js", "f", b"k" * 60),
        (f"{nm}/@types/node/package.json", "f", pkg("@types/node", "20.1.0")),
        (f"{nm}/@types/node/index.d.ts", "f", b"t" * 1000),
        (f"{nm}/.bin/jest", "l", "../jest/bin/jest.js"),
    ]
    fs = Filesystem([layer(*members[:2]), layer(*members[2:])])
    npm = by_name(read_packages(fs), "npm")
    size = {name: len(data) for name, kind, data in members if kind == "f"}

    def own(*names: str) -> int:
        return sum(size[f"{nm}/{n}"] for n in names)

    dev = "devDependency of /app/package.json"
    nested = "express/node_modules/debug"

    assert {n: summary(p) for n, p in npm.items()} == {
        "express": (1, 2, own("express/package.json", "express/index.js"), False, ""),
        "debug": (1, 2, own(f"{nested}/package.json", f"{nested}/src/index.js"), False, ""),
        "ms": (1, 2, own("ms/package.json", "ms/index.js"), False, ""),  # a devDependency, but debug needs it
        "jest": (1, 2, own("jest/package.json", "jest/bin/jest.js"), True, dev),
        "jest-cli": (
            1,
            2,
            own("jest-cli/package.json", "jest-cli/build/index.js"),
            True,
            "only needed by jest",
        ),
        "chalk": (1, 2, own("chalk/package.json", "chalk/source/index.js"), True, "only needed by jest"),
        "@types/node": (1, 2, own("@types/node/package.json", "@types/node/index.d.ts"), True, dev),
    }
    assert npm["express"].location == f"{nm}/express".encode()
    assert sorted(npm["express"].paths) == [
        f"{nm}/express/{n}".encode() for n in ("index.js", "package.json")
    ]
    assert npm["debug"].location == f"{nm}/{nested}".encode()
    assert npm["express"].depends == ["debug"]
    assert (npm["express"].version, npm["express"].arch) == ("4.18.2", None)
    paths = build_only_paths(npm.values())
    assert sorted(paths) == ["npm:@types/node", "npm:chalk", "npm:jest", "npm:jest-cli"]


# -- hostile input -----------------------------------------------------------------------------------
def test_malformed_databases_do_not_raise() -> None:
    deep = "[" * 100_000
    fs = Filesystem(
        [
            layer(
                (
                    "var/lib/dpkg/status",
                    "f",
                    b"\xff\xfe\x00garbage\n\nPackage: ok\nStatus: install ok installed\nDepends: ,,|(, \x00\n"
                    b"\n:\n \n\tcontinuation\nPackage: bad name\nStatus: install ok installed\n\n"
                    b"Package: ../../etc\nStatus: install ok installed\n\nPackage: half\nStatus: install\n",
                ),
                (
                    "var/lib/dpkg/info/ok.list",
                    "f",
                    b"\x00\xff\n/../../etc/passwd\n//\n/./x/../..\n" + b"/a" * 5000,
                ),
                ("var/lib/apt/extended_states", "f", b"\x00\x01\nAuto-Installed: 1\n"),
                ("var/lib/dpkg/status.d/junk", "f", b"\xff" * 100),
                (
                    "lib/apk/db/installed",
                    "f",
                    b"P:\nV\nF:../../..\nR:x\n\nP:a b\n\nD:x\nP:good\nF:\nR:\nR:../../z\n",
                ),
                ("etc/apk/world", "f", b"\xff\x00"),
                (
                    f"{SITE}/bad-1.dist-info/RECORD",
                    "f",
                    b"bad-1.dist-info/RECORD,,\n" + b"x" * 200_000 + b'\n"unterminated,\x00\n\xff,\n',
                ),
                (f"{SITE}/bad-1.dist-info/METADATA", "f", b"\xff\xfe"),
                (f"{SITE}/.dist-info/RECORD", "f", b""),
                (
                    "app/package.json",
                    "f",
                    b'{"devDependencies": {"deep": 1, "": 2, "../x": 3}, "dependencies": [1]}',
                ),
                ("app/node_modules/deep/package.json", "f", deep),
                ("app/node_modules/list/package.json", "f", "[1, 2]"),
                (
                    "app/node_modules/num/package.json",
                    "f",
                    '{"name": 5, "version": {}, "dependencies": {"7": "x"}}',
                ),
                ("app/node_modules/@/package.json", "f", "{}"),
                ("node_modules/top/package.json", "f", "{"),
            )
        ]
    )
    packages = read_packages(fs)
    assert sorted((p.manager, p.name) for p in packages) == [
        ("apk", "good"),
        ("dpkg", "ok"),
        ("npm", "deep"),
        ("npm", "list"),
        ("npm", "num"),
        ("npm", "top"),
        ("pip", "bad"),
    ]
    found = by_name(packages)
    assert found["ok"].files == 0 and found["ok"].depends == []
    assert (found["deep"].build_only, found["deep"].reason) == (True, "devDependency of /app/package.json")
    assert found["top"].location == b"node_modules/top"
    assert found["bad"].files == 1  # only the RECORD itself is a visible file it lists


def test_no_databases_no_packages() -> None:
    assert read_packages(Filesystem([layer(("etc/hostname", "f", b"x"))])) == []
    assert read_packages(Filesystem([])) == []
