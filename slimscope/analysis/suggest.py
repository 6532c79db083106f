"""The multi-stage rewrite: a runtime stage holding only the runtime closure, and its Dockerfile.

`plan()` sorts every file of the closure into what the runtime base already has (the base image's
layers and packages), what its package manager installs (dpkg/apk packages owning closure files that
the base lacks) and what is copied from the builder stage (`COPY --from=build`). Folders whose
contents are only partly needed are copied from a prune stage that deletes the rest (`rm -rf` in a
throw-away `FROM build` stage) when the build image has `rm`, or split into smaller copies.

`find_base()` names the runtime base: `scratch` when everything that runs is statically linked;
otherwise the image the original was built FROM: the Dockerfile's FROM line (`--dockerfile`), the
longest local image whose layers start the original's (engine), the `org.opencontainers.image.base.name`
label, or the distribution named by os-release (assuming its first layer is the base).

Untrusted names end up in the Dockerfile only in forms that cannot break it: JSON arrays for COPY,
RUN, CMD and ENTRYPOINT (ASCII-only, escaped), quoted and escaped ENV values, and comments passed
through `visible()`; anything that cannot be written safely is left out with a note.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from slimscope import __version__
from slimscope.analysis.closure import Closure, Exclusions, Need
from slimscope.analysis.core import Analysis
from slimscope.fs import IMPLIED, MASK, SHIFT, Dir, Filesystem
from slimscope.image.layer import FILE, HARDLINK, SYMLINK
from slimscope.sanitize import json_name, visible

if TYPE_CHECKING:
    from slimscope.analysis.dockerfile import Dockerfile

BUILD = "build"
PRUNE = "slimscope-prune"
GO = "slimscope-go"
GO_OUT = b"tmp/slimscope-out"
SPLIT_MAX = 4  # a partly needed folder is split into at most this many COPYs before a prune stage is used
SPLIT_LIMIT = 40  # ... or this many when the build image has no `rm`
RM_CHUNK = 100  # paths per `RUN ["rm", ...]`
_UNSAFE_COPY = re.compile(r"[*?\[\\]")  # wildcards and escapes COPY would interpret
_DEB_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+(?::[a-z0-9-]+)?$")
_APK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PORT = re.compile(r"^\d{1,5}(?:/(?:tcp|udp|sctp))?$")
_SIGNAL = re.compile(r"^(?:SIG)?[A-Z0-9+-]{1,12}$|^\d{1,2}$")


# -- the runtime base ---------------------------------------------------------------------------------------
@dataclass
class Base:
    """The image the runtime stage starts FROM."""

    name: str  # an image reference, or "scratch"
    layers: int  # how many of the original image's first layers are this base
    how: str  # "static", "dockerfile", "engine", "label", "os-release" or "none"
    manager: str | None = None  # "apt" or "apk": how the runtime stage installs packages
    packages: frozenset[str] = frozenset()  # dpkg/apk packages the base already has
    bytes: int = 0  # the base's file bytes (its layers as stored)


def find_base(
    analysis: Analysis,
    closure: Closure,
    *,
    dockerfile: Dockerfile | None = None,
    local_images: list[tuple[str, list[str]]] | None = None,
) -> Base:
    """Name the runtime base; `local_images` are (tag, diff_ids) of the engine's tagged images."""
    image = analysis.image
    count = len(image.layers)
    if closure.static:
        return Base("scratch", 0, "static")
    name, layers, how = None, 0, "none"
    if dockerfile is not None:
        from slimscope.analysis.dockerfile import align

        root = _chain_root(dockerfile)
        alignment = align(dockerfile, image.history)
        base_layers = [i for i, a in alignment.layers.items() if a is not None and a.base]
        name, how = root.base, "dockerfile"
        layers = max(base_layers) + 1 if base_layers else 0
        if root.base.lower() == "scratch":
            return Base("scratch", 0, "dockerfile")
    if name is None or not layers:
        diff_ids = [layer.diff_id for layer in image.layers]
        best = None
        for tag, ids in local_images or []:
            if 0 < len(ids) < count and diff_ids[: len(ids)] == ids and (best is None or len(ids) > best[1]):
                best = (tag, len(ids))
        if best is not None:
            if name is None:
                name, how = best[0], "engine"
            layers = best[1]
    if name is None:
        labels = image.runtime_config.get("Labels")
        label = labels.get("org.opencontainers.image.base.name") if isinstance(labels, dict) else None
        if isinstance(label, str) and label:
            name, how, layers = label, "label", layers or 1
    if name is None:
        release = _os_release(analysis.fs)
        if release is not None:
            name, how, layers = release, "os-release", layers or 1
    if name is None:
        return Base("scratch", 0, "none")
    layers = min(layers, count)
    manager, packages = _base_packages(analysis, layers)
    return Base(
        name, layers, how, manager, packages, sum(layer.size_bytes for layer in image.layers[:layers])
    )


def _chain_root(dockerfile: Dockerfile):
    stage = dockerfile.stages[-1]
    while stage.base_stage is not None and stage.base_stage < stage.index:
        stage = dockerfile.stages[stage.base_stage]
    return stage


def _os_release(fs: Filesystem) -> str | None:
    for path in (b"etc/os-release", b"usr/lib/os-release"):
        found = fs.resolve(path)
        if found is None or type(found[1]) is Dir:
            continue
        data = fs.layers[found[1] >> SHIFT].captured.get(found[1] & MASK)
        if data is None:
            continue
        fields = {}
        for line in data.decode("utf-8", "replace").splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip("\"'")
        distro = fields.get("ID", "")
        version = fields.get("VERSION_CODENAME") or fields.get("VERSION_ID", "")
        if distro == "alpine":
            version = ".".join(fields.get("VERSION_ID", "").split(".")[:2])
        if re.fullmatch(r"[a-z0-9._-]+", distro) and re.fullmatch(r"[A-Za-z0-9._-]+", version):
            return f"{distro}:{version}"
    return None


def _base_packages(analysis: Analysis, layers: int) -> tuple[str | None, frozenset[str]]:
    """The package manager the base can run and the packages of its database (its last copy)."""
    fs = analysis.fs
    if not layers:
        return None, frozenset()
    status = apk = None
    for number in range(layers):
        entries = fs.layers[number]
        for index, data in entries.captured.items():
            path = entries.paths[index]
            if path == b"var/lib/dpkg/status":
                status = data
            elif path in (b"lib/apk/db/installed", b"usr/lib/apk/db/installed"):
                apk = data
    manager = None
    if _in_base(fs, b"usr/bin/apt-get", layers):
        manager = "apt"
    elif _in_base(fs, b"sbin/apk", layers) or _in_base(fs, b"usr/sbin/apk", layers):
        manager = "apk"
    names: set[str] = set()
    if status is not None:
        for stanza in status.decode("utf-8", "replace").split("\n\n"):
            fields = dict(
                (k.strip().lower(), v.strip())
                for k, _, v in (line.partition(":") for line in stanza.split("\n") if line[:1] not in " \t")
            )
            if fields.get("package") and fields.get("status", "").endswith(" installed"):
                names.add(fields["package"])
    if apk is not None:
        for line in apk.decode("utf-8", "replace").split("\n"):
            if line.startswith("P:"):
                names.add(line[2:].strip())
    return manager, frozenset(names)


def _in_base(fs: Filesystem, path: bytes, layers: int) -> bool:
    found = fs.resolve(path)
    return found is not None and type(found[1]) is not Dir and found[1] >> SHIFT < layers


# -- package ownership --------------------------------------------------------------------------------
class Owners:
    """Which dpkg or apk package owns a path (symlinks included), from the captured databases."""

    def __init__(self, analysis: Analysis) -> None:
        self.fs = analysis.fs
        self.by_path: dict[bytes, str] = {}
        self._folders: dict[bytes, bytes | None] = {}
        info = self.fs.resolve(b"var/lib/dpkg/info")
        for package in analysis.packages:
            if package.manager == "dpkg" and info is not None and type(info[1]) is Dir:
                names = [f"{package.name}:{package.arch}.list", f"{package.name}.list"]
                for list_name in names:
                    ref = info[1].children.get(list_name.encode("utf-8", "surrogateescape"))
                    if ref is None or type(ref) is Dir:
                        continue
                    data = self.fs.layers[ref >> SHIFT].captured.get(ref & MASK)
                    if data is not None:
                        for line in data.split(b"\n"):
                            if line.startswith(b"/") and len(line) > 1:
                                self._add(line, package.name)
                        break
            elif package.manager in ("dpkg", "apk"):
                for path in package.paths:
                    self.by_path.setdefault(path, package.name)
        self._apk_links(analysis)

    def _apk_links(self, analysis: Analysis) -> None:
        """apk lists symlinks too (`R:` lines); Package.paths holds only regular files."""
        for path in (b"lib/apk/db/installed", b"usr/lib/apk/db/installed"):
            found = self.fs.resolve(path)
            if found is None or type(found[1]) is Dir:
                continue
            data = self.fs.layers[found[1] >> SHIFT].captured.get(found[1] & MASK)
            if data is None:
                continue
            name, folder = "", b""
            for line in data.split(b"\n"):
                if line.startswith(b"P:"):
                    name = line[2:].decode("utf-8", "replace").strip()
                elif line.startswith(b"F:"):
                    folder = line[2:].strip(b"/")
                elif line.startswith(b"R:") and name:
                    self._add(b"/" + folder + b"/" + line[2:], name)
            return

    def _add(self, line: bytes, name: str) -> None:
        key = self.key(line)
        if key is not None:
            self.by_path.setdefault(key, name)

    def key(self, path: bytes) -> bytes | None:
        """A path with its folder resolved (the last component kept as is, even if a symlink)."""
        parent, _, leaf = path.strip(b"/").rpartition(b"/")
        folder = self._folders.get(parent, b"\0")
        if folder == b"\0":
            found = self.fs.resolve(parent) if parent else (b"", self.fs.root)
            folder = found[0] if found is not None and type(found[1]) is Dir else None
            self._folders[parent] = folder
        if folder is None or not leaf:
            return None
        return folder + b"/" + leaf if folder else leaf

    def owner(self, path: bytes) -> str | None:
        """The package owning a path, if any."""
        key = self.key(path)
        return self.by_path.get(key) if key is not None else None


# -- the plan ------------------------------------------------------------------------------------------
@dataclass
class Copy:
    """One `COPY --from=STAGE SRC DEST`."""

    stage: str
    src: bytes
    dest: bytes
    bytes: int
    files: int
    reason: str


@dataclass
class Suggestion:
    """The runtime stage and the Dockerfile that builds it."""

    image: str  # the analysed image, as the user named it
    build_ref: str  # what the builder stage is FROM (without --dockerfile)
    base: Base
    closure: Closure
    copies: list[Copy] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)  # to install in the runtime stage
    package_bytes: int = 0  # those packages and the dependencies the base lacks, as installed here
    links: list[tuple[bytes, bytes]] = field(default_factory=list)  # (location, target) made with ln -s
    prune: list[bytes] = field(default_factory=list)  # deleted in the prune stage
    coverage: dict[bytes, str] = field(default_factory=dict)  # closure file -> "base", "package X", "copy"
    ldconfig: bool = False
    dockerfile: str = ""
    estimated_bytes: int = 0
    original_bytes: int = 0
    build_stage: str = BUILD
    notes: list[str] = field(default_factory=list)
    verification: dict[str, Any] | None = None
    read_stats: Any = None  # what reading file contents again cost (`inspect.ReadStats`)

    @property
    def copy_bytes(self) -> int:
        """Bytes copied from the builder stage."""
        return sum(c.bytes for c in self.copies)

    def provides(self, path: bytes) -> str | None:
        """How the runtime stage provides a closure file ("base", "package NAME", "copy"), or None."""
        return self.coverage.get(path.strip(b"/"))

    def to_json(self) -> dict[str, Any]:
        """The `suggestion` object of the JSON document."""
        return {
            "base": self.base.name,
            "base_source": self.base.how,
            "base_layers": self.base.layers,
            "runtime": self.closure.runtime,
            "command": self.closure.argv,
            "copies": [
                {
                    "from": c.stage,
                    "src": _abs(c.src),
                    "dest": _abs(c.dest),
                    "bytes": c.bytes,
                    "files": c.files,
                    "reason": c.reason,
                }
                for c in self.copies
            ],
            "packages": list(self.packages),
            "package_manager": self.base.manager,
            "package_bytes": self.package_bytes,
            "links": [{"path": _abs(a), "target": _text(t)} for a, t in self.links],
            "prune": [_abs(p) for p in self.prune],
            "libraries": [
                {"name": name, "needed_by": needed_by, "path": path}
                for name, needed_by, path in sorted(
                    {
                        (lib.name, _abs(lib.needed_by), _abs(lib.at) if lib.at else None)
                        for lib in self.closure.libraries
                    },
                    key=lambda x: (x[1], x[0]),
                )
            ],
            "missing": list(self.closure.missing),
            "notes": list(self.closure.notes) + list(self.notes),
            "dockerfile": self.dockerfile,
            "original_bytes": self.original_bytes,
            "estimated_bytes": self.estimated_bytes,
            "verification": self.verification,
        }


def suggestion_section(analysis: Analysis) -> dict[str, Any]:
    """`{"suggestion": {...}}` when a suggestion was computed for this analysis, else `{}`."""
    suggestion = analysis.extras.get("suggestion")
    return {"suggestion": suggestion.to_json()} if isinstance(suggestion, Suggestion) else {}


def plan(
    analysis: Analysis,
    closure: Closure,
    base: Base,
    *,
    image: str,
    build_ref: str | None = None,
    dockerfile: Dockerfile | None = None,
    dockerfile_text: str | None = None,
) -> Suggestion:
    """Sort the closure into base, packages and copies, and write the Dockerfile."""
    suggestion = Suggestion(
        image=image,
        build_ref=build_ref or image,
        base=base,
        closure=closure,
        original_bytes=analysis.summary.image_bytes,
    )
    if dockerfile is not None:
        suggestion.build_stage = _build_stage_name(dockerfile)
    _Planner(analysis, suggestion).run()
    suggestion.dockerfile = render_dockerfile(analysis, suggestion, dockerfile, dockerfile_text)
    analysis.extras["suggestion"] = suggestion
    return suggestion


class _Planner:
    def __init__(self, analysis: Analysis, suggestion: Suggestion) -> None:
        self.analysis = analysis
        self.fs = analysis.fs
        self.s = suggestion
        self.base = suggestion.base
        self.scratch = suggestion.base.name == "scratch"
        self.owners = Owners(analysis)
        self.exclusions = Exclusions(analysis)
        self.selected: set[str] = set()
        self.counted: set[int] = set()  # data refs whose bytes are already counted
        self.explicit: set[bytes] = set()
        self.can_rm = _has_program(self.fs, analysis, "rm")

    def run(self) -> None:
        s = self.s
        needs = sorted(s.closure.needs.values(), key=lambda n: n.canonical)
        dirs = [n for n in needs if n.kind == "dir"]
        roots: list[Need] = []
        for need in dirs:
            outer = next((i for i, r in enumerate(roots) if _below(need.canonical, r.canonical)), None)
            if outer is None:
                roots.append(replace(need))
            else:  # a folder inside another: one copy, the inner folder's skipped parts left out too
                roots[outer] = replace(roots[outer], skip=roots[outer].skip | need.skip)
        self.explicit = {n.canonical for n in needs if n.kind == "file"}
        for need in needs:
            if need.kind == "file":
                self._file(need, roots)
        for need in roots:
            self._folder(need)
        for library in s.closure.libraries:  # the names libraries are found by, too
            if library.at is not None and library.at not in s.coverage:
                found = self.fs.resolve(library.at)
                if found is not None and found[0] in s.coverage:
                    s.coverage[library.at] = s.coverage[found[0]]
        if self.base.manager is not None and self.selected:
            s.packages = sorted(self.selected)
            s.package_bytes = self._package_bytes()
        s.estimated_bytes = self.base.bytes + s.package_bytes + s.copy_bytes
        if not self.scratch:
            conf = _conf_dirs_of(s.closure)
            s.ldconfig = any(
                c.dest.rpartition(b"/")[0] in conf for c in s.copies if b".so" in c.dest.rpartition(b"/")[2]
            )

    # -- classification ----------------------------------------------------------------------------
    def status(self, path: bytes, node: int | Dir) -> tuple[str, str | None]:
        """("base" | "package" | "copy", package name) for a file or symlink of the closure."""
        ref = node.ref if type(node) is Dir else node
        if ref != IMPLIED and ref >> SHIFT < self.base.layers:
            return "base", None
        owner = self.owners.owner(path)
        if owner is not None and self.base.manager is not None:
            if owner in self.base.packages:
                return "base", None
            return "package", owner
        return "copy", None

    def _size(self, node: int) -> int:
        data = self.fs.data_ref(node)
        entries = self.fs.layers[data >> SHIFT]
        if entries.kinds[data & MASK] != FILE or data in self.counted:
            return 0
        self.counted.add(data)
        return entries.sizes[data & MASK]

    # -- explicit files ------------------------------------------------------------------------------
    def _file(self, need, roots) -> None:
        fs = self.fs
        s = self.s
        node = fs.lookup(need.canonical)
        if node is None or type(node) is Dir:
            return
        rebuild = next((r for r in s.closure.rebuild if r.program == need.canonical), None)
        if rebuild is not None:
            name = need.canonical.rpartition(b"/")[2]
            reason = f"{need.reason}, built again without cgo and symbol tables"
            s.copies.append(Copy(GO, GO_OUT + b"/" + name, need.at, rebuild.bytes, 1, reason))
            s.coverage[need.canonical] = s.coverage[need.at] = "rebuild"
            return
        state, owner = self.status(need.canonical, node)
        covered = "copy"
        if state == "package" and owner is not None:
            self.selected.add(owner)
            covered = f"package {owner}"
        elif state == "base":
            covered = "base"
        s.coverage[need.canonical] = covered
        if need.at != need.canonical:
            s.coverage.setdefault(need.at, covered)
        inside = any(_below(need.canonical, r.canonical) for r in roots)
        if self.scratch:
            if state == "copy" and not inside:
                self._copy(BUILD, need.at, need.at, [node], need.reason)
            elif state == "copy" and need.at != need.canonical:
                self._copy(BUILD, need.at, need.at, [], need.reason)
            return
        if state == "copy" and not inside:
            self._copy(BUILD, need.canonical, need.canonical, [node], need.reason)
        for location, target in need.links:
            link = fs.lookup(location)
            if link is None or type(link) is Dir:
                continue
            if state != "copy" and (
                location.startswith(b"etc/alternatives/") or target.startswith(b"/etc/alternatives/")
            ):
                continue  # update-alternatives links: the package's maintainer scripts make them
            link_state, link_owner = self.status(location, link)
            if link_state == "package" and link_owner is not None:
                self.selected.add(link_owner)
            elif (
                link_state == "copy"
                and not any(_below(location, r.canonical) for r in roots)
                and (location, target) not in s.links
            ):
                s.links.append((location, target))

    def _copy(self, stage: str, src: bytes, dest: bytes, nodes: list, reason: str) -> None:
        if not _copy_safe(src) or not _copy_safe(dest):
            folder = src.rpartition(b"/")[0]
            self.s.notes.append(f"{_show(src)} cannot be named in COPY; its folder is copied instead")
            node = self.fs.lookup(folder)
            if not folder or type(node) is not Dir or not _copy_safe(folder):
                return
            src = dest = folder
            nodes = [child for _, child in _files_below(node)]
        size = sum(self._size(n) for n in nodes if type(n) is not Dir)
        if any(c.src == src and c.dest == dest for c in self.s.copies):
            return
        self.s.copies.append(
            Copy(stage if stage != BUILD else self.s.build_stage, src, dest, size, len(nodes), reason)
        )

    # -- folders ---------------------------------------------------------------------------------------
    def _folder(self, need) -> None:
        node = self.fs.lookup(need.canonical)
        if type(node) is not Dir:
            return
        tree = self._tree(need, need.canonical, node, 0)
        keep, size, files, split, prune = tree
        if keep == "none":
            return
        s = self.s
        stage = self.s.build_stage
        if keep == "all":
            s.copies.append(Copy(stage, need.canonical, need.canonical, size, files, need.reason))
            return
        safe = all(_copy_safe(p) for p, _, _, _ in split)
        if len(split) <= SPLIT_MAX and safe:
            self._split(split, need.reason)
        elif self.can_rm:
            s.copies.append(Copy(PRUNE, need.canonical, need.canonical, size, files, need.reason))
            removable = [p for p in prune if _json_safe(p)]
            s.prune.extend(removable)
            if len(removable) < len(prune):
                s.notes.append(
                    f"{len(prune) - len(removable)} paths under {_show(need.canonical)} "
                    "have names rm cannot be given; they ship"
                )
        elif len(split) <= SPLIT_LIMIT and safe:
            self._split(split, need.reason)
        else:
            s.copies.append(Copy(stage, need.canonical, need.canonical, size, files, need.reason))
            s.notes.append(
                f"{_show(need.canonical)} is copied whole, with parts the runtime does not need: "
                "the build image has no rm"
            )

    def _split(self, split: list, reason: str) -> None:
        for path, kind, size, files in split:
            if kind == "link" and not self.scratch:
                link = self.fs.lookup(path)
                entries = self.fs.layers[link >> SHIFT]
                self.s.links.append((path, entries.links.get(link & MASK, b"")))
                continue
            self.s.copies.append(Copy(self.s.build_stage, path, path, size, files, reason))

    def _tree(self, need, path: bytes, node: Dir, depth: int):
        """(keep: "all"|"some"|"none", kept bytes, kept files, split cover, prune list) of a folder."""
        fs = self.fs
        all_keep, any_keep = True, False
        size = files = 0
        split: list[tuple[bytes, str, int, int]] = []
        prune: list[bytes] = []
        for name, child in sorted(node.children.items()):
            child_path = path + b"/" + name
            category = None if child_path in self.explicit else self.exclusions.category(child_path)
            dropped = child_path in need.skip or category is not None
            if category == "secret":
                self.s.notes.append(
                    f"{_show(child_path)} is left out: a possible secret (provide it at run time)"
                )
            if type(child) is Dir:
                if dropped:
                    all_keep = False
                    prune.append(child_path)
                    continue
                if depth > 200:
                    keep, csize, cfiles, csplit, cprune = "all", 0, 0, [(child_path, "dir", 0, 0)], []
                else:
                    keep, csize, cfiles, csplit, cprune = self._tree(need, child_path, child, depth + 1)
                if keep == "all":
                    any_keep = True
                    split.append((child_path, "dir", csize, cfiles))
                elif keep == "some":
                    any_keep, all_keep = True, False
                    split.extend(csplit)
                    prune.extend(cprune)
                else:
                    all_keep = False
                    prune.append(child_path)
                size += csize
                files += cfiles
                continue
            entries = fs.layers[child >> SHIFT]
            kind = entries.kinds[child & MASK]
            if dropped or kind not in (FILE, HARDLINK, SYMLINK):
                all_keep = False
                prune.append(child_path)
                continue
            state, owner = self.status(child_path, child)
            if state == "package" and owner is not None:
                self.selected.add(owner)
            if state == "copy" and kind == SYMLINK and self._points_to_dropped(need, child_path):
                state = "dropped target"
            if state != "copy":
                all_keep = False
                prune.append(child_path)
                continue
            any_keep = True
            csize = self._size(child) if kind != SYMLINK else 0
            size += csize
            files += 1
            split.append((child_path, "link" if kind == SYMLINK else "file", csize, 1))
        if all_keep:
            return ("all" if any_keep or not node.children else "none"), size, files, [], []
        return ("some" if any_keep else "none"), size, files, split, prune

    def _points_to_dropped(self, need, path: bytes) -> bool:
        """Whether a symlink inside a copied folder points into a part that does not ship."""
        found = self.fs.resolve(path)
        if found is None:
            return False  # dangling already: copied as is
        target = found[0]
        while target:
            if target in need.skip or (target not in self.explicit and self.exclusions.category(target)):
                return True
            target = target.rpartition(b"/")[0]
        return False

    # -- packages -------------------------------------------------------------------------------------
    def _package_bytes(self) -> int:
        """The selected packages and every dependency the base lacks, as installed in the image."""
        by_name = {p.name: p for p in self.analysis.packages if p.manager in ("dpkg", "apk")}
        seen: set[str] = set()
        stack = [n for n in self.selected if n in by_name]
        total = 0
        while stack:
            name = stack.pop()
            if name in seen or name in self.base.packages:
                continue
            seen.add(name)
            package = by_name.get(name)
            if package is None:
                continue
            total += package.bytes
            stack.extend(d for d in package.depends if d in by_name and d not in seen)
        return total


def _build_stage_name(dockerfile: Dockerfile) -> str:
    final = dockerfile.stages[-1]
    if final.name:
        return final.name
    names = {s.name.lower() for s in dockerfile.stages if s.name}
    return BUILD if BUILD not in names else "slimscope-build"


def _has_program(fs: Filesystem, analysis: Analysis, name: str) -> bool:
    from slimscope.analysis.core import image_env

    for folder in image_env(analysis.image).get("PATH", "/usr/bin:/bin").split(":"):
        found = fs.resolve(folder.encode("utf-8", "surrogateescape").strip(b"/") + b"/" + name.encode())
        if found is not None and type(found[1]) is not Dir:
            return True
    return False


def _conf_dirs_of(closure: Closure) -> set[bytes]:
    """Library folders that only ld.so.cache indexes (not the loader's defaults)."""
    defaults = {b"lib", b"usr/lib", b"lib64", b"usr/lib64"}
    found = set()
    for lib in closure.libraries:
        if lib.at is not None:
            folder = lib.at.rpartition(b"/")[0]
            if folder not in defaults and not folder.endswith(b"-linux-gnu"):
                found.add(folder)
    return found


def _files_below(node: Dir) -> list[tuple[bytes, int]]:
    """The non-folder nodes below a folder."""
    out = []
    stack = [node]
    while stack:
        for name, child in stack.pop().children.items():
            if type(child) is Dir:
                stack.append(child)
            else:
                out.append((name, child))
    return out


def _below(path: bytes, folder: bytes) -> bool:
    return path == folder or path.startswith(folder + b"/") or not folder


def _copy_safe(path: bytes) -> bool:
    try:
        text = path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return not _UNSAFE_COPY.search(text) and visible(text) == text


def _json_safe(path: bytes) -> bool:
    try:
        path.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _abs(path: bytes) -> str:
    return "/" + json_name(path)["path"]


def _text(path: bytes) -> str:
    return json_name(path)["path"]


def _show(path: bytes) -> str:
    return "/" + visible(path)


# -- the Dockerfile ----------------------------------------------------------------------------------------
def _json_words(words: list[str]) -> str:
    return json.dumps(words, ensure_ascii=True)


def _comment(text: str) -> str:
    """A one-line comment from untrusted text."""
    return "# " + visible(text)


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _env_value(value: str) -> str | None:
    """A quoted ENV value, or None when it cannot be written on one Dockerfile line."""
    bare = value.replace("\\", "")
    if visible(bare) != bare:
        return None  # newlines, control or invisible formatting characters
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _plain(value: str) -> bool:
    """Text that may appear as is in WORKDIR, USER, FROM: printable, no quotes, escapes or variables."""
    return bool(value) and visible(value) == value and not re.search(r"[\s\"'\\$`]", value)


def render_dockerfile(
    analysis: Analysis, suggestion: Suggestion, dockerfile: Dockerfile | None, text: str | None
) -> str:
    """The suggested Dockerfile: the builder stage(s), an optional prune stage, the runtime stage."""
    s = suggestion
    image = analysis.image
    directives, escape = _directives(text) if dockerfile is not None and text is not None else ([], "\\")
    out: list[str] = [
        *directives,
        f"# Generated by slimscope {__version__} from {visible(s.image)}: a runtime stage with only what",
        "# the image's command needs (the runtime closure); the build stays in the builder stage.",
        f"# Estimated size {_size(s.estimated_bytes)} (the original: {_size(s.original_bytes)}).",
        "",
    ]
    if dockerfile is not None and text is not None:
        out += _builder_from_dockerfile(dockerfile, text, s.build_stage)
    else:
        ref = s.build_ref
        if not _plain(ref):
            ref = image.id
        out.append(f"FROM {ref} AS {s.build_stage}")
    if s.prune:
        out += [
            "",
            "# Throw-away stage: the parts of copied folders the runtime does not need are removed here.",
        ]
        out.append(f"FROM {s.build_stage} AS {PRUNE}")
        paths = ["/" + p.decode("utf-8") for p in s.prune]
        for start in range(0, len(paths), RM_CHUNK):
            out.append("RUN " + _json_words(["rm", "-rf", "--", *paths[start : start + RM_CHUNK]]))
    out += _go_stage(s)
    out.append("")
    base = s.base
    why = {
        "static": "everything that runs is statically linked",
        "dockerfile": "the base of the Dockerfile's final stage",
        "engine": "the local image whose layers the original starts with",
        "label": "the image's org.opencontainers.image.base.name label",
        "os-release": "the distribution in /etc/os-release (assumed to be the first layer)",
        "none": "no base image could be found",
    }[base.how]
    out.append(_comment(f"Runtime: {why}."))
    base_name = base.name if base.name == "scratch" or _plain(base.name) or "${" in base.name else None
    if base_name is None:
        s.notes.append(f"the base image name {base.name!r} cannot be written safely; using scratch")
        base_name = "scratch"
    out.append(f"FROM {base_name}")
    if s.packages:
        out += _install(s, escape)
    for copy in s.copies:
        out.append(_comment(f"{copy.reason} ({_size(copy.bytes)})"))
        out.append(
            f"COPY --from={copy.stage} "
            + _json_words(
                [
                    "/" + copy.src.decode("utf-8", "surrogateescape"),
                    "/" + copy.dest.decode("utf-8", "surrogateescape"),
                ]
            )
        )
    links = [(a, t) for a, t in s.links if _copy_safe(a) and _copy_safe(t)]
    if len(links) < len(s.links):
        s.notes.append(
            f"{len(s.links) - len(links)} symlinks have names that cannot be written safely; left out"
        )
    for location, target in links:
        folder = "/" + location.rpartition(b"/")[0].decode()
        out.append(
            "RUN "
            + _json_words(
                [
                    "/bin/sh",
                    "-c",
                    'mkdir -p "$1" && ln -sfn "$2" "$3"',
                    "sh",
                    folder,
                    target.decode(),
                    "/" + location.decode(),
                ]
            )
        )
    if s.ldconfig:
        out.append("RUN " + _json_words(["ldconfig"]))
    out += _config_lines(image.runtime_config, s)
    return "\n".join(out) + "\n"


def _go_stage(s: Suggestion) -> list[str]:
    """The stage that builds Go programs again: static (no cgo), without symbol tables."""
    rebuilds = [r for r in s.closure.rebuild if _plain("/" + r.module_dir.decode("utf-8", "replace"))]
    if not rebuilds:
        return []
    out = [
        "",
        "# Throw-away stage: the Go program is built again without cgo (static) and without symbol tables",
        "# and DWARF (-s -w), which it does not need to run.",
        f"FROM {s.build_stage} AS {GO}",
        "ENV CGO_ENABLED=0",
    ]
    for rebuild in rebuilds:
        name = rebuild.program.rpartition(b"/")[2].decode("utf-8", "surrogateescape")
        words = [
            "/" + rebuild.tool.decode("utf-8", "surrogateescape"),
            "build",
            "-trimpath",
            "-buildvcs=false",
        ]
        words.append(f"-ldflags={rebuild.ldflags}")
        if rebuild.tags:
            words.append(f"-tags={rebuild.tags}")
        words += ["-o", "/" + (GO_OUT.decode() + "/" + name), rebuild.package]
        out.append("WORKDIR /" + rebuild.module_dir.decode("utf-8"))
        out.append("RUN " + _json_words(words))
    return out


def _builder_from_dockerfile(dockerfile: Dockerfile, text: str, stage_name: str) -> list[str]:
    """The user's Dockerfile as the builder stage(s); the final stage gets `AS <name>` if unnamed."""
    lines = text.removeprefix("\ufeff").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    directives = len(_directives(text)[0])
    lines = ["#" for _ in range(directives)] + lines[directives:]  # moved to the top; line numbers kept
    final = dockerfile.stages[-1]
    if final.name is None:
        end = final.line - 1
        while end < len(lines) - 1 and lines[end].rstrip().endswith("\\"):
            end += 1
        lines[end] = lines[end].rstrip() + f" AS {stage_name}"
    return ["# The build, as written in " + visible(dockerfile.path) + ":", *lines]


def _directives(text: str) -> tuple[list[str], str]:
    """The parser directives (`# syntax=`, `# escape=`) heading a Dockerfile, and its escape character."""
    found: list[str] = []
    escape = "\\"
    for line in text.removeprefix("\ufeff").split("\n"):
        match = re.match(r"^#\s*(syntax|escape|check)\s*=\s*(\S+)\s*$", line, re.IGNORECASE)
        if match is None:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("`", "\\"):
            escape = match.group(2)
        found.append(line)
    return found, escape


def _install(s: Suggestion, escape: str = "\\") -> list[str]:
    manager = s.base.manager
    valid = _DEB_NAME if manager == "apt" else _APK_NAME
    names = [n for n in s.packages if valid.match(n)]
    if len(names) < len(s.packages):
        s.notes.append(f"{len(s.packages) - len(names)} package names are not valid and were left out")
    out = [
        _comment(
            "Runtime packages owning files of the closure that the base lacks "
            f"(about {_size(s.package_bytes)})"
        )
    ]
    rows = [" ".join(names[i : i + 6]) for i in range(0, len(names), 6)]
    if manager == "apt":
        out.append(f"RUN apt-get update {escape}")
        out.append(f" && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {escape}")
        out += [f"      {row} {escape}" for row in rows]
        out.append(" && apt-get clean && rm -rf /var/lib/apt/lists/*")
    else:
        out.append(f"RUN apk add --no-cache {escape}")
        out += [f"      {row} {escape}" for row in rows[:-1]]
        out.append(f"      {rows[-1]}" if rows else "")
    return out


def _config_lines(config: dict[str, Any], s: Suggestion) -> list[str]:
    """ENV, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK, ENTRYPOINT and CMD of the original."""
    out: list[str] = []
    for item in config.get("Env") or []:
        if not isinstance(item, str) or "=" not in item:
            continue
        key, _, value = item.partition("=")
        quoted = _env_value(value)
        if not _ENV_KEY.match(key) or quoted is None:
            s.notes.append(f"ENV {visible(key)} is not reproduced: it cannot be written on one line")
            continue
        out.append(f"ENV {key}={quoted}")
    workdir = config.get("WorkingDir")
    if isinstance(workdir, str) and workdir and workdir != "/":
        if _plain(workdir):
            out.append(f"WORKDIR {workdir}")
        else:
            s.notes.append(f"WORKDIR {visible(workdir)} is not reproduced: it cannot be written safely")
    user = config.get("User")
    if isinstance(user, str) and user:
        if _plain(user):
            out.append(f"USER {user}")
        else:
            s.notes.append(f"USER {visible(user)} is not reproduced: it cannot be written safely")
    ports = config.get("ExposedPorts")
    if isinstance(ports, dict):
        valid = sorted(p for p in ports if isinstance(p, str) and _PORT.match(p))
        if valid:
            out.append("EXPOSE " + " ".join(valid))
    volumes = config.get("Volumes")
    if isinstance(volumes, dict) and volumes:
        out.append("VOLUME " + _json_words(sorted(v for v in volumes if isinstance(v, str))))
    signal = config.get("StopSignal")
    if isinstance(signal, str) and signal and _SIGNAL.match(signal):
        out.append(f"STOPSIGNAL {signal}")
    health = config.get("Healthcheck")
    if isinstance(health, dict):
        line = _healthcheck(health)
        if line:
            out.append(line)
    entrypoint = _str_list(config.get("Entrypoint"))
    cmd = _str_list(config.get("Cmd"))
    if entrypoint:
        out.append("ENTRYPOINT " + _json_words(entrypoint))
    if cmd:
        out.append("CMD " + _json_words(cmd))
    return out


def _healthcheck(health: dict[str, Any]) -> str | None:
    test = _str_list(health.get("Test"))
    if not test:
        return None
    if test[0] == "NONE":
        return "HEALTHCHECK NONE"
    options = []
    for key, flag in (("Interval", "interval"), ("Timeout", "timeout"), ("StartPeriod", "start-period")):
        value = health.get(key)
        if isinstance(value, int) and value > 0:
            options.append(f"--{flag}={value // 1_000_000}ms")
    retries = health.get("Retries")
    if isinstance(retries, int) and retries > 0:
        options.append(f"--retries={retries}")
    if test[0] == "CMD-SHELL" and len(test) > 1:
        words = ["/bin/sh", "-c", test[1]]
    elif test[0] == "CMD":
        words = test[1:]
    else:
        return None
    return " ".join(["HEALTHCHECK", *options, "CMD", _json_words(words)])


def _str_list(value: Any) -> list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return []
