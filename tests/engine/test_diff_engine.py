"""`slimscope diff` on images built by a real engine.

* Two builds of fixtures/images/diffapp that differ in exactly one file, one package and one ENV: every
  reported change is asserted, and the three shared layers are read (decompressed and parsed) once.
* The naive single-stage pyapp image against its multi-stage twin (fixtures/apps/pyapp).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import jsonschema
import pytest

import slimscope.image.blobs as blobs
import slimscope.sources as sources
import slimscope.sources.archive as archive
from slimscope.analysis import analyze
from slimscope.analysis.diff import Diff, diff_analyses, document, schema
from slimscope.commands.diff import load_pair
from slimscope.fs import Dir

OLD_TAG = "slimscope-test/diffapp:v1"
NEW_TAG = "slimscope-test/diffapp:v2"
VERSIONS = {OLD_TAG: "1.2.0", NEW_TAG: "1.10.0"}
PACKAGE_JSON = b"app/node_modules/greeter/package.json"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INDEX_JS = b'module.exports = (name) => "hello " + name;\n'


def greeter_json(version: str) -> bytes:
    """The package.json the Dockerfile writes for a version."""
    return f'{{"name": "greeter", "version": "{version}", "main": "index.js"}}\n'.encode()


@pytest.fixture(scope="module")
def diffapp(docker_client: docker.DockerClient, build_context: Callable[[str], Path]) -> tuple[str, str]:
    """Both builds of fixtures/images/diffapp (classic builder; its cache shares the first layers)."""
    ctx = build_context("diffapp")
    for tag, version in VERSIONS.items():
        log: list[str] = []
        stream = docker_client.api.build(
            path=str(ctx),
            tag=tag,
            buildargs={"GREETER_VERSION": version},
            rm=True,
            forcerm=True,
            network_mode="host",
            pull=False,
            decode=True,
        )
        for chunk in stream:
            log.append(chunk.get("stream", ""))
            if "error" in chunk or "errorDetail" in chunk:
                pytest.fail(f"building {tag} failed: {chunk}\n{''.join(log)[-4000:]}", pytrace=False)
    return OLD_TAG, NEW_TAG


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The diff_ids of every layer blob decompressed and parsed (`scan_layer` calls)."""
    return _count_scans(monkeypatch)


def _count_scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = blobs.scan_layer

    def counting(*args: Any, **kw: Any) -> blobs.LayerScan:
        scan = real(*args, **kw)
        seen.append(scan.diff_id)
        return scan

    for module in (blobs, archive, sources):
        monkeypatch.setattr(module, "scan_layer", counting)
    return seen


def _diff(old: str, new: str) -> Diff:
    old_image, new_image = load_pair(old, new)
    diff = diff_analyses(analyze(old_image), analyze(new_image))
    jsonschema.validate(document(diff), schema())
    return diff


def _slimscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slimscope", "diff", *args, "--no-progress"],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )


# -- two builds of one Dockerfile -----------------------------------------------------------------
def test_two_builds_differ_in_one_file_one_package_one_env(
    diffapp: tuple[str, str], scans: list[str]
) -> None:
    old_tag, new_tag = diffapp
    old_image, new_image = load_pair(old_tag, new_tag)
    assert len(old_image.layers) == len(new_image.layers) == 4
    # OLD's four layers were scanned; of NEW's only the last, the one after the ARG.
    assert sorted(scans) == sorted(
        [layer.diff_id for layer in old_image.layers] + [new_image.layers[3].diff_id]
    )
    assert [n.entries is o.entries for o, n in zip(old_image.layers, new_image.layers)] == [
        True,
        True,
        True,
        False,
    ]
    old, new = analyze(old_image), analyze(new_image)
    diff = diff_analyses(old, new)
    doc = document(diff)
    jsonschema.validate(doc, schema())

    # Layers: three shared, diverging at the RUN that uses the build argument.
    layers = diff.layers
    assert [layer.index for layer in layers.shared] == [0, 1, 2]
    assert [layer.diff_id for layer in layers.shared] == [layer.diff_id for layer in old_image.layers[:3]]
    assert layers.diverged_at == 3
    assert layers.reused == 3
    assert [layer.index for layer in layers.old] == [layer.index for layer in layers.new] == [3]
    assert layers.shared[0].instruction.startswith("COPY file:")
    assert layers.new[0].instruction.startswith("RUN printf")
    assert layers.new[0].size_bytes == layers.old[0].size_bytes + 1
    old_steps = [h.line for h in layers.old_history]
    new_steps = [h.line for h in layers.new_history]
    assert "ENV GREETER_VERSION=1.2.0" in old_steps
    assert "ENV GREETER_VERSION=1.10.0" in new_steps
    assert [s for s in old_steps if "GREETER_VERSION=1" not in s] == [
        s for s in new_steps if "GREETER_VERSION=1" not in s
    ]

    # Files: exactly one, the package.json, one byte bigger; index.js was stored again, unchanged.
    (change,) = diff.changes
    assert (change.path, change.kind, change.type, change.what) == (
        PACKAGE_JSON,
        "modified",
        "file",
        ("content",),
    )
    assert (change.old_size, change.new_size, change.delta) == (
        len(greeter_json("1.2.0")),
        len(greeter_json("1.10.0")),
        1,
    )
    assert diff.ignored == []
    assert doc["files"]["modified"] == [
        {
            "path": PACKAGE_JSON.decode(),
            "type": "file",
            "old_type": "file",
            "old_size": len(greeter_json("1.2.0")),
            "new_size": len(greeter_json("1.10.0")),
            "delta": 1,
            "changed": ["content"],
            "old_mode": "0644",
            "new_mode": "0644",
            "old_owner": "0:0",
            "new_owner": "0:0",
            "old_digest": "sha256:" + hashlib.sha256(greeter_json("1.2.0")).hexdigest(),
            "new_digest": "sha256:" + hashlib.sha256(greeter_json("1.10.0")).hexdigest(),
        }
    ]
    assert doc["files"]["added"] == doc["files"]["removed"] == doc["files"]["moved"] == []
    assert [d["path"] for d in doc["files"]["directories"]] == ["app/node_modules/greeter"]

    # Packages: npm greeter upgraded (semver: 1.10.0 comes after 1.2.0), one byte bigger.
    (package,) = diff.packages
    assert (package.kind, package.manager, package.name, package.old_version, package.new_version) == (
        "upgraded",
        "npm",
        "greeter",
        "1.2.0",
        "1.10.0",
    )
    assert (package.old_bytes, package.new_bytes, package.delta) == (
        len(greeter_json("1.2.0")) + len(INDEX_JS),
        len(greeter_json("1.10.0")) + len(INDEX_JS),
        1,
    )

    # Config: the one ENV.
    assert [(c.field, c.kind, c.key, c.old, c.new) for c in diff.config] == [
        ("env", "changed", "GREETER_VERSION", "1.2.0", "1.10.0")
    ]

    # Findings: nothing introduced or fixed; index.js stored again hides the same bytes in both.
    f = diff.findings
    assert f.rules == [] and f.hidden_introduced == [] and f.hidden_fixed == []
    assert f.hidden == (len(INDEX_JS), len(INDEX_JS))
    assert all(old_bytes == new_bytes for old_bytes, new_bytes in f.categories.values())

    s = diff.summary
    assert not s.identical
    assert (s.bytes_delta, s.image_bytes_delta, s.files_delta, s.hidden_bytes_delta) == (1, 1, 0, 0)
    assert (s.added, s.removed, s.modified, s.moved, s.ignored) == (0, 0, 1, 0, 0)
    assert (s.new_removable_bytes, s.removable_bytes_delta) == (0, 0)
    assert doc["summary"]["packages"] == {
        "added": 0,
        "removed": 0,
        "upgraded": 1,
        "downgraded": 0,
        "changed": 0,
    }
    assert doc["summary"]["shared_layers"] == 3


def test_an_image_against_itself(diffapp: tuple[str, str], scans: list[str]) -> None:
    old_tag, _ = diffapp
    diff = _diff(old_tag, old_tag)
    assert len(scans) == 4  # every layer of NEW recognised by its name in the export and only hashed
    assert diff.identical
    assert diff.changes == diff.ignored == diff.packages == diff.config == []
    assert diff.layers.diverged_at is None and len(diff.layers.shared) == 4
    proc = _slimscope(old_tag, old_tag, "--json", "-")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, schema())
    assert doc["summary"]["identical"] is True
    assert doc["summary"]["bytes_delta"] == doc["summary"]["image_bytes_delta"] == 0
    proc = _slimscope(old_tag, old_tag)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("No differences.")


def test_a_tag_against_an_archive(
    diffapp: tuple[str, str], saved_archive: Callable[[str], Path], scans: list[str]
) -> None:
    old_tag, new_tag = diffapp
    archived = str(saved_archive(new_tag))
    scans.clear()
    diff = _diff(old_tag, archived)
    assert len(scans) == 4 + 1  # `docker save` names shared layers as the engine's export does
    assert [(c.path, c.kind) for c in diff.changes] == [(PACKAGE_JSON, "modified")]
    assert [(p.name, p.kind) for p in diff.packages] == [("greeter", "upgraded")]
    assert [(c.key, c.new) for c in diff.config] == [("GREETER_VERSION", "1.10.0")]
    assert diff.new.image.source == "docker-archive"
    scans.clear()
    assert _diff(archived, new_tag).identical
    assert len(scans) == 4


def test_exit_codes_and_ci_on_the_engine(diffapp: tuple[str, str]) -> None:
    old_tag, new_tag = diffapp
    proc = _slimscope(old_tag, new_tag)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "Layers: 3 of 4/4 shared (read once), diverging at layer 3" in out
    assert "env GREETER_VERSION  1.2.0 -> 1.10.0" in out
    assert "+1 B  upgraded   npm greeter 1.2.0 -> 1.10.0" in out
    assert "+1 B  ~ app/node_modules/greeter/package.json  (content)" in out
    proc = _slimscope(old_tag, new_tag, "--ci", "--max-growth", "0")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-2:] == [
        "FAIL  max-growth: growth +1 B, at most 0 B",
        "CI result: FAIL (0 of 1 checks pass)",
    ]
    proc = _slimscope(
        old_tag, new_tag, "--max-growth", "1", "--max-new-files", "0", "--max-new-removable", "0"
    )
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[-1] == "CI result: PASS (3 of 3 checks pass)"
    proc = _slimscope(old_tag, "slimscope-test/diffapp:no-such-tag")
    assert proc.returncode == 2
    assert proc.stdout == ""
    missing = "image 'slimscope-test/diffapp:no-such-tag' was not found in the local Docker engine"
    assert proc.stderr.splitlines() == [f"slimscope: error: {missing}"]


# -- the naive image against its multi-stage twin -------------------------------------------------
@pytest.fixture(scope="module")
def pyapp_diff(pyapp_images: dict[str, str]) -> tuple[Diff, list[str]]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        seen = _count_scans(monkeypatch)
        diff = _diff(pyapp_images["naive"], pyapp_images["multistage"])
    return diff, seen


def _below(diff: Diff, folder: bytes) -> set[bytes]:
    """Every path at or below a folder of OLD's filesystem."""
    node = diff.old.fs.lookup(folder)
    assert isinstance(node, Dir), folder
    found = {folder}
    stack = [(folder, node)]
    while stack:
        prefix, directory = stack.pop()
        for name, child in directory.children.items():
            path = prefix + b"/" + name
            found.add(path)
            if isinstance(child, Dir):
                stack.append((path, child))
    return found


def test_naive_against_multistage_layers(pyapp_diff: tuple[Diff, list[str]]) -> None:
    diff, seen = pyapp_diff
    assert len(diff.old.image.layers) == len(diff.new.image.layers) == 4
    assert len(seen) == 4 + 3  # the debootstrapped base layer is read once
    assert [layer.index for layer in diff.layers.shared] == [0]
    assert diff.layers.reused == 1
    assert diff.layers.shared[0].instruction.startswith("slimscope fixture: debootstrap")
    assert diff.layers.diverged_at == 1
    assert "gcc" in (diff.layers.old[0].instruction or "")
    assert "gcc" not in (diff.layers.new[0].instruction or "")


def test_naive_against_multistage_packages(pyapp_diff: tuple[Diff, list[str]]) -> None:
    diff, _ = pyapp_diff
    by_name = {(p.manager, p.name): p for p in diff.packages}
    gcc = by_name[("dpkg", "gcc-12")]
    old_gcc = next(p for p in diff.old.packages if p.manager == "dpkg" and p.name == "gcc-12")
    assert (gcc.kind, gcc.build_only, gcc.old_version, gcc.new_version) == (
        "removed",
        True,
        old_gcc.version,
        None,
    )
    assert gcc.delta == -old_gcc.bytes < 0
    for name in ("git", "cpp-12", "libpython3.11-dev", "python3-dev", "python3-pip"):
        assert by_name[("dpkg", name)].kind == "removed", name
    # python3 and what it needs are kept: same version, same files.
    for name in ("python3", "python3.11", "libpython3.11-stdlib", "libc6"):
        assert ("dpkg", name) not in by_name, name
        old_version = next(p.version for p in diff.old.packages if p.name == name and p.manager == "dpkg")
        assert old_version == next(
            p.version for p in diff.new.packages if p.name == name and p.manager == "dpkg"
        )
    assert all(p.kind == "removed" for p in diff.packages if p.manager == "dpkg")
    # MarkupSafe moved from the system site-packages into the virtualenv: the same version elsewhere.
    markupsafe = by_name[("pip", "MarkupSafe")]
    assert markupsafe.kind == "changed"
    assert markupsafe.old_version == markupsafe.new_version == "3.0.2"
    assert markupsafe.new_location.startswith(b"opt/venv/lib/python3.11/site-packages/")


def test_naive_against_multistage_files(pyapp_diff: tuple[Diff, list[str]]) -> None:
    diff, _ = pyapp_diff
    kind = {c.path: c.kind for c in diff.changes}
    git = _below(diff, b"app/.git")
    assert len(git) > 10
    assert {path: kind.get(path) for path in git} == dict.fromkeys(git, "removed")
    for path in (
        b"app/tests/test_pages.py",
        b"app/.env",
        b"app/Dockerfile",
        b"app/wheels/markupsafe-3.0.2.tar.gz",
    ):
        assert kind[path] == "removed", path
    for path in (b"app/app/main.py", b"usr/bin/python3.11"):
        assert path not in kind, path
    assert kind[b"usr/lib/gcc"] == "removed"
    assert kind[b"opt/venv/bin/activate"] == "added"
    s = diff.summary
    assert s.bytes_delta == diff.new.stats.bytes - diff.old.stats.bytes < -500_000_000
    assert s.image_bytes_delta == diff.new.summary.image_bytes - diff.old.summary.image_bytes
    assert s.files_delta == diff.new.stats.files - diff.old.stats.files
    assert s.added_bytes - s.removed_bytes + s.ignored_bytes_delta == sum(
        c.delta for c in diff.changes
    ) + sum(c.delta for c in diff.ignored)
    assert s.ignored > 0  # apt's lists, bytecode
    assert not any(c.path.startswith(b"var/lib/apt/lists/") for c in diff.changes)
    top = diff.directories(5)
    assert top[0].delta < 0 and abs(top[0].delta) >= abs(top[-1].delta)


def test_naive_against_multistage_findings_and_config(pyapp_diff: tuple[Diff, list[str]]) -> None:
    diff, _ = pyapp_diff
    f = diff.findings
    naive_toolchain = diff.old.summary.removable_bytes["toolchain"]
    assert naive_toolchain > 100_000_000
    assert f.categories["toolchain"] == (naive_toolchain, 0)
    doc = document(diff)
    assert doc["findings"]["categories"]["toolchain"]["delta"] == -naive_toolchain
    rules = {r.finding.rule.id: r for r in f.rules}
    for rule in ("SS101", "SS103", "SS109", "SS110", "SS111", "SS202", "SS205", "SS301", "SS502"):
        assert rules[rule].status == "fixed", rule
        assert rules[rule].new_bytes == 0
    assert (b"app/.git", rules["SS301"].old_bytes) in rules["SS301"].fixed
    assert f.new_removable_bytes == diff.summary.new_removable_bytes == 0
    assert diff.summary.removable_bytes_delta == sum(new - old for old, new in f.categories.values()) < 0
    # Config: the same command, user and workdir; PATH and the fixture labels differ.
    assert [(c.field, c.kind, c.key) for c in diff.config] == [
        ("env", "changed", "PATH"),
        ("labels", "changed", "org.slimscope.fixture"),
        ("labels", "changed", "org.slimscope.fixture.hash"),
    ]
    path = diff.config[0]
    assert (path.old, path.new) == (DEFAULT_PATH, "/opt/venv/bin:" + DEFAULT_PATH)
    assert (diff.config[1].old, diff.config[1].new) == ("pyapp-naive", "pyapp-multistage")


def test_naive_against_multistage_text(pyapp_images: dict[str, str]) -> None:
    proc = _slimscope(pyapp_images["naive"], pyapp_images["multistage"], "--top", "40")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "Layers: 1 of 4/4 shared (read once), diverging at layer 1" in out
    assert "removed    dpkg gcc-12 " in out
    assert "fixed      GCC compiler [SS101]" in out
    assert "gone: app/.git (" in out
    assert "\x1b" not in out
    assert out.rstrip().endswith("The images differ.")
