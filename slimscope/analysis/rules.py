"""The removables rule catalog (rules.toml) and the walk that applies it to the final filesystem.

One walk over the merged tree matches every path against every rule at once: each glob is split into
path components, and a directory passes down only the partial matches still alive below it, so deep
trees cost a handful of comparisons per entry. A matched path is claimed, with everything below it,
by the first rule in catalog order; package-based rules (build-only packages, node devDependencies)
then take what is left of their packages' files.
"""

from __future__ import annotations

import fnmatch
import os
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from slimscope import fs as fsmod
from slimscope.fs import MASK, SHIFT, Dir, Filesystem
from slimscope.image.layer import FILE, HARDLINK

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

CATEGORIES = ("toolchain", "cache", "source", "docs", "secret")
SLIMMING = ("toolchain", "cache", "source", "docs")  # what a multi-stage rewrite drops


@dataclass(frozen=True)
class Rule:
    """One catalog entry."""

    id: str
    name: str
    category: str
    title: str
    paths: tuple[str, ...]
    exclude: tuple[str, ...]
    detector: str | None
    group: str | None
    rationale: str
    remedy: str
    references: tuple[str, ...]
    examples: dict[str, Any] = field(compare=False, hash=False, repr=False)


@dataclass
class FindingPath:
    """A matched root (or, for grouped rules, a folder of matched files) and its visible bytes."""

    path: bytes
    bytes: int
    files: int


@dataclass
class Finding:
    """What one rule found in the final filesystem."""

    rule: Rule
    bytes: int = 0  # visible bytes, each inode once
    count: int = 0  # regular files and hard links
    paths: list[FindingPath] = field(default_factory=list)  # biggest first
    by_layer: dict[int, int] = field(default_factory=dict)  # bytes per layer that added them
    packages: list[str] = field(default_factory=list)

    @property
    def layer(self) -> int | None:
        """The layer that added most of the bytes."""
        if not self.by_layer:
            return None
        return max(self.by_layer.items(), key=lambda item: (item[1], -item[0]))[0]


@dataclass
class Removables:
    """All findings, plus which rule claimed which root path (for views that tint paths)."""

    findings: list[Finding]
    roots: dict[bytes, str]  # claimed root path -> rule id

    def by_category(self) -> dict[str, int]:
        """Visible bytes per category."""
        totals = dict.fromkeys(CATEGORIES, 0)
        for finding in self.findings:
            totals[finding.rule.category] += finding.bytes
        return totals

    def rule_of(self, path: bytes) -> str | None:
        """The rule id that claimed a path or one of its parents."""
        while True:
            rule = self.roots.get(path)
            if rule is not None:
                return rule
            if not path:
                return None
            path = path.rpartition(b"/")[0]


@lru_cache(maxsize=1)
def load_catalog() -> tuple[Rule, ...]:
    """The rules of rules.toml, in file order."""
    # Read beside this file when it is a file (importlib.resources and its readers cost ~9 ms of
    # imports on every start); through importlib.resources from a zip or other loader.
    try:
        with open(os.path.join(os.path.dirname(__file__), "rules.toml"), encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        from importlib import resources

        text = resources.files("slimscope.analysis").joinpath("rules.toml").read_text("utf-8")
    data = tomllib.loads(text)
    rules = []
    for raw in data["rules"]:
        rules.append(
            Rule(
                id=raw["id"],
                name=raw["name"],
                category=raw["category"],
                title=raw["title"],
                paths=tuple(raw.get("paths", ())),
                exclude=tuple(raw.get("exclude", ())),
                detector=raw.get("detector"),
                group=raw.get("group"),
                rationale=raw["rationale"],
                remedy=raw["remedy"],
                references=tuple(raw.get("references", ())),
                examples=raw.get("examples", {}),
            )
        )
    return tuple(rules)


# -- pattern compilation --------------------------------------------------------------------------
# A path component's glob: a literal (bytes), "LIT*" or "*LIT" as (PREFIX or SUFFIX, LIT), or a regex.
# Most globs are one of the first three; compiling each as a regex cost ~4 ms of every start.
Matcher = bytes | tuple[int, bytes] | re.Pattern[bytes]
PREFIX, SUFFIX = 0, 1


def _is_literal(text: str) -> bool:
    return not any(ch in text for ch in "*?[")


def _component(glob: str) -> Matcher:
    if _is_literal(glob):
        return glob.encode()
    if glob.endswith("*") and _is_literal(glob[:-1]):
        return (PREFIX, glob[:-1].encode())
    if glob.startswith("*") and _is_literal(glob[1:]):
        return (SUFFIX, glob[1:].encode())
    return re.compile(_component_regex(glob), re.DOTALL)


def _component_regex(glob: str) -> bytes:
    return fnmatch.translate(glob).encode()


def _matches(matcher: Matcher, name: bytes) -> bool:
    kind = type(matcher)
    if kind is bytes:
        return matcher == name
    if kind is tuple:
        how, text = matcher  # type: ignore[misc]
        return name.startswith(text) if how == PREFIX else name.endswith(text)
    return matcher.fullmatch(name) is not None  # type: ignore[union-attr]


@dataclass
class _Compiled:
    rules: tuple[Rule, ...]
    comps: list[tuple[Matcher, ...]]  # per pattern
    owner: list[int]  # per pattern: rule index
    anchored: list[tuple[int, int]]  # (pattern, 0) for root-anchored patterns
    any_literal: dict[bytes, list[int]]  # first component literal -> any-depth patterns
    any_ext: dict[bytes, list[int]]  # "*.ext" first component -> any-depth patterns
    any_other: list[int]  # any-depth patterns with another glob first
    any_other_first: re.Pattern[bytes] | None  # matches a name that any of those first components matches
    any_other_prefixes: tuple[bytes, ...] | None  # those first components as prefixes, if all are "LIT*"
    excludes: list[tuple[str, ...]]  # per rule: whole-path globs, compiled when a hit needs them


@lru_cache(maxsize=4)
def _compile(rules: tuple[Rule, ...]) -> _Compiled:
    compiled = _Compiled(rules, [], [], [], {}, {}, [], None, (), [])
    prefixes: list[bytes] | None = []
    other_firsts: list[str] = []  # the globs starting the any-depth patterns of any_other
    for index, rule in enumerate(rules):
        compiled.excludes.append(rule.exclude)
        for glob in rule.paths:
            anydepth = glob.startswith("**/")
            parts = glob[3:].split("/") if anydepth else glob.split("/")
            pid = len(compiled.comps)
            compiled.comps.append(tuple(_component(p) for p in parts))
            compiled.owner.append(index)
            first = parts[0]
            if not anydepth:
                compiled.anchored.append((pid, 0))
            elif _is_literal(first):
                compiled.any_literal.setdefault(first.encode(), []).append(pid)
            elif first.startswith("*.") and not any(ch in first[2:] for ch in "*?[."):
                compiled.any_ext.setdefault(first[2:].encode(), []).append(pid)
            else:
                compiled.any_other.append(pid)
                other_firsts.append(first)
                if prefixes is not None and first.endswith("*") and _is_literal(first[:-1]):
                    prefixes.append(first[:-1].encode())
                else:
                    prefixes = None
    compiled.any_other_prefixes = tuple(prefixes) if prefixes is not None else None
    if other_firsts:  # one regex rules most names out at once (measured: the per-pattern loop cost ~20% here)
        alternatives = [_component_regex(first) for first in dict.fromkeys(other_firsts)]
        compiled.any_other_first = re.compile(b"|".join(b"(?:%s)" % a for a in alternatives), re.DOTALL)
    return compiled


def compiled_catalog() -> _Compiled:
    """The catalog of rules.toml, compiled (once per process)."""
    return _compile(load_catalog())


@cache
def _exclude_regex(glob: str) -> re.Pattern[str]:
    return re.compile(_glob_regex(glob))


def _glob_regex(glob: str) -> str:
    """A whole-path glob (`**` spans folders) as a regex over the decoded path."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return "^" + "".join(out) + "$"


# -- detectors ------------------------------------------------------------------------------------
BUILD_FILES = {
    b"Makefile",
    b"makefile",
    b"GNUmakefile",
    b"CMakeLists.txt",
    b"go.mod",
    b"Cargo.toml",
    b"pom.xml",
    b"build.gradle",
    b"build.gradle.kts",
    b"tsconfig.json",
    b"meson.build",
    b"configure.ac",
    b"BUILD",
    b"BUILD.bazel",
    b"WORKSPACE",
    b"setup.py",
}


@dataclass
class _Context:
    fs: Filesystem
    env: dict[str, str]
    build_tree_cache: dict[bytes, bool] = field(default_factory=dict)


def _parent(path: bytes) -> bytes:
    return path.rpartition(b"/")[0]


def _java_home(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    for home in (_parent(path), _parent(_parent(path))):
        if ctx.fs.resolve(home + b"/bin/java" if home else b"bin/java") is not None:
            return True
    return False


def _pycache_with_source(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    if type(node) is not Dir:
        return False
    parent = ctx.fs.lookup(_parent(path))
    if type(parent) is not Dir:
        return False
    for name in node.children:
        if name.endswith(b".pyc") and name.split(b".", 1)[0] + b".py" in parent.children:
            return True
    return False


def _is_dir(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    return type(node) is Dir


def _is_file(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    if type(node) is Dir:
        return False
    kind = ctx.fs.layers[node >> SHIFT].kinds[node & MASK]
    return kind == FILE or kind == HARDLINK


def _in_build_tree(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    folder = _parent(path)
    trail = []
    found = False
    while True:
        cached = ctx.build_tree_cache.get(folder)
        if cached is not None:
            found = cached
            break
        trail.append(folder)
        directory = ctx.fs.lookup(folder)
        if type(directory) is Dir and any(name in BUILD_FILES for name in directory.children):
            found = True
            break
        if not folder:
            break
        folder = _parent(folder)
    for visited in trail:
        ctx.build_tree_cache[visited] = found
    return found


def _languages_in_use(env: dict[str, str]) -> set[bytes]:
    used: set[bytes] = set()
    for key in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for value in env.get(key, "").split(":"):
            value = value.split(".", 1)[0].split("@", 1)[0]
            if value and value not in ("C", "POSIX"):
                used.add(value.encode())
                used.add(value.split("_", 1)[0].encode())
    return used


def _locale_not_in_use(ctx: _Context, path: bytes, node: int | Dir) -> bool:
    if type(node) is not Dir:
        return False
    name = path.rpartition(b"/")[2]
    if path.endswith(b"share/i18n"):
        return True
    in_use = _languages_in_use(ctx.env)
    return name not in in_use and name.split(b"_", 1)[0].split(b"@", 1)[0] not in in_use


PATH_DETECTORS: dict[str, Callable[[_Context, bytes, int | Dir], bool]] = {
    "java_home": _java_home,
    "pycache_with_source": _pycache_with_source,
    "is_dir": _is_dir,
    "is_file": _is_file,
    "in_build_tree": _in_build_tree,
    "locale_not_in_use": _locale_not_in_use,
}
PACKAGE_DETECTORS = ("build_packages", "node_dev_dependencies")


# -- the walk -------------------------------------------------------------------------------------
class _Collector:
    """Accumulates a finding's bytes, counting each data inode once."""

    def __init__(self, fs: Filesystem, rule: Rule) -> None:
        self.fs = fs
        self.finding = Finding(rule=rule)
        self.seen: set[int] = set()
        self.groups: dict[bytes, FindingPath] = {}

    def add_root(self, path: bytes, node: int | Dir, report_as: bytes | None = None) -> None:
        """Claim a root (file or folder) and everything below it; `report_as` names the folder to show."""
        size, files = 0, 0
        if type(node) is Dir:
            stack = [node]
            while stack:
                directory = stack.pop()
                for child in directory.children.values():
                    if type(child) is Dir:
                        stack.append(child)
                    else:
                        s, f = self._file(child)
                        size += s
                        files += f
        else:
            size, files = self._file(node)
        if report_as is not None:
            key = report_as
        elif self.finding.rule.group == "parent" and type(node) is not Dir:
            key = _parent(path)
        else:
            key = path
        slot = self.groups.get(key)
        if slot is None:
            self.groups[key] = FindingPath(key, size, files)
        else:
            slot.bytes += size
            slot.files += files

    def _file(self, node: int) -> tuple[int, int]:
        fs = self.fs
        entries = fs.layers[node >> SHIFT]
        kind = entries.kinds[node & MASK]
        if kind != FILE and kind != HARDLINK:
            return 0, 0
        data = fs.inode.get(node, node)
        if data in self.seen:
            return 0, 1
        self.seen.add(data)
        layer = data >> SHIFT
        data_entries = fs.layers[layer]
        if data_entries.kinds[data & MASK] != FILE:
            return 0, 1
        size = data_entries.sizes[data & MASK]
        finding = self.finding
        finding.by_layer[layer] = finding.by_layer.get(layer, 0) + size
        return size, 1

    def finish(self) -> Finding:
        """The finding with its paths sorted, biggest first."""
        finding = self.finding
        finding.paths = sorted(self.groups.values(), key=lambda p: (-p.bytes, p.path))
        finding.bytes = sum(finding.by_layer.values())
        finding.count = sum(p.files for p in finding.paths)
        return finding


def find_removables(
    fs: Filesystem,
    env: dict[str, str] | None = None,
    packages: Iterable[Any] = (),
    rules: tuple[Rule, ...] | None = None,
) -> Removables:
    """Apply the catalog to the final filesystem."""
    rules = rules if rules is not None else load_catalog()
    compiled = _compile(rules)
    ctx = _Context(fs, env or {})
    collectors: dict[int, _Collector] = {}
    roots: dict[bytes, str] = {}
    comps, owner = compiled.comps, compiled.owner
    any_literal, any_ext, any_other = compiled.any_literal, compiled.any_ext, compiled.any_other
    any_other_first = compiled.any_other_first

    # Each folder carries the partial matches alive below it and, inside a claimed folder that a more
    # specific earlier rule reaches into, the rule that takes whatever that rule does not.
    stack: list[tuple[Dir, bytes, list[tuple[int, int]], int | None, bytes | None]] = [
        (fs.root, b"", list(compiled.anchored), None, None)
    ]
    # In a folder where no pattern is under way, the compiled filter skips the names that start nothing
    # (measured on 210k files: the walk 250 -> 60 ms); the loop below is the same on what it keeps.
    starts_filter = fsmod._fastfs if compiled.any_other_prefixes is not None else None
    other_prefixes = compiled.any_other_prefixes
    while stack:
        directory, prefix, active, fallback, fallback_root = stack.pop()
        if starts_filter is not None and not active and fallback is None:
            items: Iterable[tuple[bytes, int | Dir]] = starts_filter.rule_starts(
                directory.children, any_literal, any_ext, other_prefixes, Dir
            )
        else:
            items = directory.children.items()
        for name, node in items:
            # Most entries match nothing: no list, no path and no call is made for them.
            hits: list[int] = []
            alive: list[tuple[int, int]] = []
            for pid, pos in active:
                if _matches(comps[pid][pos], name):
                    if pos + 1 == len(comps[pid]):
                        hits.append(pid)
                    else:
                        alive.append((pid, pos + 1))
            starts = any_literal.get(name)
            dot = name.rfind(b".")
            if dot > 0:
                by_ext = any_ext.get(name[dot + 1 :])
                if by_ext:
                    starts = starts + by_ext if starts else by_ext
            if any_other_first is not None and any_other_first.fullmatch(name) is not None:
                others = [pid for pid in any_other if _matches(comps[pid][0], name)]
                starts = starts + others if starts else others
            if starts:
                for pid in starts:
                    if len(comps[pid]) == 1:
                        hits.append(pid)
                    else:
                        alive.append((pid, 1))
            if not hits and fallback is None:
                if type(node) is Dir:
                    stack.append((node, prefix + b"/" + name if prefix else name, alive, None, None))
                continue
            path = prefix + b"/" + name if prefix else name
            chosen = _claim(ctx, compiled, hits, path, node) if hits else None
            report_as = None
            if fallback is not None and (chosen is None or fallback < chosen):
                chosen, report_as = fallback, fallback_root
            if chosen is None:
                if type(node) is Dir:
                    stack.append((node, path, alive, None, None))
                continue
            if type(node) is Dir and any(owner[pid] < chosen for pid, _ in alive):
                # an earlier, more specific rule may claim something below: go on inside
                stack.append((node, path, alive, chosen, report_as or path))
                continue
            collector = collectors.get(chosen)
            if collector is None:
                collector = collectors[chosen] = _Collector(fs, rules[chosen])
            collector.add_root(path, node, report_as)
            roots[path] = rules[chosen].id

    _package_rules(fs, rules, packages, collectors, roots)
    findings = [c.finish() for c in collectors.values()]
    # A finding of empty files (an apt lists folder holding only its lock) is noise, except for secrets.
    findings = [f for f in findings if f.bytes or (f.rule.category == "secret" and f.paths)]
    findings.sort(key=lambda f: (-f.bytes, f.rule.id))
    return Removables(findings=findings, roots=roots)


def _claim(ctx: _Context, compiled: _Compiled, hits: list[int], path: bytes, node: int | Dir) -> int | None:
    """The first rule (in catalog order) among the hits that accepts this path."""
    for rule_index in sorted({compiled.owner[pid] for pid in hits}):
        rule = compiled.rules[rule_index]
        excludes = compiled.excludes[rule_index]
        if excludes:
            text = path.decode("utf-8", "surrogateescape")
            if any(_exclude_regex(x).match(text) for x in excludes):
                continue
        if rule.detector is not None:
            check = PATH_DETECTORS.get(rule.detector)
            if check is not None and not check(ctx, path, node):
                continue
        return rule_index
    return None


def _package_rules(
    fs: Filesystem,
    rules: tuple[Rule, ...],
    packages: Iterable[Any],
    collectors: dict[int, _Collector],
    roots: dict[bytes, str],
) -> None:
    """Build-only packages and node devDependencies take their files that no path rule claimed."""
    packages = list(packages)
    if not packages:
        return
    by_detector = {
        rule.detector: index for index, rule in enumerate(rules) if rule.detector in PACKAGE_DETECTORS
    }

    def claimed(path: bytes) -> bool:
        while True:
            if path in roots:
                return True
            if not path:
                return False
            path = _parent(path)

    for package in packages:
        if not package.build_only:
            continue
        detector = "node_dev_dependencies" if package.manager == "npm" else "build_packages"
        if package.manager == "pip" or detector not in by_detector:
            continue
        index = by_detector[detector]
        collector = collectors.get(index)
        if collector is None:
            collector = collectors[index] = _Collector(fs, rules[index])
        took = False
        if package.manager == "npm" and package.location is not None:
            node = fs.lookup(package.location)
            if node is not None and not claimed(package.location):
                collector.add_root(package.location, node)
                roots[package.location] = rules[index].id
                took = True
        else:
            for path in package.paths:
                if claimed(path):
                    continue
                node = fs.lookup(path)
                if node is None or type(node) is Dir:
                    continue
                collector.add_root(path, node)
                took = True
            if took:
                for path in package.paths:
                    if not claimed(path):
                        roots[path] = rules[index].id
        if took:
            collector.finding.packages.append(f"{package.manager}:{package.name}")
