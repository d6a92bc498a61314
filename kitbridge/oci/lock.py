"""Advisory file locks (``fcntl.flock``): shared or exclusive, with a timeout and a clear error.

flock locks belong to an open file description, so two opens of the same lock file conflict
even inside one process (and across threads); the kernel drops them when a process dies, so a
crashed writer never leaves the store locked. Lock files are never deleted: deleting one while
another process waits on it would let two processes "hold" the same lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kitbridge.errors import StoreError

# Short waits stay responsive; the cap keeps a long wait from spinning.
_FIRST_SLEEP = 0.005
_MAX_SLEEP = 0.1


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as e:
        raise StoreError(
            f"cannot open lock file {path}: {e.strerror}", "check that the store's folder is writable"
        ) from e


def acquire(path: Path, *, exclusive: bool, timeout: float | None, what: str) -> int:
    """Take the lock on ``path``; return the fd that holds it (release with :func:`release`)."""
    fd = _open(path)
    op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    try:
        if timeout is None:
            fcntl.flock(fd, op)
            return fd
        deadline = time.monotonic() + timeout
        sleep = _FIRST_SLEEP
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    mode = "exclusive" if exclusive else "shared"
                    raise StoreError(
                        f"timed out after {timeout:g}s waiting for the {mode} {what} lock ({path})",
                        "another kitbridge process is using the store; wait for it to finish and try again",
                    ) from None
                time.sleep(min(sleep, left))
                sleep = min(sleep * 2, _MAX_SLEEP)
    except BaseException:
        os.close(fd)
        raise


def release(fd: int) -> None:
    """Release a lock taken with :func:`acquire` (closing the fd drops it)."""
    os.close(fd)


@contextmanager
def shared(path: Path, *, timeout: float | None = 600.0, what: str = "store") -> Iterator[None]:
    """Hold a shared lock on ``path`` for the block (many holders at once)."""
    fd = acquire(path, exclusive=False, timeout=timeout, what=what)
    try:
        yield
    finally:
        release(fd)


@contextmanager
def exclusive(path: Path, *, timeout: float | None = 600.0, what: str = "store") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block (one holder, no shared holders)."""
    fd = acquire(path, exclusive=True, timeout=timeout, what=what)
    try:
        yield
    finally:
        release(fd)
