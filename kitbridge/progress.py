"""Progress reporting without printing: the library calls a callback, the CLI draws bars."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress of long operations; every method is optional work for the receiver."""

    def start(self, task: str, total: int | None) -> None:
        """A task (e.g. one layer) begins; ``total`` bytes if known."""

    def advance(self, task: str, nbytes: int) -> None:
        """``nbytes`` more bytes of ``task`` are done."""

    def finish(self, task: str) -> None:
        """``task`` is complete."""


class NoProgress:
    """The default receiver: ignores everything."""

    def start(self, task: str, total: int | None) -> None:
        pass

    def advance(self, task: str, nbytes: int) -> None:
        pass

    def finish(self, task: str) -> None:
        pass
