"""Installed packages (dpkg, apk, pip, npm): the files each owns in the final filesystem, the layer that
installed it, and whether only a build needs it.

Everything is read from the copies of the package databases that the tar reader captured
(`LayerEntries.captured`), never from disk. Databases are untrusted: bad stanzas, JSON or CSV are
skipped, paths that climb out of the image are ignored, and the work stays linear in the size of the
captured databases (dependency closures walk each name once).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from slimscope.fs import MASK, SHIFT, Dir, Filesystem
from slimscope.image.layer import FILE, HARDLINK, OPAQUE, WHITEOUT

DPKG_STATUS = b"var/lib/dpkg/status"
DPKG_STATUS_D = b"var/lib/dpkg/status.d"
DPKG_INFO = b"var/lib/dpkg/info"
APT_EXTENDED_STATES = b"var/lib/apt/extended_states"
APK_INSTALLED = (b"lib/apk/db/installed", b"usr/lib/apk/db/installed")
APK_WORLD = b"etc/apk/world"
MAX_REASON_NAMES = 3
PULLER_BUDGET = 5_000_000  # closure steps spent naming the build-only packages behind a dependency

BUILD_TOOL = "build tool"
DEV_FILES = "development files"
_TOOLS = frozenset(
    {
        "build-essential",
        "gcc",
        "g++",
        "cpp",
        "make",
        "autoconf",
        "automake",
        "libtool",
        "pkg-config",
        "dpkg-dev",
        "libc-dev-bin",
        "git",
        "git-man",
        "patch",
        "bison",
        "flex",
        "rustc",
        "cargo",
        "python3-pip",
        "python3-wheel",
        "python3-pip-whl",
        "python3-setuptools-whl",
    }
)
_APK_TOOLS = frozenset({"build-base", "alpine-sdk", "go", "rust", "py3-pip", "py3-wheel"})
_TOOL_PREFIXES = ("binutils", "cmake", "pkgconf", "gfortran", "clang", "llvm", "golang")
_COMPILERS = ("gcc-", "g++-", "cpp-")  # gcc-12, cpp-12-x86-64-linux-gnu, gcc-x86-64-linux-gnu
_APK_BUILD_GROUPS = ("build", "fetch", "gyp", "phpize", "compile", "dev")  # apk add --virtual .build-deps
_DEP_NAMES = re.compile(r"(?:^|[,|])\s*([^\s,|(<>=\[:]+)")  # first token of each alternative
_APK_DEP = re.compile(r"[<>=~@]")
_DIST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Package:
    """One installed package and what it owns in the final filesystem."""

    manager: str  # "dpkg", "apk", "pip" or "npm"
    name: str
    version: str
    arch: str | None = None
    bytes: int = 0  # regular file bytes it owns that are visible, each data inode once
    files: int = 0  # visible regular files and hard links it owns
    paths: list[bytes] = field(default_factory=list)  # those files' canonical paths
    layer: int | None = None  # the layer that installed it
    location: bytes | None = None  # pip: the dist-info folder; npm: the package folder
    depends: list[str] = field(default_factory=list)  # installed packages it needs (npm, pip: declared)
    build_only: bool = False
    reason: str = ""  # why build_only


def read_packages(fs: Filesystem, env: dict[str, str] | None = None) -> list[Package]:
    """Every installed dpkg, apk, pip and npm package of the final filesystem, with build-only marks.

    dpkg and apk packages are build-only by name (compilers, `-dev` packages, ...) or when only such
    packages need them; npm packages when only the app's devDependencies need them. pip packages are
    never marked: nothing in a dist-info says what is needed only to build. `env` (the image's Env)
    is accepted for the analyses' common signature and not used yet.
    """
    del env
    owner = _Owner(fs)
    visible = _visible_captured(fs)
    packages = _dpkg(fs, owner)
    packages += _apk(fs, owner)
    packages += _pip(fs, owner, visible)
    packages += _npm(fs, visible)
    return packages


def build_only_paths(packages: Iterable[Package]) -> dict[str, list[bytes]]:
    """The owned paths of build-only packages, by "manager:name"."""
    out: dict[str, list[bytes]] = {}
    for package in packages:
        if package.build_only:
            out.setdefault(f"{package.manager}:{package.name}", []).extend(package.paths)
    return out


def build_tool_reason(manager: str, name: str) -> str:
    """Why a dpkg or apk package is build-only by its name ("" when it is not)."""
    base = name.partition(":")[0]
    if base.endswith("-dev"):
        return DEV_FILES
    if base == "libc-dev-bin":
        return DEV_FILES
    if base in _TOOLS or base.startswith(_TOOL_PREFIXES):
        return BUILD_TOOL
    if manager == "apk":
        if base in _APK_TOOLS:
            return BUILD_TOOL
        if base[:1] == "." and any(word in base for word in _APK_BUILD_GROUPS):
            return "build dependency group"
    for prefix in _COMPILERS:
        if base.startswith(prefix):
            rest = base[len(prefix) :]
            if rest.isdigit() or "linux-gnu" in rest:
                return BUILD_TOOL
    return ""


# -- owned files -----------------------------------------------------------------------------------
class _Owner:
    """Turns owned paths into visible files, resolving each folder (symlinks included) once."""

    def __init__(self, fs: Filesystem) -> None:
        self.fs = fs
        self.folders: dict[bytes, tuple[bytes, Dir] | None] = {b"": (b"", fs.root)}

    def folder(self, path: bytes) -> tuple[bytes, Dir] | None:
        """The canonical prefix ("usr/lib/" or "") and node of a folder, or None."""
        if path in self.folders:
            return self.folders[path]
        hit = None
        found = self.fs.resolve(path)
        if found is not None:
            canonical, node = found
            if isinstance(node, Dir):
                hit = (canonical + b"/" if canonical else b"", node)
        self.folders[path] = hit
        return hit

    def collect(self, package: Package, paths: Iterable[bytes]) -> None:
        """Add the visible regular files and hard links among normalized paths to a package."""
        fs = self.fs
        layers = fs.layers
        inode = fs.inode
        folders = self.folders
        seen: set[int] = set()
        data_seen: set[int] = set()
        out = package.paths
        size = 0
        for path in paths:
            parent, _, name = path.rpartition(b"/")
            try:
                folder = folders[parent]
            except KeyError:
                folder = self.folder(parent)
            if folder is None:
                continue
            node = folder[1].children.get(name)
            if node is None or type(node) is Dir or node in seen:
                continue
            kind = layers[node >> SHIFT].kinds[node & MASK]
            if kind != FILE and kind != HARDLINK:
                continue
            seen.add(node)
            out.append(folder[0] + name)
            data = inode.get(node, node)
            if data not in data_seen:
                data_seen.add(data)
                entries = layers[data >> SHIFT]
                if entries.kinds[data & MASK] == FILE:
                    size += entries.sizes[data & MASK]
        package.files += len(seen)
        package.bytes += size


def _clean(path: bytes) -> bytes | None:
    """A path relative to the image root with `.` and `..` resolved; None when it climbs out."""
    if path.find(b"/.") < 0 and path.find(b"//") < 0 and path[:1] != b".":  # find: see tarstream
        return path.strip(b"/")
    out: list[bytes] = []
    for part in path.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return b"/".join(out)


def _absolute_lines(data: bytes) -> list[bytes]:
    """Normalized paths from a list of absolute paths, one a line (dpkg `.list`)."""
    out = []
    for line in data.split(b"\n"):
        if line[:1] == b"/" and line.find(b"/.") < 0 and line.find(b"//") < 0:
            if len(line) > 1:
                out.append(line[1:])
        elif line:
            path = _clean(line)
            if path:
                out.append(path)
    return out


# -- captured databases ----------------------------------------------------------------------------
def _captured_at(fs: Filesystem, path: bytes) -> tuple[bytes, int, bytes] | None:
    """The visible file at a path (symlinks followed): canonical path, layer and captured bytes."""
    found = fs.resolve(path)
    if found is None:
        return None
    canonical, node = found
    if isinstance(node, Dir):
        return None
    data = fs.layers[node >> SHIFT].captured.get(node & MASK)
    return None if data is None else (canonical, node >> SHIFT, data)


def _visible_captured(fs: Filesystem) -> list[tuple[bytes, int, bytes]]:
    """Every captured file still visible in the final filesystem: (path, layer, bytes)."""
    out = []
    for number, entries in enumerate(fs.layers):
        base = number << SHIFT
        paths = entries.paths
        for index, data in entries.captured.items():
            path = paths[index]
            if fs.lookup(path) == base | index:
                out.append((path, number, data))
    return out


def _history(fs: Filesystem, paths: Iterable[bytes]) -> list[tuple[int, bytes | None]]:
    """Each layer's copy of a database file (None: the layer removed it), oldest first.

    A layer that stored a copy too large to capture is left out.
    """
    targets = set(paths)
    out: list[tuple[int, bytes | None]] = []
    for number, entries in enumerate(fs.layers):
        copy = None
        for index, data in entries.captured.items():
            if entries.paths[index] in targets:
                copy = data  # members come in order: the last copy wins
        if copy is not None:
            out.append((number, copy))
        elif _removes(entries.kinds, entries.paths, targets):
            out.append((number, None))
    return out


def _removes(kinds: bytearray, paths: list[bytes], targets: set[bytes]) -> bool:
    """Whether a layer's whiteouts or opaque folders remove one of the target paths."""
    for kind in (WHITEOUT, OPAQUE):
        index = kinds.find(kind)
        while index >= 0:
            path = paths[index]
            for target in targets:
                if (
                    (target == path and kind == WHITEOUT)
                    or (not path and kind == OPAQUE)
                    or (path and target.startswith(path + b"/"))
                ):
                    return True
            index = kinds.find(kind, index + 1)
    return False


def _since(versions: list[tuple[int, set]], key: object, fallback: int | None) -> int | None:
    """The first layer from which on every later copy of the database lists the key."""
    since = None
    for layer, keys in reversed(versions):
        if key not in keys:
            break
        since = layer
    return since if since is not None else fallback


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# -- dpkg ------------------------------------------------------------------------------------------
_DEB_FIELDS = {
    name.lower(): name
    for name in (
        "Package",
        "Status",
        "Version",
        "Architecture",
        "Depends",
        "Pre-Depends",
        "Essential",
        "Priority",
        "Provides",
        "Auto-Installed",
    )
}


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """The fields this module reads from each deb822 stanza (folded lines joined with spaces)."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.split("\n"):
        if not line or line.isspace():
            if fields:
                yield fields
                fields = {}
            key = None
            continue
        first = line[0]
        if first == " " or first == "\t":
            if key is not None:
                fields[key] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        key = _DEB_FIELDS.get(name.strip().lower()) if sep else None
        if key is not None:
            fields[key] = value.strip()
    if fields:
        yield fields


def _dep_names(value: str) -> list[str]:
    """Package names in a Depends-style field: every alternative, no versions or `:arch`."""
    return _DEP_NAMES.findall(value) if value else []


@dataclass
class _Node:
    """A dpkg or apk package while the database is read."""

    package: Package
    key: tuple[str, str]
    deps: list[str]
    provides: list[str]
    protected: bool = False  # Essential: yes or Priority: required: never build-only
    source: bytes | None = None  # the status.d file it came from


def _dpkg_node(fields: dict[str, str], need_status: bool) -> _Node | None:
    name = fields.get("Package", "")
    if not name or any(c.isspace() or c == "/" for c in name):
        return None
    status = fields.get("Status")
    if status is None:
        if need_status:
            return None
    else:
        words = status.split()
        if len(words) != 3 or words[1] != "ok" or words[2] != "installed":
            return None
    arch = fields.get("Architecture") or None
    package = Package(manager="dpkg", name=name, version=fields.get("Version", ""), arch=arch)
    deps = _dep_names(fields.get("Pre-Depends", "")) + _dep_names(fields.get("Depends", ""))
    essential = fields.get("Essential", "").lower() == "yes"
    protected = essential or fields.get("Priority", "").lower() == "required"
    return _Node(package, (name, arch or ""), deps, _dep_names(fields.get("Provides", "")), protected)


def _dpkg_keys(data: bytes, cache: dict[bytes, set]) -> set:
    keys = cache.get(data)
    if keys is None:
        keys = set()
        for fields in _stanzas(_text(data)):
            node = _dpkg_node(fields, True)
            if node is not None:
                keys.add(node.key)
        cache[data] = keys
    return keys


def _dpkg(fs: Filesystem, owner: _Owner) -> list[Package]:
    nodes: dict[tuple[str, str], _Node] = {}
    status = _captured_at(fs, DPKG_STATUS)
    if status is not None:
        canonical, layer, data = status
        for fields in _stanzas(_text(data)):
            node = _dpkg_node(fields, True)
            if node is not None and node.key not in nodes:
                nodes[node.key] = node
        cache: dict[bytes, set] = {data: set(nodes)}
        versions = [
            (number, set() if copy is None else _dpkg_keys(copy, cache))
            for number, copy in _history(fs, {DPKG_STATUS, canonical})
        ]
        for node in nodes.values():
            node.package.layer = _since(versions, node.key, layer)
    _dpkg_status_d(fs, nodes)
    if not nodes:
        return []

    info = owner.folder(DPKG_INFO)
    for node in nodes.values():
        package = node.package
        if node.source is not None:
            found = _captured_at(fs, node.source + b".md5sums")
            if found is not None:
                owner.collect(package, _md5sum_paths(found[2]))
                continue
        if info is None:
            continue
        lst = None
        names = [package.name + ".list"]
        if package.arch:
            names.insert(0, f"{package.name}:{package.arch}.list")
        for list_name in names:
            ref = info[1].children.get(list_name.encode("utf-8", "surrogateescape"))
            if ref is not None and type(ref) is not Dir:
                lst = fs.layers[ref >> SHIFT].captured.get(ref & MASK)
                if lst is not None:
                    break
        if lst is not None:
            owner.collect(package, _absolute_lines(lst))

    manual = None
    states = _captured_at(fs, APT_EXTENDED_STATES)
    if states is not None:
        auto = set()
        for fields in _stanzas(_text(states[2])):
            if fields.get("Auto-Installed", "").strip() == "1" and fields.get("Package"):
                auto.add((fields["Package"], fields.get("Architecture", "")))
                auto.add((fields["Package"], ""))
        manual = [(node.key not in auto and (node.key[0], "") not in auto) for node in nodes.values()]
    _mark_build_only(list(nodes.values()), manual)
    return [node.package for node in nodes.values()]


def _dpkg_status_d(fs: Filesystem, nodes: dict[tuple[str, str], _Node]) -> None:
    """Distroless-style `var/lib/dpkg/status.d/NAME` files, one or more stanzas each."""
    found = fs.resolve(DPKG_STATUS_D)
    if found is None or type(found[1]) is not Dir:
        return
    prefix = found[0] + b"/"
    for name, ref in sorted(found[1].children.items()):
        if type(ref) is Dir or name.endswith(b".md5sums"):
            continue
        data = fs.layers[ref >> SHIFT].captured.get(ref & MASK)
        if data is None:
            continue
        for fields in _stanzas(_text(data)):
            node = _dpkg_node(fields, False)
            if node is not None and node.key not in nodes:
                node.package.layer = ref >> SHIFT
                node.source = prefix + name
                nodes[node.key] = node


def _md5sum_paths(data: bytes) -> Iterator[bytes]:
    """Paths from an md5sums file (`HASH  path`, relative to the root)."""
    for line in data.split(b"\n"):
        parts = line.split(None, 1)
        if len(parts) == 2:
            path = _clean(parts[1].rstrip(b"\r"))
            if path:
                yield path


# -- apk -------------------------------------------------------------------------------------------
def _apk_records(text: str) -> Iterator[dict[str, object]]:
    """Stanzas of the apk installed database: P, V, A, D, p and the files (F folder, R file)."""
    record: dict[str, object] = {}
    files: list[str] = []
    folder = ""
    for line in text.split("\n"):
        if not line.strip():
            if record:
                record["files"] = files
                yield record
            record, files, folder = {}, [], ""
            continue
        tag, sep, value = line.partition(":")
        if not sep or len(tag) != 1:
            continue
        if tag == "F":
            folder = value.strip("/")
        elif tag == "R":
            if value:
                files.append(f"{folder}/{value}" if folder else value)
        elif tag in "PVADp":
            record[tag] = value.strip()
    if record:
        record["files"] = files
        yield record


def _apk_node(record: dict[str, object]) -> _Node | None:
    name = record.get("P")
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        return None
    version = record.get("V")
    arch = record.get("A")
    package = Package(
        manager="apk",
        name=name,
        version=version if isinstance(version, str) else "",
        arch=arch if isinstance(arch, str) and arch else None,
    )
    deps = [_APK_DEP.split(token, 1)[0] for token in str(record.get("D", "")).split() if token[:1] != "!"]
    provides = [_APK_DEP.split(token, 1)[0] for token in str(record.get("p", "")).split()]
    return _Node(package, (name, ""), [d for d in deps if d], [p for p in provides if p])


def _apk(fs: Filesystem, owner: _Owner) -> list[Package]:
    found = None
    for path in APK_INSTALLED:
        found = _captured_at(fs, path)
        if found is not None:
            break
    if found is None:
        return []
    canonical, layer, data = found
    cache: dict[bytes, set] = {}
    versions: list[tuple[int, set]] = []
    for number, copy in _history(fs, {*APK_INSTALLED, canonical}):
        if copy is None:
            versions.append((number, set()))
            continue
        if copy not in cache:
            nodes_of = (_apk_node(record) for record in _apk_records(_text(copy)))
            cache[copy] = {node.key for node in nodes_of if node is not None}
        versions.append((number, cache[copy]))
    nodes: dict[tuple[str, str], _Node] = {}
    for record in _apk_records(_text(data)):
        node = _apk_node(record)
        if node is None or node.key in nodes:
            continue
        node.package.layer = _since(versions, node.key, layer)
        nodes[node.key] = node
        files = record.get("files")
        if isinstance(files, list):
            paths = (_clean(p.encode("utf-8", "surrogateescape")) for p in files)
            owner.collect(node.package, (p for p in paths if p))
    manual = None
    world = _captured_at(fs, APK_WORLD)
    if world is not None:
        wanted = {_APK_DEP.split(token, 1)[0] for token in _text(world[2]).split()}
        manual = [node.key[0] in wanted for node in nodes.values()]
    _mark_build_only(list(nodes.values()), manual)
    return [node.package for node in nodes.values()]


# -- build-only marks for dpkg and apk -------------------------------------------------------------
def _mark_build_only(nodes: list[_Node], manual: list[bool] | None) -> None:
    """Mark build-only packages by name, then those only the build-only ones need.

    needed = the dependency closure (stopping at build-only packages) of every package that is
    neither build-only by name nor pulled in by one, of Essential/required packages, of those
    installed by hand (`manual`, from apt's extended_states or apk's world) and of those installed
    in an earlier layer than every build-only package that pulls them in (they came first, so they
    were wanted for themselves).
    """
    providers: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        providers.setdefault(node.package.name, []).append(i)
        for name in node.provides:
            providers.setdefault(name, []).append(i)
    deps = [node.deps for node in nodes]
    for i, node in enumerate(nodes):
        names: dict[str, None] = {}
        for dep in node.deps:
            for j in providers.get(dep, ()):
                if j != i:
                    names[nodes[j].package.name] = None
        node.package.depends = list(names)

    build: dict[int, str] = {}
    for i, node in enumerate(nodes):
        if not node.protected:
            reason = build_tool_reason(node.package.manager, node.package.name)
            if reason:
                build[i] = reason
    if not build:
        return
    pulled = _closure(build, deps, providers)
    # Walks from each build-only package stop at packages needed anyway: what lies beyond is needed too.
    kept = [i for i, node in enumerate(nodes) if node.protected or (manual is not None and manual[i])]
    reach = _reach(build, deps, providers, kept)
    first_puller: dict[int, int] = {}  # the earliest layer of a build-only package pulling it in
    for b, reached in reach.items():
        layer = nodes[b].package.layer
        if layer is not None:
            for i in reached:
                if layer < first_puller.get(i, layer + 1):
                    first_puller[i] = layer
    roots = []
    for i, node in enumerate(nodes):
        if i in build:
            continue
        layer = node.package.layer
        if (
            i not in pulled
            or node.protected
            or (manual is not None and manual[i])
            or (layer is not None and i in first_puller and layer < first_puller[i])
        ):
            roots.append(i)
    needed = _closure(roots, deps, providers, stop=build)
    for i, reason in build.items():
        nodes[i].package.build_only = True
        nodes[i].package.reason = reason
    candidates = {i for i in pulled if i not in build and i not in needed}
    pullers = _pullers(reach, set(build), candidates, [node.package.name for node in nodes])
    for i in candidates:
        names = pullers.get(i, [])
        nodes[i].package.build_only = True
        nodes[i].package.reason = "only needed by " + ", ".join(names) if names else "only needed to build"


def _closure(
    starts: Iterable[int],
    deps: list[list[str]],
    providers: dict[str, list[int]],
    stop: Iterable[int] = (),
    budget: list[int] | None = None,
) -> set[int]:
    """Packages reachable from `starts` through dependencies (each name expanded once)."""
    stopped = stop if isinstance(stop, set) else set(stop)
    seen = set(starts)
    queue = list(seen)
    names: set[str] = set()
    while queue:
        i = queue.pop()
        if budget is not None:
            budget[0] -= 1 + len(deps[i])
            if budget[0] < 0:
                break
        for name in deps[i]:
            if name in names:
                continue
            names.add(name)
            for j in providers.get(name, ()):
                if j not in seen and j not in stopped:
                    seen.add(j)
                    queue.append(j)
    return seen


def _reach(
    build: Iterable[int], deps: list[list[str]], providers: dict[str, list[int]], stop: Iterable[int] = ()
) -> dict[int, set[int]]:
    """Each build-only package's own dependency closure (within a budget of steps overall)."""
    budget = [PULLER_BUDGET]
    stopped = set(stop)
    reach: dict[int, set[int]] = {}
    for b in sorted(build):
        if budget[0] <= 0:
            break
        reach[b] = _closure([b], deps, providers, stop=stopped, budget=budget)
    return reach


def _pullers(
    reach: dict[int, set[int]], build: set[int], candidates: set[int], names: list[str]
) -> dict[int, list[str]]:
    """For each candidate, the names of the build-only packages that pull it in, topmost first.

    Topmost: not pulled in by another of them (gcc-12 before the cpp-12 it depends on); then by name.
    """
    found: dict[int, list[int]] = {}
    for b, reached in reach.items():
        if b in build:
            for i in reached & candidates:
                found.setdefault(i, []).append(b)
    inner = {b: {c for c in reached if c in build and c != b} for b, reached in reach.items()}
    out: dict[int, list[str]] = {}
    for i, pulled_by in found.items():
        below: set[int] = set()
        for b in pulled_by:
            below |= inner[b]
        top = sorted({names[b] for b in pulled_by if b not in below})
        rest = sorted({names[b] for b in pulled_by if b in below})
        out[i] = (top + rest)[:MAX_REASON_NAMES]
    return out


# -- pip -------------------------------------------------------------------------------------------
def _pip(fs: Filesystem, owner: _Owner, visible: list[tuple[bytes, int, bytes]]) -> list[Package]:
    out = []
    for path, layer, data in visible:
        folder, _, base = path.rpartition(b"/")
        if base != b"RECORD" or not folder.endswith(b".dist-info"):
            continue
        site, _, dist_info = folder.rpartition(b"/")
        name, version, depends = _pip_metadata(fs, folder, dist_info)
        if not name:
            continue
        package = Package(
            manager="pip", name=name, version=version, layer=layer, location=folder, depends=depends
        )
        owner.collect(package, _record_paths(data, site))
        out.append(package)
    return out


def _pip_metadata(fs: Filesystem, folder: bytes, dist_info: bytes) -> tuple[str, str, list[str]]:
    """Name, version and unconditional requirements from METADATA, or the folder name."""
    stem = _text(dist_info[: -len(b".dist-info")])
    name, _, version = stem.partition("-")
    depends: dict[str, None] = {}
    ref = fs.lookup(folder + b"/METADATA")
    data = None if ref is None or type(ref) is Dir else fs.layers[ref >> SHIFT].captured.get(ref & MASK)
    if data is not None:
        found_name = found_version = ""
        for line in _text(data).split("\n"):
            if not line.strip():
                break  # the body (long description) follows the headers
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key = key.strip().lower()
            value = value.strip()
            if key == "name" and not found_name:
                found_name = value
            elif key == "version" and not found_version:
                found_version = value
            elif key == "requires-dist" and "extra" not in value.partition(";")[2]:
                match = _DIST_NAME.match(value)
                if match:
                    depends[match.group()] = None
        name = found_name or name
        version = found_version or version
    return name, version, list(depends)


def _record_paths(data: bytes, site: bytes) -> Iterator[bytes]:
    """Normalized paths of a RECORD (relative to the folder holding the dist-info)."""
    reader = csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline=""))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            continue  # the reader moves on to the next line
        if not row or not row[0]:
            continue
        raw = row[0].encode("utf-8", "surrogateescape")
        path = _clean(raw) if raw[:1] == b"/" else _clean(site + b"/" + raw if site else raw)
        if path:
            yield path


# -- npm -------------------------------------------------------------------------------------------
def _node_package_folder(path: bytes) -> bytes | None:
    """`.../node_modules/NAME` or `.../node_modules/@scope/NAME` for a package.json path, else None."""
    parts = path.split(b"/")
    if len(parts) >= 3 and parts[-3] == b"node_modules" and parts[-2][:1] not in (b"@", b".", b""):
        return b"/".join(parts[:-1])
    if (
        len(parts) >= 4
        and parts[-4] == b"node_modules"
        and parts[-3][:1] == b"@"
        and len(parts[-3]) > 1
        and parts[-2][:1] not in (b".", b"")
    ):
        return b"/".join(parts[:-1])
    return None


def _json(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _dep_keys(manifest: dict, *fields: str) -> list[str]:
    names: dict[str, None] = {}
    for name in fields:
        value = manifest.get(name)
        if isinstance(value, dict):
            for key in value:
                if isinstance(key, str) and key:
                    names[key] = None
    return list(names)


def _npm(fs: Filesystem, visible: list[tuple[bytes, int, bytes]]) -> list[Package]:
    packages: list[Package] = []
    deps: list[list[str]] = []
    by_location: dict[bytes, int] = {}
    apps: list[tuple[bytes, dict]] = []
    for path, layer, data in visible:
        if path.rpartition(b"/")[2] != b"package.json":
            continue
        folder = _node_package_folder(path)
        if folder is None:
            if b"node_modules" not in path.split(b"/"):
                apps.append((path, _json(data)))
            continue
        manifest = _json(data)
        parts = folder.split(b"/")
        default = _text(b"/".join(parts[-2:]) if parts[-2][:1] == b"@" else parts[-1])
        name = manifest.get("name")
        version = manifest.get("version")
        package = Package(
            manager="npm",
            name=name if isinstance(name, str) and name else default,
            version=version if isinstance(version, str) else "",
            layer=layer,
            location=folder,
            depends=_dep_keys(manifest, "dependencies", "optionalDependencies"),
        )
        node = fs.lookup(folder)
        if type(node) is Dir:
            _tree_files(fs, folder, node, package)
        by_location[folder] = len(packages)
        packages.append(package)
        deps.append(_dep_keys(manifest, "dependencies", "optionalDependencies", "peerDependencies"))
    if not packages or not apps:
        return packages
    _npm_build_only(fs, packages, deps, by_location, apps)
    return packages


def _tree_files(fs: Filesystem, folder: bytes, node: Dir, package: Package) -> None:
    """Regular files and hard links below a package folder, skipping nested node_modules."""
    layers = fs.layers
    inode = fs.inode
    seen: set[int] = set()
    stack = [(folder, node)]
    while stack:
        prefix, directory = stack.pop()
        for name, child in directory.children.items():
            if type(child) is Dir:
                if name != b"node_modules":
                    stack.append((prefix + b"/" + name, child))
                continue
            kind = layers[child >> SHIFT].kinds[child & MASK]
            if kind != FILE and kind != HARDLINK:
                continue
            package.paths.append(prefix + b"/" + name)
            package.files += 1
            data = inode.get(child, child)
            if data not in seen:
                seen.add(data)
                entries = layers[data >> SHIFT]
                if entries.kinds[data & MASK] == FILE:
                    package.bytes += entries.sizes[data & MASK]


def _npm_resolve(fs: Filesystem, by_location: dict[bytes, int], folder: bytes, name: str) -> int | None:
    """The package a `require(name)` from `folder` finds, as Node.js looks it up."""
    wanted = name.encode("utf-8", "surrogateescape")
    if not wanted or b".." in wanted.split(b"/"):
        return None
    parts = folder.split(b"/") if folder else []
    for depth in range(len(parts), -1, -1):
        if depth and parts[depth - 1] == b"node_modules":
            continue
        base = b"/".join(parts[:depth])
        candidate = (base + b"/node_modules/" if base else b"node_modules/") + wanted
        hit = by_location.get(candidate)
        if hit is not None:
            return hit
        node = fs.lookup(candidate)
        if node is not None and type(node) is not Dir:  # a symlinked package (pnpm, workspaces)
            found = fs.resolve(candidate)
            if found is not None and found[0] in by_location:
                return by_location[found[0]]
    return None


def _npm_build_only(
    fs: Filesystem,
    packages: list[Package],
    deps: list[list[str]],
    by_location: dict[bytes, int],
    apps: list[tuple[bytes, dict]],
) -> None:
    """devDependencies of each app, and what only they need, are build-only."""
    count = len(packages)
    edges: list[list[int]] = []
    for i, package in enumerate(packages):
        targets = (_npm_resolve(fs, by_location, package.location or b"", name) for name in deps[i])
        edges.append([t for t in targets if t is not None and t != i])
    dev: dict[int, str] = {}
    app_nodes: list[int] = []
    for path, manifest in apps:
        folder = path.rpartition(b"/")[0]
        runtime = _dep_keys(manifest, "dependencies", "optionalDependencies", "peerDependencies")
        targets = (_npm_resolve(fs, by_location, folder, name) for name in runtime)
        app_nodes.append(len(edges))
        edges.append([t for t in targets if t is not None])
        for name in _dep_keys(manifest, "devDependencies"):
            target = _npm_resolve(fs, by_location, folder, name)
            if target is not None and target not in dev:
                dev[target] = f"devDependency of /{_text(path)}"
    if not dev:
        return
    # Reuse the name-based closure: each node's dependency "names" are its edge targets.
    providers = {str(i): [i] for i in range(len(edges))}
    names = [[str(t) for t in targets] for targets in edges]
    pulled = _closure(dev, names, providers)
    roots = app_nodes + [i for i in range(count) if i not in pulled]
    needed = _closure(roots, names, providers)
    for i, reason in dev.items():
        if i not in needed:
            packages[i].build_only = True
            packages[i].reason = reason
    candidates = {i for i in pulled if i not in dev and i not in needed}
    build = {i for i in dev if i not in needed}
    labels = [package.name for package in packages] + ["" for _ in apps]
    pullers = _pullers(_reach(build, names, providers), build, candidates, labels)
    for i in candidates:
        by = pullers.get(i, [])
        packages[i].build_only = True
        packages[i].reason = "only needed by " + ", ".join(by) if by else "only needed by devDependencies"
