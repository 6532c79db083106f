"""Writing the user's output files: whole or not at all."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO

from slimscope.errors import SlimscopeError


def write_atomically(path: str, write: Callable[[IO[str]], object]) -> None:
    """Write a regular file through a temporary sibling so readers never see half a document.

    Devices, pipes and other special files (`/dev/null`, `/dev/stdout`, a FIFO) are written in place:
    replacing them would destroy them.
    """
    try:
        special = os.path.exists(path) and not os.path.isfile(path)
        if special:
            with open(path, "w", encoding="utf-8") as out:
                write(out)
            return
    except OSError as exc:
        raise SlimscopeError(f"cannot write {path}: {exc.strerror or exc}") from None
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            write(out)
        os.replace(tmp, path)
    except OSError as exc:
        raise SlimscopeError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
