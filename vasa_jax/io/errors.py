"""The one error type for media a user hands us, and the file checks every loader shares."""

from __future__ import annotations

import os
from pathlib import Path


class MediaError(ValueError):
    """A media file (or array) cannot be used. The message names the file and says what is wrong."""

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def check_readable_file(path: str | os.PathLike) -> Path:
    """Raises MediaError unless `path` is an existing, readable, non-empty regular file."""
    p = Path(path)
    if not p.exists():
        raise MediaError(p, "file not found")
    if p.is_dir():
        raise MediaError(p, "is a directory, not a file")
    if not os.access(p, os.R_OK):
        raise MediaError(p, "cannot be read (permission denied)")
    if p.stat().st_size == 0:
        raise MediaError(p, "is empty (zero bytes)")
    return p
