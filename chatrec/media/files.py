"""The one error for unusable media files, and the checks every media loader starts with."""

from __future__ import annotations

import os
import re
from pathlib import Path


class MediaError(ValueError):
    """An image or audio file we refuse to use; the message names the file and says why.

    Users see the message as it is (web UI, terminal): it is kept to one line, and the file is named
    by its base name (:func:`shown_name`) so that a server's upload or temp directory is not shown.
    """

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def shown_name(path: str | os.PathLike) -> str:
    """The name a user-facing message gives a file: its base name, without the directories."""
    return Path(path).name or str(path)


def quiet_error(e: BaseException, path: str | os.PathLike) -> str:
    """A library's error text for one line of a message: the file's full path replaced by its base name."""
    text = str(e)
    full = str(path)
    for p in {full, os.path.abspath(full)}:
        if p and p != shown_name(path):
            text = text.replace(p, shown_name(path))
    return re.sub(r"\s+", " ", text).strip()


def check_file(path: Path, kind: str) -> None:
    name = shown_name(path)
    if not path.exists():
        raise MediaError(f"{kind} file not found: {name}")
    if not path.is_file():
        raise MediaError(f"{kind} path is not a file: {name}")
    if path.stat().st_size == 0:
        raise MediaError(f"{kind} file is empty (0 bytes): {name}")
