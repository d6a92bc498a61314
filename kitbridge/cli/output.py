"""The CLI's output sink: results on stdout (human text or one JSON document), everything else on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from kitbridge.transfer import RegistryOptions


@dataclass
class Output:
    """How the user asked us to talk: ``--json``, ``-q``, ``-v``."""

    json_mode: bool = False
    quiet: bool = False
    verbose: bool = False
    registry: RegistryOptions = field(default_factory=RegistryOptions)
    _err: Console = field(default_factory=lambda: Console(stderr=True, highlight=False, soft_wrap=True))

    def result(self, human: str | None, data: Any = None) -> None:
        """The command's result: ``data`` as one JSON document with --json, else ``human`` text."""
        if self.json_mode:
            sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        elif human is not None and not (self.quiet and data is not None and human == ""):
            sys.stdout.write(human if human.endswith("\n") or not human else human + "\n")
        sys.stdout.flush()

    def info(self, message: str) -> None:
        """A status line for people (stderr); silent with -q or --json."""
        if not self.quiet and not self.json_mode:
            self._err.print(message, markup=False)

    def warn(self, message: str) -> None:
        """A warning (stderr); shown unless -q."""
        if not self.quiet:
            self._err.print(f"warning: {message}", markup=False, style="yellow")

    def debug(self, message: str) -> None:
        """Detail for -v only (stderr)."""
        if self.verbose:
            self._err.print(message, markup=False, style="dim")

    @contextmanager
    def progress(self) -> Iterator[BarProgress | None]:
        """Progress bars on stderr when it is a terminal and the user did not ask for quiet/JSON."""
        if self.quiet or self.json_mode or not self._err.is_terminal:
            yield None
            return
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self._err,
            transient=True,
        )
        with bars:
            yield BarProgress(bars)


class BarProgress:
    """Adapts rich progress bars to kitbridge's Progress protocol."""

    def __init__(self, bars: Progress) -> None:
        self._bars = bars
        self._tasks: dict[str, TaskID] = {}

    def start(self, task: str, total: int | None) -> None:
        self._tasks[task] = self._bars.add_task(task, total=total)

    def advance(self, task: str, nbytes: int) -> None:
        if task in self._tasks:
            self._bars.advance(self._tasks[task], nbytes)

    def finish(self, task: str) -> None:
        if task in self._tasks:
            t = self._tasks.pop(task)
            self._bars.remove_task(t)
