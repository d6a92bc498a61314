"""Start writing a file's dirty pages to disk early, so that the fsync before a blob's rename is short.

Packing a multi-GiB layer and then fsyncing it makes the disk flush a serial step after the copy.
Asking the kernel to start writeback of each range just written (``sync_file_range`` with
``SYNC_FILE_RANGE_WRITE``, Linux) overlaps the flush with the copy and the hashing instead.
Elsewhere this is a no-op and the final fsync does all the work, as before.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable

_SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int], None]:
    if not sys.platform.startswith("linux"):
        return lambda fd, offset, length: None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, length: int) -> None:
        # Failure only means no head start: the fsync at commit still makes the data durable.
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)

    return start


start_writeback = _load()
