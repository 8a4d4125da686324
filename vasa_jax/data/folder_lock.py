"""One run at a time on an output folder: an exclusive flock on a lock file inside it, held for the run's life.

The kernel drops a flock when its holder exits, however it exits (kill -9 included), so a lock left by a dead
run never blocks the next one. The holder writes its pid, host and start time into the file, which a refused
run quotes. The file is removed when the run ends; a run that opened it just before it was removed notices (the
path no longer names the file it locked) and takes a fresh one. On NFS, flock is carried by NFS's own locks.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
from pathlib import Path

from vasa_jax.errors import ConfigError

LOCK_NAME = ".vasa-jax.lock"


class FolderBusy(ConfigError):
    """Another live run holds the folder."""


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that has not recorded itself yet"


@contextlib.contextmanager
def folder_lock(folder: Path, what: str = "run"):
    """Hold `folder` (created if missing) for the duration of the with-block; FolderBusy if a live run holds it.

    what: how the refusal names the holder's kind of run ("preprocess run").
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                os.close(fd)
                raise
            holder = _holder(fd)
            os.close(fd)
            raise FolderBusy(f"{folder}: in use by another {what} ({holder}); wait for it to finish, or stop it "
                             "and rerun to resume") from None
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the file was removed by a run that just ended: lock the one that now stands there
    try:
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": started}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # while still holding it, so nobody can take the file being removed
        os.close(fd)
