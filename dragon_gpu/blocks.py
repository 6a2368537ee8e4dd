"""Row-block planning: blocks that fit the memory budget and fall on the files' natural units.

Every pass plans its blocks here (detect, preview, histograms, the Dask planner).
"""

from __future__ import annotations

import math

from .errors import MemoryBudgetError, UsageError
from .io.base import MaskReader
from .model import RowRange

#: Blocks larger than this gain nothing and make progress coarse.
MAX_BLOCK_NBYTES = 32 << 20
#: Share of the memory budget one block pair may take: the prefetch ring holds three, decoding
#: holds up to one more, and a partly used segment per input is cached.
BLOCK_SHARE = 8


def plan_blocks(height: int, row_nbytes: int, granularities: tuple[int, ...], memory: int,
                block_rows: int | None = None, rows: RowRange | None = None) -> list[RowRange]:
    """Split ``height`` rows (or the range ``rows`` of them) into blocks that fit the budget.

    Block edges fall on multiples of the inputs' natural row units (strips, tiles, chunks) when
    their least common multiple fits, so no unit is decoded twice; otherwise on the largest unit,
    and a unit of the other input that a block edge cuts is decoded by both blocks (readers keep
    nothing between blocks).

    Raises
    ------
    MemoryBudgetError
        If one natural unit of rows does not fit the budget.
    """
    if memory <= 0:
        raise UsageError(f"must be positive, got {memory}", param="memory")
    target = max(row_nbytes, min(memory // BLOCK_SHARE, MAX_BLOCK_NBYTES))
    unit = math.lcm(*granularities)
    if unit * row_nbytes > target:
        unit = max(granularities)
    if block_rows is None:
        if unit * row_nbytes > memory // 4:
            raise MemoryBudgetError(
                f"a block of {unit} rows (the files' strip/tile/chunk height) needs "
                f"{_human(unit * row_nbytes)}, more than a quarter of the memory budget "
                f"{_human(memory)}; raise {{option:memory}} or re-encode with smaller strips "
                "(dragon-gpu convert)")
        block_rows = max(unit, target // row_nbytes // unit * unit)
    elif block_rows < 1:
        raise UsageError(f"must be positive, got {block_rows}", param="block_rows")
    elif block_rows * row_nbytes > memory // 4:
        raise MemoryBudgetError(
            f"{block_rows} rows need {_human(block_rows * row_nbytes)} a block, more than a "
            f"quarter of the memory budget {_human(memory)}; lower it or raise {{option:memory}}",
            param="block_rows")
    rows = rows or RowRange(0, height)
    if rows.row_stop > height:
        raise UsageError(f"rows [{rows.row_start}, {rows.row_stop}) outside an image of "
                         f"{height} rows")
    start, stop = rows.row_start, rows.row_stop
    return [RowRange(r, min(stop, r + block_rows)) for r in range(start, stop, block_rows)]


def check_unit_memory(reader: MaskReader, memory: int) -> None:
    """Refuse a file whose natural unit (strip, row of tiles or chunks) cannot fit the budget.

    Readers decode whole units, so one unit larger than a quarter of ``memory`` (the share of
    one block, see :func:`plan_blocks`) would break the bound whatever the block plan; a header
    may declare such a unit on purpose. Checked before any of it is read.

    Raises
    ------
    MemoryBudgetError
        Naming the file, the unit's decoded size and the budget.
    """
    need = reader.unit_nbytes
    if need > memory // 4:
        raise MemoryBudgetError(
            f"one strip, tile row or chunk row decodes to {_human(need)}, more than a quarter of "
            f"the memory budget {_human(memory)}; raise {{option:memory}} or re-encode the file "
            "with smaller strips, tiles or chunks (dragon-gpu convert)", reader.path)


def _human(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if nbytes < 1024 or unit == "TiB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{nbytes} B"
        nbytes /= 1024
    return f"{nbytes} B"  # pragma: no cover
