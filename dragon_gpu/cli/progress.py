"""The one progress bar of every command: rich's ``Progress`` on stderr, shown only when stderr
is a terminal (and not ``--quiet``). Each time says what it is: ``elapsed 0:00:12 remaining
0:01:40``."""

from __future__ import annotations

import sys


class ProgressBar:
    """``with ProgressBar("detect") as bar: work(progress=bar.update)``.

    Parameters
    ----------
    description : str
        What runs; :meth:`update` may replace it (batch shows its tally there).
    unit : str
        What the counts count (``rows``, ``pairs``).
    enabled : bool
        False for ``--quiet``; the bar is also off when stderr is not a terminal.
    rate : bool
        Also show units a second.
    console : rich.console.Console, optional
        Where to draw instead of stderr (then the bar is on whatever stderr is).
    """

    def __init__(self, description: str, *, unit: str = "rows", enabled: bool = True,
                 rate: bool = False, console=None):
        self.description = description
        self.unit = unit
        self.rate = rate
        self._console = console
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self._progress = None  # rich's Progress, while the bar is entered
        self._task = None

    def __enter__(self) -> "ProgressBar":
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn(self.unit)]
        if self.rate:
            columns.append(_rate_column(self.unit))
        columns += [TextColumn("elapsed"), TimeElapsedColumn(), TextColumn("remaining"),
                    TimeRemainingColumn()]
        self._progress = Progress(*columns, console=self._console or Console(stderr=True),
                                  transient=True, disable=not self.enabled)
        self._progress.__enter__()
        return self

    def update(self, done: int, total: int, description: str | None = None) -> None:
        """``done`` of ``total`` units are finished."""
        if not self.enabled:
            return
        if description is not None:
            self.description = description
        if self._task is None:
            self._task = self._progress.add_task(self.description, total=total)
        self._progress.update(self._task, completed=done, total=total,
                              description=self.description)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _rate_column(unit: str):
    """A column of units a second (``-- pairs/s`` until there is a speed)."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            return Text(f"-- {unit}/s" if speed is None else f"{speed:.2f} {unit}/s")

    return RateColumn()
