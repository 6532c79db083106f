"""The runtime closure: what the image's ENTRYPOINT/CMD needs at run time, found statically.

Starting from the command (resolved through PATH and WORKDIR, symlinks followed and recorded), the
closure follows what a running container would load:

* shebang scripts run their interpreter (`#!/usr/bin/env python3` too); `env`, `tini`, `dumb-init`,
  `gosu` and `su-exec` run the rest of their arguments; `sh -c "..."` runs each command of the string;
* ELF files load their interpreter (PT_INTERP) and their DT_NEEDED libraries, found as glibc's (or musl's)
  loader finds them: DT_RPATH (of the object and its loaders, unless it has DT_RUNPATH),
  LD_LIBRARY_PATH, DT_RUNPATH (`$ORIGIN`, `$LIB`, `$PLATFORM` expanded), the ld.so.conf folders, then
  the default folders; libraries of another class or machine are passed over; recursively;
* Python: the virtualenv the interpreter runs in (pyvenv.cfg), or the standard library and the
  site-packages folders in use (and PYTHONPATH, the user site), and the app's code (the script's
  package, `-m` modules and `module:object` arguments found under WORKDIR);
* Node: the script, its package.json, the build output folder and the production dependencies
  (node_modules without the packages only devDependencies need);
* Java: the jars (`-jar`, the manifest's Class-Path, `-cp`, CLASSPATH) and a JRE (the package that
  owns `bin/java`, or the Java home without the JDK's build parts);
* static binaries (Go): the binary, plus CA certificates, the TZ zone and /etc/passwd for USER when
  the image has them.

Contents come from `fetch(refs) -> {ref: FileInfo}` (see `slimscope.image.inspect`). The closure is
worked out again from scratch in rounds: each round asks for the contents it lacked, and the first
round already asks for every library in the loader's folders and every native extension in the
folders it needs, so most images take one read of their blobs.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from slimscope.analysis.core import Analysis, image_env
from slimscope.analysis.rules import load_catalog
from slimscope.fs import MASK, SHIFT, Dir, Filesystem
from slimscope.image.inspect import ElfInfo, FileInfo
from slimscope.image.layer import FILE, HARDLINK, SYMLINK

Fetch = Callable[[set[int]], dict[int, FileInfo]]

EXCLUDED = ("toolchain", "cache", "source", "docs", "secret")  # finding categories a runtime leaves out
MAX_ROUNDS = 6
MAX_DEPTH = 12  # commands running commands
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "busybox"})
_WRAPPERS = frozenset({"tini", "tini-static", "dumb-init", "catatonit"})
_USER_SWITCHERS = frozenset({"gosu", "su-exec"})
_INTERPRETER_NAMES = ("python3", "python", "node", "nodejs", "java", "bash", "sh", "env", "perl", "ruby")
_PYTHON = re.compile(r"(?:python|pypy)(\d+(?:\.\d+)?)?(?:[dmu]*)$")
_PY_VERSION = re.compile(r"python(\d+\.\d+)$")
# Parts of the standard library an app does not run (Debian even packages most of them apart).
_PY_OPTIONAL = (b"ensurepip", b"lib2to3", b"idlelib", b"tkinter", b"turtledemo", b"turtle.py", b"distutils")
_PY_ARG_OPTIONS = frozenset({"-W", "-X", "-Q"})
_NODE_ARG_OPTIONS = frozenset(
    {"-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file", "-C", "--conditions"}
)
_JAVA_ARG_OPTIONS = frozenset({"--add-opens", "--add-exports", "--add-reads", "--add-modules", "-d"})
_MODULE_SPEC = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?::[A-Za-z_][\w.()]*)?$")
# Libraries a Go program links when cgo only serves the resolver and user lookups.
_LIBC = frozenset({"libc.so.6", "libpthread.so.0", "libdl.so.2", "libm.so.6", "libresolv.so.2", "librt.so.1"})
_PLAIN = re.compile(rb"[A-Za-z0-9._/+@-]+")  # paths written as they are in the rebuild stage
_GO_TREES = re.compile(rb"(?:^|/)pkg/mod/|^usr/(?:local/)?(?:lib|share)/go(?:-[0-9.]+)?/|^usr/local/go/")
_TRIPLETS = {
    "EM_X86_64": "x86_64-linux-gnu",
    "EM_AARCH64": "aarch64-linux-gnu",
    "EM_386": "i386-linux-gnu",
    "EM_ARM": "arm-linux-gnueabihf",
    "EM_PPC64": "powerpc64le-linux-gnu",
    "EM_S390": "s390x-linux-gnu",
    "EM_RISCV": "riscv64-linux-gnu",
}
_PLATFORMS = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i686", "EM_ARM": "armv7l"}
_MUSL_ARCH = {"EM_X86_64": "x86_64", "EM_AARCH64": "aarch64", "EM_386": "i386", "EM_ARM": "armhf"}


@dataclass
class Need:
    """One thing the runtime needs: a file (with the links that lead to it) or a whole folder."""

    at: bytes  # the path as the program or loader opens it (normalized, symlinks not resolved)
    canonical: bytes  # where it really is (symlinks resolved)
    kind: str  # "file" or "dir"
    reason: str
    explicit: bool = True  # named by the closure itself: findings never drop it
    links: tuple[tuple[bytes, bytes], ...] = ()  # symlinks followed on the way: (location, target)
    skip: frozenset[bytes] = frozenset()  # dirs: paths below that are not needed


@dataclass
class Library:
    """A DT_NEEDED entry and where the loader finds it."""

    name: str
    needed_by: bytes
    at: bytes | None  # None: not found


@dataclass
class GoRebuild:
    """A Go program to build again without cgo and symbol tables (`CGO_ENABLED=0 go build -ldflags=-s -w`).

    Chosen when the build image has the go command and the main module's source, and the program needs
    no library but the C library (cgo only for the resolver and user lookups): the result is static.
    """

    program: bytes  # the binary (canonical path)
    at: bytes  # where the command runs it from
    module_dir: bytes  # the folder of the main module's go.mod
    package: str  # what to build, relative to module_dir ("." or "./cmd/x")
    tool: bytes  # the go command
    ldflags: str  # `-s -w` plus the original -ldflags
    tags: str | None
    bytes: int  # the estimated size of the new binary
    version: str  # the toolchain that built the original


@dataclass
class Closure:
    """What the image's command needs at run time."""

    argv: list[str]
    workdir: str
    user: str
    program: bytes | None = None  # the first program that runs (canonical path)
    runtime: str = "unknown"  # "python", "node", "java", "go", "static", "native", "shell" or "unknown"
    needs: dict[bytes, Need] = field(default_factory=dict)  # by canonical path
    libraries: list[Library] = field(default_factory=list)
    elf: dict[bytes, ElfInfo] = field(default_factory=dict)  # ELF files that run, by canonical path
    scripts: list[bytes] = field(default_factory=list)  # shebang scripts that run
    rebuild: list[GoRebuild] = field(default_factory=list)  # Go programs built again, static
    missing: list[str] = field(default_factory=list)  # what could not be found
    notes: list[str] = field(default_factory=list)
    rounds: int = 0

    @property
    def static(self) -> bool:
        """Everything that runs is a statically linked ELF file: an empty (scratch) base will do."""
        rebuilt = {r.program for r in self.rebuild}
        return (
            bool(self.elf)
            and all(info.static or path in rebuilt for path, info in self.elf.items())
            and not self.scripts
        )


def runtime_closure(analysis: Analysis, fetch: Fetch, *, max_rounds: int = MAX_ROUNDS) -> Closure:
    """Work out the closure, fetching file contents in rounds until nothing new is needed."""
    known: dict[int, FileInfo] = {}
    closure = None
    for round_number in range(1, max_rounds + 1):
        builder = _Builder(analysis, known)
        closure = builder.run()
        closure.rounds = round_number - 1
        wanted = builder.requests - known.keys()
        if not wanted:
            return closure
        got = fetch(wanted)
        for ref in wanted:
            known[ref] = got.get(ref) or FileInfo(0, "data", note="not readable")
    assert closure is not None
    closure.notes.append(
        f"stopped after {max_rounds} rounds of reading file contents; the closure may be partial"
    )
    return closure


# -- findings: what a runtime leaves out -----------------------------------------------------------------
class Exclusions:
    """Paths the findings mark as toolchain, cache, source, docs or secret (claimed roots)."""

    def __init__(self, analysis: Analysis) -> None:
        categories = {rule.id: rule.category for rule in load_catalog()}
        for finding in analysis.findings:
            categories.setdefault(finding.rule.id, finding.rule.category)
        self.roots = {
            path: categories.get(rule, "")
            for path, rule in analysis.removables.roots.items()
            if categories.get(rule, "") in EXCLUDED
        }

    def category(self, path: bytes) -> str | None:
        """The category of the finding that claimed exactly this path, if any."""
        return self.roots.get(path)


def walk(fs: Filesystem, root: bytes, node: Dir) -> Iterator[tuple[bytes, int | Dir]]:
    """Every path below a folder, parents before children."""
    stack = [(root, node)]
    while stack:
        prefix, directory = stack.pop()
        for name, child in sorted(directory.children.items()):
            path = prefix + b"/" + name if prefix else name
            yield path, child
            if type(child) is Dir:
                stack.append((path, child))


# -- the work of one round -------------------------------------------------------------------------------
class _Builder:
    def __init__(self, analysis: Analysis, known: dict[int, FileInfo]) -> None:
        self.analysis = analysis
        self.fs = analysis.fs
        self.known = known
        self.requests: set[int] = set()
        config = analysis.image.runtime_config
        self.env = image_env(analysis.image)
        workdir = config.get("WorkingDir")
        self.workdir = _norm(workdir.encode("utf-8", "surrogateescape")) if isinstance(workdir, str) else b""
        user = config.get("User")
        self.user = user if isinstance(user, str) else ""
        argv = [*_words(config.get("Entrypoint")), *_words(config.get("Cmd"))]
        self.closure = Closure(
            argv=argv, workdir="/" + self.workdir.decode("utf-8", "replace"), user=self.user
        )
        self.exclusions = Exclusions(analysis)
        self._elf_done: set[bytes] = set()
        self._commands_done: set[tuple[str, ...]] = set()
        self._conf_dirs: list[bytes] | None = None
        self._owned: set[bytes] | None = None

    # -- the round ------------------------------------------------------------------------------------
    def run(self) -> Closure:
        closure = self.closure
        self._prefetch_libraries()
        if self.workdir:  # a Go module to rebuild, most likely
            self.captured(self.workdir + b"/go.mod")
        if not closure.argv:
            closure.notes.append("the image has no ENTRYPOINT or CMD: nothing runs, nothing is needed")
        else:
            self.command(closure.argv, self.workdir, "the image's command", 0)
        self._user()
        self._native_extensions()
        return closure

    # -- contents ----------------------------------------------------------------------------------------
    def info(self, node: int | Dir | None) -> FileInfo | None:
        """The contents summary of a regular file (asked for when not known yet)."""
        if node is None or type(node) is Dir:
            return None
        ref = self.fs.data_ref(node)
        if self.fs.layers[ref >> SHIFT].kinds[ref & MASK] != FILE:
            return None
        found = self.known.get(ref)
        if found is None:
            self.requests.add(ref)
        return found

    def captured(self, path: bytes) -> bytes | None:
        """A small file's contents: captured by the first pass, or fetched."""
        found = self.resolve(path)
        if found is None or type(found[1]) is Dir:
            return None
        ref = self.fs.data_ref(found[1])
        data = self.fs.layers[ref >> SHIFT].captured.get(ref & MASK)
        if data is not None:
            return data
        info = self.info(found[1])
        return info.text if info is not None else None

    # -- paths ----------------------------------------------------------------------------------------
    def resolve(self, path: bytes, cwd: bytes = b"") -> tuple[bytes, int | Dir, tuple] | None:
        """Resolve like the kernel (absolute links from the image root): (canonical, node, links followed).

        Each link is (its location with its folder resolved, its target).
        """
        fs = self.fs
        if not path.startswith(b"/"):
            path = cwd + b"/" + path if cwd else path
        parts = [p for p in path.split(b"/") if p and p != b"."]
        resolved: list[bytes] = []
        node: int | Dir = fs.root
        links: list[tuple[bytes, bytes]] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == b"..":
                if resolved:
                    resolved.pop()
                found = fs.lookup(b"/".join(resolved))
                node = found if found is not None else fs.root
                continue
            if type(node) is not Dir:
                return None
            child = node.children.get(name)
            if child is None:
                return None
            if type(child) is not Dir:
                entries = fs.layers[child >> SHIFT]
                index = child & MASK
                if entries.kinds[index] == SYMLINK:
                    hops += 1
                    if hops > 40:
                        return None
                    target = entries.links.get(index, b"")
                    links.append((b"/".join([*resolved, name]), target))
                    if target.startswith(b"/"):
                        resolved = []
                        node = fs.root
                    parts = [p for p in target.split(b"/") if p and p != b"."] + parts
                    continue
            resolved.append(name)
            node = child
        return b"/".join(resolved), node, tuple(links)

    def is_file(self, node: int | Dir | None) -> bool:
        if node is None or type(node) is Dir:
            return False
        kind = self.fs.layers[node >> SHIFT].kinds[node & MASK]
        return kind == FILE or kind == HARDLINK

    def find_program(self, name: str, cwd: bytes) -> tuple[bytes, bytes, int | Dir, tuple] | None:
        """(path as found, canonical, node, links) of a command, through PATH when it has no slash."""
        raw = name.encode("utf-8", "surrogateescape")
        if b"/" in raw:
            candidates = [raw if raw.startswith(b"/") else (cwd + b"/" + raw if cwd else raw)]
        else:
            candidates = [
                (d + "/" if d else "").encode("utf-8", "surrogateescape") + raw
                for d in self.env.get("PATH", DEFAULT_PATH).split(":")
            ]
        for candidate in candidates:
            found = self.resolve(candidate)
            if found is not None and self.is_file(found[1]):
                return _norm(candidate), *found
        return None

    def need(
        self,
        path: bytes,
        reason: str,
        *,
        cwd: bytes = b"",
        explicit: bool = True,
        skip: frozenset[bytes] = frozenset(),
        dirs: bool = True,
    ) -> tuple[bytes, int | Dir] | None:
        """Add a path (file, or folder when `dirs`) to the closure; returns (canonical, node) or None."""
        found = self.resolve(path, cwd)
        if found is None:
            return None
        canonical, node, links = found
        at = _norm(path if path.startswith(b"/") else (cwd + b"/" + path if cwd else path))
        if type(node) is Dir:
            if not dirs or not canonical:
                return None
            kind = "dir"
        elif self.is_file(node):
            kind = "file"
        else:
            return None
        needs = self.closure.needs
        old = needs.get(canonical)
        if old is None:
            needs[canonical] = Need(at, canonical, kind, reason, explicit, links, skip)
        else:
            if explicit and not old.explicit:
                old.explicit = True
            if len(links) > len(old.links) and old.at != at:
                old.links = tuple(dict.fromkeys(old.links + links))
            old.skip = old.skip & skip if old.skip and skip else frozenset()
        return canonical, node

    # -- commands ----------------------------------------------------------------------------------------
    def command(self, argv: list[str], cwd: bytes, reason: str, depth: int) -> None:
        """Follow one command: the program, its interpreter or libraries, its language's needs."""
        if not argv or depth > MAX_DEPTH:
            return
        key = (cwd.decode("utf-8", "surrogateescape"), *argv)
        if key in self._commands_done:
            return
        self._commands_done.add(key)
        closure = self.closure
        found = self.find_program(argv[0], cwd)
        if found is None:
            if depth == 0 or "/" in argv[0]:
                closure.missing.append(f"{argv[0]} ({reason}): not found in the image")
            return
        at, canonical, node, _links = found
        self.need(at, reason)
        if closure.program is None:
            closure.program = canonical
        names = {
            posixpath.basename(argv[0]),
            posixpath.basename(canonical.decode("utf-8", "surrogateescape")),
        }
        args = argv[1:]
        info = self.info(node)
        if info is not None and info.kind == "elf" and info.elf is not None:
            if not (info.elf.go and self._go(at, canonical, node, info)):
                self.elf_closure(canonical, info.elf, [])
            if closure.runtime == "unknown" and not (names & (_SHELLS | _WRAPPERS | {"env"})):
                closure.runtime = "go" if info.elf.go else ("static" if info.elf.static else "native")
        elif info is not None and info.kind == "script" and info.shebang:
            closure.scripts.append(canonical)
            interpreter = list(info.shebang)
            if posixpath.basename(interpreter[0]) == "env" and len(interpreter) > 1:
                interpreter = [interpreter[0], *interpreter[1].split()]
            self.command(
                [*interpreter, "/" + at.decode("utf-8", "surrogateescape"), *args], cwd, reason, depth + 1
            )
            return
        elif info is not None and info.kind not in ("elf", "script"):
            closure.notes.append(f"{_show(canonical)} is not an ELF file or a #! script ({info.kind})")

        python = next((n for n in names if _PYTHON.match(n)), None)
        if "env" in names:
            self._env(args, cwd, reason, depth)
        elif names & _WRAPPERS:
            rest = _after_options(args)
            self.command(rest, cwd, reason, depth + 1)
        elif names & _USER_SWITCHERS:
            self.command(args[1:], cwd, reason, depth + 1)
        elif "busybox" in names and args:  # `busybox sh -c ...`: the applet is the first argument
            if args[0] in _SHELLS:
                self._shell(args[1:], cwd, reason, depth)
        elif names & _SHELLS:
            self._shell(args, cwd, reason, depth)
        elif python is not None:
            self._set_runtime("python")
            self._python(at, canonical, args, cwd)
        elif names & {"node", "nodejs"}:
            self._set_runtime("node")
            self._node(args, cwd)
        elif "java" in names:
            self._set_runtime("java")
            self._java(canonical, args, cwd)
        else:
            self._argument_files(args, cwd)

    def _set_runtime(self, name: str) -> None:
        if self.closure.runtime in ("unknown", "native", "shell"):
            self.closure.runtime = name

    def _env(self, args: list[str], cwd: bytes, reason: str, depth: int) -> None:
        rest = list(args)
        while rest:
            word = rest[0]
            if word in ("-i", "--ignore-environment", "-0", "--null", "-v", "--debug", "-"):
                rest.pop(0)
            elif word in ("-u", "--unset", "-C", "--chdir"):
                if word in ("-C", "--chdir") and len(rest) > 1:
                    target = rest[1].encode("utf-8", "surrogateescape")
                    cwd = _norm(target if target.startswith(b"/") else cwd + b"/" + target)
                rest = rest[2:]
            elif word == "-S" or word == "--split-string":
                rest = rest[1].split() + rest[2:] if len(rest) > 1 else []
            elif word.startswith("-S"):
                rest = word[2:].split() + rest[1:]
            elif word.startswith("--split-string="):
                rest = word.partition("=")[2].split() + rest[1:]
            elif "=" in word and not word.startswith("-"):
                rest.pop(0)
            else:
                break
        self.command(rest, cwd, reason, depth + 1)

    def _shell(self, args: list[str], cwd: bytes, reason: str, depth: int) -> None:
        """`sh -c "cmd && cmd2"` runs each command; `sh script` reads the script."""
        self._set_runtime("shell")
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] != "-c":
            i += 1
        if i < len(args) and args[i] == "-c":
            if i + 1 < len(args):
                for words in _shell_commands(args[i + 1]):
                    if words[0] == "cd" and len(words) > 1:
                        target = words[1].encode("utf-8", "surrogateescape")
                        cwd = _norm(target if target.startswith(b"/") else cwd + b"/" + target)
                        continue
                    self.command(words, cwd, f"run by the shell ({reason})", depth + 1)
            return
        if i < len(args):
            self.need(
                args[i].encode("utf-8", "surrogateescape"),
                f"the shell script ({reason})",
                cwd=cwd,
                dirs=False,
            )

    def _argument_files(self, args: list[str], cwd: bytes) -> None:
        """Files named in the arguments (`--config=/etc/app.yaml`, `data/model.bin`)."""
        for arg in args:
            value = arg.partition("=")[2] if arg.startswith("-") else arg
            if not value or value.startswith("-") or len(value) > 4096:
                continue
            raw = value.encode("utf-8", "surrogateescape")
            if b"/" not in raw and not cwd:
                continue
            found = self.resolve(raw, cwd)
            if found is not None and self.is_file(found[1]):
                self.need(raw, "named in the command's arguments", cwd=cwd, dirs=False)

    # -- Go --------------------------------------------------------------------------------------------
    def _go(self, at: bytes, canonical: bytes, node: int | Dir, info: FileInfo) -> bool:
        """Plan a static, stripped rebuild of a Go program when the build image can do it."""
        elf = info.elf
        go = elf.go_info if elf is not None else None
        if elf is None or go is None or not go.module or not go.path.startswith(go.module):
            return False
        if not set(elf.needed) <= _LIBC and not elf.static:
            return False
        if elf.static and elf.stripped:
            return False  # nothing to gain
        tool = self.find_program("go", self.workdir)
        module_dir = self._go_module(go.module)
        if (
            tool is None
            or module_dir is None
            or not (_PLAIN.fullmatch(tool[0]) and _PLAIN.fullmatch(module_dir))
        ):
            return False
        rel = go.path[len(go.module) :].strip("/")
        ldflags = go.setting("-ldflags") or ""
        words = ldflags.split()
        flags = " ".join(["-s", "-w", *(w for w in words if w not in ("-s", "-w"))])
        closure = self.closure
        closure.elf[canonical] = elf
        closure.rebuild.append(
            GoRebuild(
                program=canonical,
                at=at,
                module_dir=module_dir,
                package="./" + rel if rel else ".",
                tool=tool[0],
                ldflags=flags,
                tags=go.setting("-tags"),
                bytes=max(info.size - elf.debug_bytes, 0),
                version=go.version,
            )
        )
        return True

    def _go_module(self, module: str) -> bytes | None:
        """The folder whose go.mod declares `module` (WORKDIR first, then anywhere but Go's own trees)."""
        candidates: list[bytes] = []
        if self.workdir:
            candidates.append(self.workdir + b"/go.mod")
        for path, node in walk(self.fs, b"", self.fs.root):
            if path.endswith(b"/go.mod") and type(node) is not Dir and not _GO_TREES.search(path):
                candidates.append(path)
            if len(candidates) > 200:
                break
        for path in candidates:
            data = self.captured(path)
            if data is None:
                continue
            match = re.search(rb"(?m)^\s*module\s+\"?([^\s\"]+)", data)
            if match and match.group(1).decode("utf-8", "replace") == module:
                return path.rpartition(b"/")[0]
        return None

    # -- ELF ---------------------------------------------------------------------------------------------
    def elf_closure(self, path: bytes, elf: ElfInfo, loaders: list[tuple[bytes, ElfInfo]]) -> None:
        """The program interpreter and the libraries of an ELF file, recursively."""
        if path in self._elf_done:
            return
        self._elf_done.add(path)
        closure = self.closure
        closure.elf[path] = elf
        if elf.interp:
            interp = elf.interp.encode("utf-8", "surrogateescape")
            found = self.need(interp, f"the dynamic loader of /{_text(path)}", dirs=False)
            if found is None:
                closure.missing.append(f"{elf.interp} (the dynamic loader of /{_text(path)})")
            else:
                info = self.info(found[1])
                if info is not None and info.elf is not None:
                    self._elf_done.add(found[0])
                    closure.elf[found[0]] = info.elf
        chain = [(path, elf), *loaders]
        for name in elf.needed:
            hit = self.find_library(name, path, elf, loaders)
            closure.libraries.append(Library(name, path, hit[0] if hit else None))
            if hit is None:
                closure.missing.append(f"{name} (needed by /{_text(path)})")
                continue
            at, canonical, node = hit
            self.need(at, f"{name}, needed by /{_text(path)}", dirs=False)
            info = self.info(node)
            if info is not None and info.elf is not None:
                self.elf_closure(canonical, info.elf, chain)

    def find_library(
        self, name: str, path: bytes, elf: ElfInfo, loaders: list[tuple[bytes, ElfInfo]]
    ) -> tuple[bytes, bytes, int | Dir] | None:
        """(path as opened, canonical, node) of a DT_NEEDED library, in the loader's search order."""
        raw = name.encode("utf-8", "surrogateescape")
        if b"/" in raw:
            found = self.resolve(raw, self.workdir)
            return (_norm(raw), found[0], found[1]) if found and self.is_file(found[1]) else None
        for folder in self.library_dirs(path, elf, loaders):
            candidate = folder + b"/" + raw if folder else raw
            found = self.resolve(candidate)
            if found is None or not self.is_file(found[1]):
                continue
            info = self.info(found[1])
            if info is not None and (info.elf is None or not elf.compatible(info.elf)):
                continue  # not a library for this loader (another class or machine, or not ELF)
            return _norm(candidate), found[0], found[1]
        return None

    def library_dirs(self, path: bytes, elf: ElfInfo, loaders: list[tuple[bytes, ElfInfo]]) -> list[bytes]:
        """Folders searched for the libraries of one object, in order."""
        folders: list[bytes] = []
        musl = bool(elf.interp and "musl" in elf.interp) or any(
            (o.interp and "musl" in o.interp) for _, o in loaders
        )
        if not elf.runpath:
            for owner, info in [(path, elf), *loaders]:
                if not info.runpath:
                    folders += self._expand(info.rpath, owner, elf)
        for item in self.env.get("LD_LIBRARY_PATH", "").split(":"):
            if item:
                folders.append(_norm(item.encode("utf-8", "surrogateescape")))
        folders += self._expand(elf.runpath, path, elf)
        if musl:
            folders += self._musl_dirs(elf)
        else:
            folders += self.conf_dirs()
            folders += _default_dirs(elf)
        return list(dict.fromkeys(folders))

    def _expand(self, entries: tuple[str, ...], owner: bytes, elf: ElfInfo) -> list[bytes]:
        origin = owner.rpartition(b"/")[0]
        out = []
        for entry in entries:
            raw = entry.encode("utf-8", "surrogateescape")
            lib_names = [b"lib64", b"lib/" + _TRIPLETS.get(elf.machine, "").encode(), b"lib"]
            variants = [raw]
            if b"$LIB" in raw or b"${LIB}" in raw:
                variants = [raw.replace(b"${LIB}", lib).replace(b"$LIB", lib) for lib in lib_names]
            for value in variants:
                value = value.replace(b"${ORIGIN}", b"/" + origin).replace(b"$ORIGIN", b"/" + origin)
                platform = _PLATFORMS.get(elf.machine, "").encode()
                value = value.replace(b"${PLATFORM}", platform).replace(b"$PLATFORM", platform)
                if value.startswith(b"/"):
                    out.append(_norm(value))
        return out

    def conf_dirs(self) -> list[bytes]:
        """The folders of /etc/ld.so.conf and the files it includes (what ld.so.cache indexes)."""
        if self._conf_dirs is None:
            out: list[bytes] = []
            self._read_conf(b"etc/ld.so.conf", out, 0)
            self._conf_dirs = list(dict.fromkeys(out))
        return self._conf_dirs

    def _read_conf(self, path: bytes, out: list[bytes], depth: int) -> None:
        data = self.captured(path)
        if data is None or depth > 8:
            return
        for line in data.split(b"\n"):
            line = line.split(b"#", 1)[0].strip()
            if not line:
                continue
            if line.startswith(b"include"):
                pattern = line[len(b"include") :].strip()
                if not pattern.startswith(b"/"):
                    pattern = b"/etc/" + pattern
                folder, _, glob = _norm(pattern).rpartition(b"/")
                found = self.resolve(folder)
                if found is None or type(found[1]) is not Dir:
                    continue
                for name in sorted(found[1].children):
                    if fnmatch.fnmatchcase(
                        name.decode("utf-8", "surrogateescape"), glob.decode("utf-8", "replace")
                    ):
                        self._read_conf(found[0] + b"/" + name, out, depth + 1)
            elif line.startswith(b"/"):
                out.append(_norm(line.split(b"=", 1)[0]))

    def _musl_dirs(self, elf: ElfInfo) -> list[bytes]:
        arch = _MUSL_ARCH.get(elf.machine, "")
        data = self.captured(f"etc/ld-musl-{arch}.path".encode())
        if data:
            items = [p for p in re.split(rb"[:\n]", data) if p.strip().startswith(b"/")]
            return [_norm(p.strip()) for p in items]
        return [b"lib", b"usr/local/lib", b"usr/lib"]

    def _prefetch_libraries(self) -> None:
        """Ask for every library in the loader's folders at once: their DT_NEEDED come next."""
        folders = [*self.conf_dirs(), b"lib", b"usr/lib", b"lib64", b"usr/lib64", b"usr/local/lib"]
        for prefix in (b"lib", b"usr/lib"):
            found = self.resolve(prefix)
            if found is not None and type(found[1]) is Dir:
                folders += [found[0] + b"/" + n for n in found[1].children if b"-linux-" in n]
        seen: set[bytes] = set()
        for folder in folders:
            found = self.resolve(folder)
            if found is None or type(found[1]) is not Dir or found[0] in seen:
                continue
            seen.add(found[0])
            for name, node in found[1].children.items():
                if b".so" in name and type(node) is not Dir:
                    target = self.resolve(found[0] + b"/" + name)
                    if target is not None and self.is_file(target[1]):
                        self.info(target[1])

    def _native_extensions(self) -> None:
        """ELF files inside the folders the closure needs (Python and Node extensions, JRE libraries)."""
        for need in list(self.closure.needs.values()):
            if need.kind != "dir":
                continue
            node = self.fs.lookup(need.canonical)
            if type(node) is not Dir:
                continue
            for path, child in self.walk_need(need, node):
                name = path.rpartition(b"/")[2]
                if not (name.endswith((b".so", b".node")) or b".so." in name) or not self.is_file(child):
                    continue
                info = self.info(child)
                if info is not None and info.elf is not None:
                    self.elf_closure(path, info.elf, [])

    def walk_need(self, need: Need, node: Dir) -> Iterator[tuple[bytes, int | Dir]]:
        """The paths below a needed folder that ship: neither skipped nor claimed by a finding."""
        stack = [(need.canonical, node)]
        exclusions = self.exclusions
        while stack:
            prefix, directory = stack.pop()
            for name, child in directory.children.items():
                path = prefix + b"/" + name
                if path in need.skip or exclusions.category(path) is not None:
                    continue
                yield path, child
                if type(child) is Dir:
                    stack.append((path, child))

    # -- Python ------------------------------------------------------------------------------------------
    def _python(self, at: bytes, canonical: bytes, args: list[str], cwd: bytes) -> None:
        fs = self.fs
        version = None
        match = _PY_VERSION.search(canonical.rpartition(b"/")[2].decode("utf-8", "replace"))
        if match:
            version = match.group(1)
        bin_dir = at.rpartition(b"/")[0]
        venv_root = bin_dir.rpartition(b"/")[0]
        cfg = self.captured(venv_root + b"/pyvenv.cfg") if venv_root or bin_dir else None
        system_site = True
        if cfg is not None:
            settings = _ini(cfg)
            system_site = settings.get("include-system-site-packages", "false").lower() == "true"
            if version is None and settings.get("version"):
                version = ".".join(settings["version"].split(".")[:2])
            self.need(venv_root, "the virtualenv the Python command runs in", explicit=False)
        prefix = canonical.rpartition(b"/")[0].rpartition(b"/")[0]
        versions = [version] if version else self._python_versions(prefix)
        for ver in versions:
            v = ver.encode()
            stdlib = (prefix + b"/" if prefix else b"") + b"lib/python" + v
            skip = {stdlib + b"/" + name for name in _PY_OPTIONAL}
            node = fs.lookup(stdlib)
            if type(node) is Dir:  # config-3.11-x86_64-linux-gnu: what python3-config links against
                skip |= {stdlib + b"/" + name for name in node.children if name.startswith(b"config-")}
            self.need(stdlib, f"the Python {ver} standard library", explicit=False, skip=frozenset(skip))
            if cfg is not None and not system_site:
                continue
            sites = [stdlib + b"/site-packages", stdlib + b"/dist-packages"]
            if prefix == b"usr":
                sites += [b"usr/local/lib/python" + v + b"/dist-packages", b"usr/lib/python3/dist-packages"]
            home = self.env.get("HOME") or ("/root" if self.user in ("", "root", "0") else "")
            if home and self.env.get("PYTHONNOUSERSITE") is None:
                sites.append(
                    _norm(home.encode("utf-8", "surrogateescape"))
                    + b"/.local/lib/python"
                    + v
                    + b"/site-packages"
                )
            for site in sites:
                node = fs.lookup(site)
                if type(node) is Dir:
                    self.need(site, "site-packages of the Python in use", explicit=False)
        for item in self.env.get("PYTHONPATH", "").split(":"):
            if item:
                self.need(item.encode("utf-8", "surrogateescape"), "on PYTHONPATH", cwd=cwd, explicit=False)
        self._python_args(args, cwd)

    def _python_versions(self, prefix: bytes) -> list[str]:
        node = self.fs.lookup((prefix + b"/" if prefix else b"") + b"lib")
        if type(node) is not Dir:
            return []
        out = []
        for name in node.children:
            match = _PY_VERSION.match(name.decode("utf-8", "replace"))
            if match:
                out.append(match.group(1))
        return sorted(out)

    def _python_args(self, args: list[str], cwd: bytes) -> None:
        i = 0
        while i < len(args):
            word = args[i]
            if word == "-c":
                return
            if word == "-m":
                if i + 1 < len(args):
                    self._python_module(args[i + 1], cwd)
                self._module_specs(args[i + 2 :], cwd)
                return
            if word in _PY_ARG_OPTIONS:
                i += 2
                continue
            if word.startswith("-") and word != "-":
                i += 1
                continue
            break
        if i >= len(args) or args[i] == "-":
            return
        script = args[i].encode("utf-8", "surrogateescape")
        found = self.need(script, "the Python script the command runs", cwd=cwd, dirs=False)
        if found is None:
            self.closure.missing.append(f"{args[i]} (the Python script): not found in the image")
        else:
            self._app_code(found[0], "the app's Python code")
        self._module_specs(args[i + 1 :], cwd)

    def _python_module(self, module: str, cwd: bytes) -> None:
        top = module.split(".", 1)[0].encode("utf-8", "surrogateescape")
        for base in (cwd, *self._workdir_list()):
            for candidate in (top, top + b".py"):
                path = base + b"/" + candidate if base else candidate
                found = self.resolve(path)
                if found is not None and (type(found[1]) is Dir or self.is_file(found[1])):
                    self.need(path, f"the Python module {module} the command runs", explicit=False)
                    return

    def _module_specs(self, args: list[str], cwd: bytes) -> None:
        """`app.main:app` (uvicorn, gunicorn) and other module names found under WORKDIR."""
        for arg in args:
            value = arg.partition("=")[2] if arg.startswith("-") else arg
            match = _MODULE_SPEC.match(value)
            if match and ("." in value or ":" in value):
                self._python_module(value.split(":", 1)[0], cwd)
        self._argument_files(args, cwd)

    def _workdir_list(self) -> list[bytes]:
        return [self.workdir] if self.workdir else []

    def _app_code(self, script: bytes, reason: str) -> None:
        """The script's package (climbing while folders have __init__.py) or its folder."""
        folder = script.rpartition(b"/")[0]
        if not folder or folder.rpartition(b"/")[2] in (b"bin", b"sbin") or self._is_owned(script):
            return
        top = folder
        while self.is_file(self.fs.lookup(top + b"/__init__.py")):
            parent = top.rpartition(b"/")[0]
            if not parent or not self.is_file(self.fs.lookup(parent + b"/__init__.py")):
                break
            top = parent
        self.need(top, reason, explicit=False)

    def _is_owned(self, path: bytes) -> bool:
        """Whether a dpkg or apk package owns the file (then the package brings it)."""
        if self._owned is None:
            owned: set[bytes] = set()
            for package in self.analysis.packages:
                if package.manager in ("dpkg", "apk"):
                    owned.update(package.paths)
            self._owned = owned
        return path in self._owned

    # -- Node --------------------------------------------------------------------------------------------
    def _node(self, args: list[str], cwd: bytes) -> None:
        i = 0
        while i < len(args):
            word = args[i]
            if word in ("-e", "--eval", "-p", "--print", "-i", "--interactive"):
                return
            if word in _NODE_ARG_OPTIONS:
                i += 2
                continue
            if word.startswith("-") and word != "-":
                i += 1
                continue
            break
        if i >= len(args) or args[i] == "-":
            return
        raw = args[i].encode("utf-8", "surrogateescape")
        found = self.resolve(raw, cwd)
        if found is not None and type(found[1]) is Dir:
            main = self._node_main(found[0])
            raw = main if main is not None else found[0] + b"/index.js"
        hit = self.need(raw, "the Node.js script the command runs", cwd=cwd, dirs=False)
        if hit is None:
            for ext in (b".js", b".mjs", b".cjs"):
                hit = self.need(raw + ext, "the Node.js script the command runs", cwd=cwd, dirs=False)
                if hit is not None:
                    break
        if hit is None:
            self.closure.missing.append(f"{args[i]} (the Node.js script): not found in the image")
            return
        script = hit[0]
        root = self._node_root(script)
        if root is None:
            self._app_code(script, "the app's Node.js code")
        else:
            self.need(root + b"/package.json" if root else b"package.json", "the app's package.json")
            rel = script[len(root) + 1 :] if root else script
            if b"/" in rel:
                top = rel.split(b"/", 1)[0]
                self.need(root + b"/" + top if root else top, "the app's build output", explicit=False)
            else:
                skip = frozenset({root + b"/node_modules" if root else b"node_modules"})
                self.need(root, "the app's Node.js code", explicit=False, skip=skip)
        self._node_modules(script)
        for item in self.env.get("NODE_PATH", "").split(":"):
            if item:
                self.need(item.encode("utf-8", "surrogateescape"), "on NODE_PATH", cwd=cwd, explicit=False)
        self._argument_files(args[i + 1 :], cwd)

    def _node_main(self, folder: bytes) -> bytes | None:
        import json

        data = self.captured(folder + b"/package.json")
        if data is None:
            return None
        try:
            main = json.loads(data).get("main")
        except (ValueError, AttributeError, RecursionError):
            return None
        return (
            folder + b"/" + main.encode("utf-8", "surrogateescape")
            if isinstance(main, str) and main
            else None
        )

    def _node_root(self, script: bytes) -> bytes | None:
        """The nearest folder above the script with a package.json, outside node_modules."""
        folder = script.rpartition(b"/")[0]
        while True:
            if b"node_modules" in folder.split(b"/"):
                return None
            if self.is_file(self.fs.lookup(folder + b"/package.json" if folder else b"package.json")):
                return folder
            if not folder:
                return None
            folder = folder.rpartition(b"/")[0]

    def _node_modules(self, script: bytes) -> None:
        """Every node_modules folder Node.js looks in from the script, without build-only packages."""
        dev = frozenset(
            p.location for p in self.analysis.packages if p.manager == "npm" and p.build_only and p.location
        )
        folder = script.rpartition(b"/")[0]
        while True:
            if folder.rpartition(b"/")[2] != b"node_modules":
                candidate = folder + b"/node_modules" if folder else b"node_modules"
                if type(self.fs.lookup(candidate)) is Dir:
                    skip = frozenset(p for p in dev if p.startswith(candidate + b"/"))
                    self.need(
                        candidate, "production dependencies from package.json", explicit=False, skip=skip
                    )
            if not folder:
                return
            folder = folder.rpartition(b"/")[0]

    # -- Java --------------------------------------------------------------------------------------------
    def _java(self, canonical: bytes, args: list[str], cwd: bytes) -> None:
        home = canonical.rpartition(b"/")[0].rpartition(b"/")[0]
        if self._is_owned(canonical):
            for part in (b"lib/modules", b"lib/server/libjvm.so", b"lib/jvm.cfg"):
                found = self.need(home + b"/" + part, "the Java runtime (JRE)", dirs=False)
                if found is not None and part.endswith(b".so"):
                    info = self.info(found[1])
                    if info is not None and info.elf is not None:
                        self.elf_closure(found[0], info.elf, [])
        else:
            skip = {home + b"/" + n for n in (b"jmods", b"include", b"demo", b"sample", b"man", b"src.zip")}
            node = self.fs.lookup(home + b"/bin")
            if type(node) is Dir:
                skip |= {home + b"/bin/" + n for n in node.children if n not in (b"java", b"keytool")}
            self.need(home, "the Java runtime (JRE)", explicit=False, skip=frozenset(skip))
        classpath: list[str] = []
        i = 0
        jar = None
        while i < len(args):
            word = args[i]
            if word == "-jar" and i + 1 < len(args):
                jar = args[i + 1]
                break
            if word in ("-cp", "-classpath", "--class-path", "-p", "--module-path") and i + 1 < len(args):
                classpath += args[i + 1].split(":")
                i += 2
                continue
            if word.startswith("-javaagent:"):
                self.need(
                    word[11:].split("=", 1)[0].encode("utf-8", "surrogateescape"), "a Java agent", cwd=cwd
                )
            if word in _JAVA_ARG_OPTIONS:
                i += 2
                continue
            if word.startswith("-"):
                i += 1
                continue
            break  # the main class
        if jar is None and not classpath and self.env.get("CLASSPATH"):
            classpath = self.env["CLASSPATH"].split(":")
        if jar is not None:
            self._jar(jar.encode("utf-8", "surrogateescape"), cwd, "the application jar")
        for item in classpath:
            raw = item.encode("utf-8", "surrogateescape")
            if raw.endswith(b"/*") or raw == b"*":
                raw = raw[:-2] if raw.endswith(b"/*") else b"."
            if raw:
                self.need(raw, "on the Java class path", cwd=cwd, explicit=False)

    def _jar(self, raw: bytes, cwd: bytes, reason: str, depth: int = 0) -> None:
        found = self.need(raw, reason, cwd=cwd, dirs=False)
        if found is None:
            self.closure.missing.append(f"{_text(raw)} ({reason}): not found in the image")
            return
        info = self.info(found[1])
        if info is None or info.jar is None or depth > 4:
            return
        folder = found[0].rpartition(b"/")[0]
        for entry in info.jar.class_path:
            if "://" in entry and not entry.startswith("file:"):
                continue
            item = entry.removeprefix("file:").encode("utf-8", "surrogateescape")
            target = item if item.startswith(b"/") else (folder + b"/" + item if folder else item)
            hit = self.resolve(target)
            if hit is not None and type(hit[1]) is Dir:
                self.need(target, "on the jar's Class-Path", explicit=False)
            elif hit is not None:
                self._jar(target, b"", "on the jar's Class-Path", depth + 1)

    # -- users, certificates, zones ------------------------------------------------------------------------
    def _user(self) -> None:
        closure = self.closure
        user = self.user.split(":", 1)[0]
        if user and user != "root" and not user.isdigit():
            for path in (b"etc/passwd", b"etc/group"):
                self.need(path, f"the entry of USER {user}")
        if not closure.static:
            return
        for path in (
            b"etc/ssl/certs/ca-certificates.crt",
            b"etc/pki/tls/certs/ca-bundle.crt",
            b"etc/ssl/cert.pem",
        ):
            if self.need(path, "CA certificates (TLS)", dirs=False) is not None:
                break
        zone = self.env.get("TZ", "").lstrip(":")
        if (
            zone
            and ".." not in zone
            and (
                self.need(
                    b"usr/share/zoneinfo/" + zone.encode("utf-8", "surrogateescape"),
                    f"the time zone TZ={zone}",
                )
                is None
            )
        ):
            closure.missing.append(f"TZ={zone}: no zone file in /usr/share/zoneinfo")


# -- helpers -------------------------------------------------------------------------------------------------
def _words(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def _norm(path: bytes) -> bytes:
    """A path relative to the image root, `.` and `..` resolved lexically."""
    out: list[bytes] = []
    for part in path.split(b"/"):
        if not part or part == b".":
            continue
        if part == b"..":
            if out:
                out.pop()
        else:
            out.append(part)
    return b"/".join(out)


def _text(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def _show(path: bytes) -> str:
    from slimscope.sanitize import visible

    return "/" + visible(path)


def _default_dirs(elf: ElfInfo) -> list[bytes]:
    triplet = _TRIPLETS.get(elf.machine, "").encode()
    out = [b"lib/" + triplet, b"usr/lib/" + triplet] if triplet else []
    if elf.bits == 64:
        out += [b"lib64", b"usr/lib64"]
    return [*out, b"lib", b"usr/lib"]


def _after_options(args: list[str]) -> list[str]:
    """The command a wrapper (`tini -- cmd`, `dumb-init cmd`) runs."""
    if "--" in args:
        return args[args.index("--") + 1 :]
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    return args[i:]


_OPERATORS = {";", "&&", "||", "|", "&"}


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell string, best effort (assignments and `exec` dropped)."""
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        words = text.split()
    commands: list[list[str]] = []
    current: list[str] = []
    for word in [*words, ";"]:
        if word in _OPERATORS or set(word) <= set(";&|"):
            while current and (current[0] in ("exec", "command", "nohup") or _assignment(current[0])):
                current.pop(0)
            if current and not current[0].startswith(("$", "`")):
                commands.append(current)
            current = []
        else:
            current.append(word)
    return commands


def _assignment(word: str) -> bool:
    name, sep, _ = word.partition("=")
    return bool(sep) and name.isidentifier()


def _ini(data: bytes) -> dict[str, str]:
    out = {}
    for line in data.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out
