"""Run transfer jobs on a thread pool where the first failure (or Ctrl-C) stops all the others.

Shared by push/pull, cross-registry convert and the Hugging Face downloader: every job gets a
``cancel`` event and checks it between chunks (:func:`progress_hook` does that for it), so a failure
stops the other transfers within one chunk instead of after whole files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from kitbridge.progress import Progress


class Cancelled(Exception):
    """Raised inside a job when another one failed or the user pressed Ctrl-C."""


def run_parallel(jobs: Iterable[Callable[[threading.Event], None]], concurrency: int) -> None:
    """Run jobs on ``concurrency`` threads; re-raise the first failure once the others have stopped."""
    cancel = threading.Event()
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="kitbridge-io")
    futures = [pool.submit(job, cancel) for job in jobs]
    first: Exception | None = None
    try:
        for f in futures:
            try:
                f.result()
            except Cancelled:
                pass
            except Exception as e:  # re-raised below, once the others have stopped
                if first is None:
                    first = e
                cancel.set()
    except BaseException:  # KeyboardInterrupt while waiting: stop the workers, then let it propagate
        cancel.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if first is not None:
        raise first


def progress_hook(progress: Progress, task: str, cancel: threading.Event) -> Callable[[int], None]:
    """The per-chunk callback of a transfer: reports bytes, and raises Cancelled when told to stop."""

    def on_bytes(n: int) -> None:
        if cancel.is_set():
            raise Cancelled
        progress.advance(task, n)

    return on_bytes
