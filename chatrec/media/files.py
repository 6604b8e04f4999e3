"""The one error for unusable media files, and the checks every media loader starts with."""

from __future__ import annotations

from pathlib import Path


class MediaError(ValueError):
    """An image or audio file we refuse to use; the message names the file and says why."""


def check_file(path: Path, kind: str) -> None:
    if not path.exists():
        raise MediaError(f"{kind} file not found: {path}")
    if not path.is_file():
        raise MediaError(f"{kind} path is not a file: {path}")
    if path.stat().st_size == 0:
        raise MediaError(f"{kind} file is empty (0 bytes): {path}")
