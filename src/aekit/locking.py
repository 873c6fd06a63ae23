"""One writer per folder: an OS-level lock (``flock`` on ``FOLDER/.lock``) held for as long as a process writes
there. A second process is refused at once with a message that names the holder's pid; the kernel drops the lock
when its holder dies, so a lock left by a killed process never blocks. Re-entrant within a process (the CLI holds
the lock of a run folder for the whole run; the saves inside it take it again)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RunFolderError

LOCK_FILE = ".lock"
_HELD: dict[str, list[int]] = {}  # real path of the folder -> [file descriptor, depth]


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return f"pid {text}" if text.isdigit() else "another process"


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[None]:
    """Hold ``folder``'s writer lock (creating the folder if need be) for the ``with`` block."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    if path.is_symlink():
        raise RunFolderError(f"{path} is a symbolic link; aekit writes nothing through links in a run folder: "
                             "remove it")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
    except OSError as exc:
        raise RunFolderError(f"cannot lock {folder} ({exc.strerror or exc}); check that it is writable") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunFolderError(f"{folder} is in use: {holder} is writing to it (aekit train or a save); wait for it "
                             "to finish, or use another folder") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        _HELD[key][1] -= 1
        if _HELD[key][1] == 0:
            del _HELD[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def is_locked_here(folder: str | os.PathLike) -> bool:
    """Whether this process holds ``folder``'s lock."""
    return os.path.realpath(folder) in _HELD
