"""The removables catalog: every rule fires on its examples and stays quiet on its counter-examples."""

from __future__ import annotations

import io
import tarfile

import pytest

import slimscope.fs
from slimscope.analysis.rules import CATEGORIES, find_removables, load_catalog
from slimscope.fs import Filesystem
from slimscope.image.tarstream import TarStream

RULES = load_catalog()


@pytest.fixture(autouse=True, params=["compiled", "python"])
def walk_filter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the compiled name filter of the rule walk and without it."""
    if request.param == "python":
        monkeypatch.setattr(slimscope.fs, "_fastfs", None)
    elif slimscope.fs._fastfs is None:
        pytest.skip("the compiled loops are not built")
    return request.param


def build_fs(spec: list[str], sizes: dict[str, int] | None = None) -> Filesystem:
    """One layer from example paths: "path" (a 100-byte file), "path=text", or "folder/"."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for item in spec:
            path, sep, text = item.partition("=")
            info = tarfile.TarInfo(path)
            if path.endswith("/") and not sep:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
                continue
            data = text.encode() if sep else b"x" * (sizes or {}).get(path, 100)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    stream = TarStream()
    stream.feed(buf.getvalue())
    stream.close()
    return Filesystem([stream.entries])


def _fired(spec: list[str]) -> set[str]:
    fs = build_fs(spec)
    packages = []
    try:
        from slimscope.analysis.packages import read_packages

        packages = read_packages(fs)
    except ImportError:
        pass
    return {f.rule.id for f in find_removables(fs, {}, packages).findings}


def test_catalog_is_well_formed() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert rule.category in CATEGORIES
        assert rule.paths or rule.detector, rule.id
        assert rule.rationale and rule.remedy and rule.title
        assert rule.examples.get("fire") and rule.examples.get("quiet"), f"{rule.id} needs examples"


@pytest.mark.parametrize(
    ("rule_id", "spec"),
    [(rule.id, spec) for rule in RULES for spec in rule.examples["fire"]],
)
def test_rule_fires(rule_id: str, spec: list[str]) -> None:
    assert rule_id in _fired(spec)


@pytest.mark.parametrize(
    ("rule_id", "spec"),
    [(rule.id, spec) for rule in RULES for spec in rule.examples["quiet"]],
)
def test_rule_stays_quiet(rule_id: str, spec: list[str]) -> None:
    assert rule_id not in _fired(spec)


def test_bytes_count_each_inode_once_and_first_rule_wins() -> None:
    fs = build_fs(
        ["usr/include/python3.11/Python.h", "usr/include/stdio.h", "usr/lib/gcc/x86_64-linux-gnu/12/cc1"],
        sizes={
            "usr/include/python3.11/Python.h": 5000,
            "usr/include/stdio.h": 700,
            "usr/lib/gcc/x86_64-linux-gnu/12/cc1": 30000,
        },
    )
    found = {f.rule.id: f for f in find_removables(fs).findings}
    assert found["SS108"].bytes == 5000
    assert [(p.path, p.bytes) for p in found["SS108"].paths] == [(b"usr/include/python3.11", 5000)]
    assert found["SS109"].bytes == 700  # python3.11 was claimed by SS108 first
    assert found["SS101"].bytes == 30000
    assert found["SS101"].layer == 0
    removables = find_removables(fs)
    assert removables.rule_of(b"usr/include/python3.11/Python.h") == "SS108"
    assert removables.rule_of(b"usr/bin/python3") is None
    assert removables.by_category()["toolchain"] == 35700


def test_grouped_rules_report_folders() -> None:
    fs = build_fs(["src/app/Makefile", "src/app/a.c", "src/app/b.c", "src/app/lib/c.c"])
    finding = next(f for f in find_removables(fs).findings if f.rule.id == "SS304")
    assert [(p.path, p.bytes, p.files) for p in finding.paths] == [
        (b"src/app", 200, 2),
        (b"src/app/lib", 100, 1),
    ]
    assert finding.count == 3


def test_locales_in_use_are_kept() -> None:
    fs = build_fs(["usr/share/locale/de/LC_MESSAGES/x.mo", "usr/share/locale/fr/LC_MESSAGES/x.mo"])
    found = find_removables(fs, {"LANG": "de_DE.UTF-8"}).findings
    paths = [p.path for f in found if f.rule.id == "SS403" for p in f.paths]
    assert paths == [b"usr/share/locale/fr"]


def _catalog_components() -> list[str]:
    """Every path component glob of the catalog (the "**/" prefix dropped)."""
    found = []
    for rule in RULES:
        for glob in rule.paths:
            found += (glob[3:] if glob.startswith("**/") else glob).split("/")
    return sorted(set(found))


def _names_for(glob: str) -> list[str]:
    """Names around a glob: its stars filled in several ways, cut short, and run on."""
    fills = ["", "x", "12", "-linux-gnu-", ".so.1"]
    names = {glob.replace("*", fill).replace("?", "q").replace("[0-9]", "7") for fill in fills}
    names |= {n[:-1] for n in names if n} | {n + "x" for n in names} | {"x" + n for n in names}
    return sorted(names)


def test_component_matchers_agree_with_fnmatch() -> None:
    """Literal, prefix and suffix matchers (no regex) decide as fnmatch's full glob does."""
    from fnmatch import fnmatchcase

    from slimscope.analysis.rules import _component, _matches

    globs = _catalog_components()
    names = sorted({n for g in globs for n in _names_for(g)} | {"gcc", "gcc-12", "python3.11", ".so", ""})
    kinds = {type(_component(g)).__name__ for g in globs}
    assert kinds == {"bytes", "tuple", "Pattern"}
    checked = 0
    for glob in globs:
        matcher = _component(glob)
        for name in names:
            assert _matches(matcher, name.encode()) == fnmatchcase(name, glob), (glob, name)
            checked += 1
    assert checked > 50_000
