"""Writing a folder all at once: a checkpoint or converted weights folder is never left half written."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


@contextlib.contextmanager
def folder_written_whole(out):
    """Yields an empty temporary folder beside `out` to write into. When the block ends without an error the
    files are made readable by others (safetensors writes owner-only files, and a checkpoint ships to other
    users), and the folder replaces `out` (an existing `out` is removed: the caller decides whether it may be);
    on an error it is removed and `out` is untouched."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        for file in tmp.rglob("*"):
            if file.is_file():
                file.chmod(0o666 & ~umask)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
