"""Small immutable values that flow through the pipeline, and the three progress callbacks."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

#: ``tick(rows)``: ``rows`` more rows were counted (an engine calls it after each block).
Tick = Callable[[int], None]
#: ``progress(rows_done, rows_total)``: how far one pass over a pair or a file has come (what
#: :func:`~dragon_gpu.pipeline.detect`, the preview, convert and generate report).
RowProgress = Callable[[int, int], None]
#: ``progress(record, done, total)``: a batch finished the pair of ``record`` (a results record),
#: ``done`` of ``total`` pairs (:func:`~dragon_gpu.batching.run_batch`).
BatchProgress = Callable[[dict, int, int], None]


def ticker(progress: RowProgress | None, total: int) -> Tick:
    """A :data:`Tick` that adds up the rows and reports them to ``progress`` out of ``total``.

    One pass may span several engine calls (histograms, then the counts): the rows add up across
    them, so ``progress`` sees one count from 0 to ``total``.
    """
    done = 0

    def tick(rows: int) -> None:
        nonlocal done
        done += rows
        if progress is not None:
            progress(done, total)

    return tick


@dataclass(frozen=True)
class RowRange:
    """Rows ``row_start`` (inclusive) to ``row_stop`` (exclusive) of an image."""

    row_start: int
    row_stop: int

    def __post_init__(self):
        if not 0 <= self.row_start <= self.row_stop:
            raise ValueError(f"invalid row range [{self.row_start}, {self.row_stop})")

    @property
    def rows(self) -> int:
        return self.row_stop - self.row_start


@dataclass(frozen=True)
class Counts:
    """Additive pixel counts of a block or of a whole pair.

    ``body`` counts body pixels, ``dye`` lit dye pixels anywhere, and ``dye_in_body`` pixels that
    are both. Plain Python integers: they are exact at any size (a 100k x 100k image passes 2**32).
    """

    body: int = 0
    dye_in_body: int = 0
    dye: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        if not isinstance(other, Counts):
            return NotImplemented
        return Counts(self.body + other.body, self.dye_in_body + other.dye_in_body,
                      self.dye + other.dye)

    @property
    def dye_outside_body(self) -> int:
        return self.dye - self.dye_in_body

    @classmethod
    def total(cls, parts) -> "Counts":
        out = cls()
        for part in parts:
            out = out + part
        return out


@dataclass(frozen=True)
class Verdict:
    """The decision for one pair.

    ``cancer`` is ``dye_in_body > cutoff * body``, evaluated on integers and a
    :class:`fractions.Fraction`; ``fraction`` is only for display (``None`` for an empty body).
    """

    counts: Counts
    cutoff: Fraction
    cutoff_text: str
    cancer: bool
    fraction: float | None
