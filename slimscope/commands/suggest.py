"""`slimscope suggest IMAGE`: a multi-stage Dockerfile whose runtime stage holds only the runtime closure.

Prints the Dockerfile (or writes it with --write), and a summary; --json writes the JSON document with
its `suggestion` object. Nothing runs unless --verify is given: then the suggestion is built with the
engine (network_mode host), the original and the suggested image run the same command under a time
limit (no network), their exit status and output are compared, the real size is measured, and the
containers (and the built image, unless --keep) are removed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
from typing import Any

from slimscope.errors import SlimscopeError, SourceError

EXIT_OK = 0
EXIT_FAILED = 1
DEFAULT_TIMEOUT = 60.0
OUTPUT_KEPT = 4000  # characters of container output kept in the report


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `slimscope suggest`."""
    parser = argparse.ArgumentParser(
        prog="slimscope suggest",
        description="Suggest a multi-stage Dockerfile whose runtime stage ships only what the command needs.",
    )
    parser.add_argument("image", metavar="IMAGE", help="the image to read (as for `slimscope IMAGE`)")
    parser.add_argument("--dockerfile", metavar="PATH", help="the Dockerfile the image was built from")
    parser.add_argument(
        "--build-arg", metavar="KEY=VALUE", action="append", default=[], help="a build argument (repeatable)"
    )
    parser.add_argument("--write", metavar="FILE", help="write the Dockerfile to FILE instead of printing it")
    parser.add_argument(
        "--json", metavar="FILE", help="write the JSON document with the suggestion ('-': stdout)"
    )
    verify = parser.add_argument_group("verification (runs containers; only with --verify)")
    verify.add_argument(
        "--verify", action="store_true", help="build the suggestion and compare it with the image"
    )
    verify.add_argument(
        "--smoke",
        metavar="CMD",
        help="the command both containers run (replaces CMD; default: the image's own)",
    )
    verify.add_argument("--context", metavar="DIR", help="build context (default: the Dockerfile's folder)")
    verify.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help=f"time limit of each run (default {DEFAULT_TIMEOUT:g}; a server still running then is fine)",
    )
    verify.add_argument(
        "--keep", action="store_true", help="keep the built image (tagged slimscope-suggest:...)"
    )
    parser.add_argument("--image", dest="select", metavar="TAG", help="which image of a multi-image archive")
    parser.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="which platform of an index")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-cache", action="store_true", help="neither use nor fill the layer cache (see README)"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    return parser


def run(args: argparse.Namespace) -> int:
    """Read the image, work out the closure and the plan, print or write it; verify when asked."""
    from slimscope.cli import _cache, _pairs, _progress

    if args.timeout <= 0:
        raise SlimscopeError("--timeout must be positive")
    if (args.smoke or args.context or args.keep) and not args.verify:
        raise SlimscopeError("--smoke, --context and --keep only apply with --verify")
    with _progress(enabled=not args.no_progress and sys.stderr.isatty()) as progress:
        analysis, suggestion = make_suggestion(
            args.image,
            dockerfile=args.dockerfile,
            build_args=_pairs(args.build_arg, "--build-arg"),
            select=args.select,
            platform=args.platform,
            progress=progress,
            local_images=None if not args.verify else _local_images(),
            cache=_cache(args),
        )
    if args.verify:
        suggestion.verification = verify(
            suggestion,
            original=analysis.image.id,
            dockerfile=args.dockerfile,
            context=args.context,
            smoke=args.smoke,
            timeout=args.timeout,
            keep=args.keep,
        )
    _output(args, analysis, suggestion)
    if suggestion.verification is not None and not suggestion.verification.get("passed"):
        return EXIT_FAILED
    return EXIT_OK


def make_suggestion(
    image_text: str,
    *,
    dockerfile: str | None = None,
    build_args: dict[str, str] | None = None,
    select: str | None = None,
    platform: str | None = None,
    progress=None,
    local_images: list[tuple[str, list[str]]] | None = None,
    cache=None,
):
    """Read an image, work out its runtime closure and plan the rewrite: (Analysis, Suggestion).

    `local_images` (tag, diff_ids) name the base; by default they are asked from the engine when the
    image comes from it.
    """
    from slimscope.analysis import analyze
    from slimscope.analysis.closure import runtime_closure
    from slimscope.analysis.suggest import find_base, plan
    from slimscope.image.inspect import ContentReader
    from slimscope.sources import load_spec, parse_source

    parsed = text = None
    if dockerfile:
        from slimscope.analysis.dockerfile import read_dockerfile

        parsed = read_dockerfile(dockerfile, build_args or {})
        with open(dockerfile, encoding="utf-8") as handle:  # read_dockerfile checked it is UTF-8
            text = handle.read()
    spec = parse_source(image_text, select)
    image = load_spec(spec, platform=platform, progress=progress, cache=cache)
    analysis = analyze(image)
    if progress is not None and progress.start is not None:
        progress.start("reading file contents again", None)
    reader = ContentReader(image, spec, progress=progress.advance if progress is not None else None)
    closure = runtime_closure(analysis, reader.read)
    if local_images is None:
        local_images = _local_images() if spec.kind == "engine" else []
    base = find_base(analysis, closure, dockerfile=parsed, local_images=local_images)
    build_ref = spec.location if spec.kind == "engine" else (image.tags[0] if image.tags else image.id)
    suggestion = plan(
        analysis,
        closure,
        base,
        image=image.reference,
        build_ref=build_ref,
        dockerfile=parsed,
        dockerfile_text=text,
    )
    suggestion.read_stats = reader.stats
    return analysis, suggestion


def _output(args: argparse.Namespace, analysis, suggestion) -> None:
    from rich.console import Console

    from slimscope.output import write_atomically
    from slimscope.report.suggest_text import render

    json_to_stdout = args.json == "-"
    if args.json:
        from slimscope.report.json_doc import document, dump

        doc = document(analysis)
        if json_to_stdout:
            dump(doc, sys.stdout)
        else:
            write_atomically(args.json, lambda out: dump(doc, out))
    if args.write:
        write_atomically(args.write, lambda out: out.write(suggestion.dockerfile))
    elif not json_to_stdout:
        sys.stdout.write(suggestion.dockerfile)  # safe as is: untrusted parts are escaped or JSON-encoded
        sys.stdout.flush()
    summary_to_stdout = bool(args.write) and not json_to_stdout
    console = Console(file=sys.stdout if summary_to_stdout else sys.stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 140
        console.soft_wrap = True  # long lines stay whole (grep-able), as in `slimscope IMAGE`'s summary
    render(suggestion, console)


# -- the engine ------------------------------------------------------------------------------------------
def _local_images() -> list[tuple[str, list[str]]]:
    """(tag, diff_ids) of the engine's tagged images; [] when no engine answers."""
    try:
        from slimscope.sources.engine import connect

        client = connect()
    except SourceError:
        return []
    out = []
    try:
        for summary in client.api.images():
            tags = sorted(t for t in summary.get("RepoTags") or [] if t and t != "<none>:<none>")
            if not tags:
                continue
            try:
                layers = client.api.inspect_image(summary["Id"]).get("RootFS", {}).get("Layers") or []
            except Exception:  # removed meanwhile, or a refusal: skip it
                continue
            out.append((tags[0], [layer for layer in layers if isinstance(layer, str)]))
    except Exception:  # the listing itself failed: work without local images
        return []
    finally:
        client.close()
    return out


def verify(
    suggestion,
    *,
    original: str,
    dockerfile: str | None,
    context: str | None,
    smoke: str | None,
    timeout: float,
    keep: bool,
) -> dict[str, Any]:
    """Build the suggested Dockerfile, run both images, compare; returns the verification report."""
    from slimscope.sources.engine import connect

    client = connect()
    try:
        try:
            client.images.get(original)
        except Exception:
            raise SourceError(
                "--verify needs the image in the local engine (`docker load` an archive first)"
            ) from None
        tag = "slimscope-suggest:" + original.partition(":")[2][:12]
        command = shlex.split(smoke) if smoke else None
        result: dict[str, Any] = {
            "tag": tag,
            "command": command,
            "built": False,
            "passed": False,
            "estimated_bytes": suggestion.estimated_bytes,
        }
        before = _image_ids(client)
        with tempfile.TemporaryDirectory(prefix="slimscope-suggest-") as scratch:
            path = os.path.join(scratch, "Dockerfile")
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(suggestion.dockerfile)
            if context is None:
                context = os.path.dirname(os.path.abspath(dockerfile)) if dockerfile else scratch
            if not os.path.isdir(context):
                raise SlimscopeError(f"--context {context}: no such folder")
            error, log = _build(client, context, path, tag, timeout=max(timeout, 1800))
        result["build_log"] = log[-OUTPUT_KEPT:]
        if error is not None:
            result["error"] = error
            _remove_stage_images(client, before)
            return result
        result["built"] = True
        try:
            result["original"] = _run(client, original, command, timeout)
            result["suggested"] = _run(client, tag, command, timeout)
            a, b = result["original"], result["suggested"]
            result["same_exit"] = (a["exit_code"], a["timed_out"]) == (b["exit_code"], b["timed_out"])
            # a server's log lines carry the time it started: the same server, seconds apart
            result["same_output"] = mask_times(a["output"]) == mask_times(b["output"])
            result["passed"] = result["same_exit"] and result["same_output"]
            size = int(client.images.get(tag).attrs.get("Size") or 0)
            original_size = int(client.images.get(original).attrs.get("Size") or 0)
            result.update(
                size_bytes=size,
                original_size_bytes=original_size,
                saved_bytes=original_size - size,
            )
        finally:
            result["kept"] = keep
            if not keep:
                try:
                    client.images.remove(tag, noprune=False)
                except Exception:  # already gone, or in use: leave it
                    result["kept"] = True
            _remove_stage_images(client, before)
        return result
    finally:
        client.close()


_TIMES = None


def mask_times(output: str) -> str:
    """Output with dates and times of day replaced by `<time>`, to compare two runs of one program.

    Masks ISO 8601 and Go/syslog-style stamps (`2026-12-04T19:22:06.123Z`, `2026/12/04 19:22:06`,
    `19:22:06,123`); anything else a run prints differently still counts.
    """
    global _TIMES
    if _TIMES is None:
        import re

        date = r"\d{4}[-/]\d{2}[-/]\d{2}"
        clock = r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
        _TIMES = re.compile(rf"(?:{date}(?:[T ]{clock})?|{clock})")
    return _TIMES.sub("<time>", output)


def _image_ids(client) -> set[str]:
    """Every image id of the engine, intermediate ones included."""
    try:
        return {str(i) for i in client.api.images(all=True, quiet=True)}
    except Exception:  # no listing: nothing will be cleaned up
        return set()


def _remove_stage_images(client, before: set[str]) -> None:
    """Remove the untagged images of the builder, prune and rebuild stages this build made."""
    if not before:
        return
    try:
        dangling = [str(i) for i in client.api.images(quiet=True, filters={"dangling": True})]
    except Exception:  # listing failed: leave them
        return
    for image_id in dangling:
        if image_id in before:
            continue
        with contextlib.suppress(Exception):  # a child image still uses it, or it is gone already
            client.api.remove_image(image_id, force=False, noprune=False)


def _build(client, context: str, dockerfile: str, tag: str, *, timeout: float) -> tuple[str | None, str]:
    """Build with the classic builder through the SDK; (error or None, log)."""
    log: list[str] = []
    try:
        stream = client.api.build(
            path=context,
            dockerfile=dockerfile,
            tag=tag,
            rm=True,
            forcerm=True,
            network_mode="host",
            pull=False,
            decode=True,
            timeout=int(timeout),
        )
        for chunk in stream:
            if "stream" in chunk:
                log.append(str(chunk["stream"]))
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("error") or (chunk.get("errorDetail") or {}).get("message", "")
                return str(detail).strip() or "the build failed", "".join(log)
    except Exception as exc:  # the SDK's APIError, BuildError, connection errors
        return f"{exc.__class__.__name__}: {exc}", "".join(log)
    return None, "".join(log)


def _run(client, image: str, command: list[str] | None, timeout: float) -> dict[str, Any]:
    """Run one container (no network) until it exits or the time limit; its exit status and output."""
    container = client.containers.create(image, command=command, network_mode="none", detach=True)
    timed_out = False
    exit_code = None
    try:
        container.start()
        try:
            exit_code = int(container.wait(timeout=timeout).get("StatusCode", -1))
        except Exception:  # requests' ReadTimeout / ConnectionError: still running
            timed_out = True
            with contextlib.suppress(Exception):  # it may have exited in between
                container.kill()
        output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
    finally:
        with contextlib.suppress(Exception):  # removed already
            container.remove(force=True)
    return {
        "exit_code": exit_code,
        "timed_out": timed_out,
        "output": output[-OUTPUT_KEPT:],
    }
