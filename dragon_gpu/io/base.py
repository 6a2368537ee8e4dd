"""The reader interface: a 2-D image read as row blocks, plus the rule that makes it a mask.

A reader delivers rows in one of two storage encodings:

* **packed**: one bit per pixel, eight pixels a byte, most significant bit first, each row padded
  to whole bytes (``ceil(width / 8)`` bytes a row). The padding bits are undefined and never count.
* **plane**: one ``uint8`` or ``uint16`` value per pixel (``width`` values a row).

A :class:`PixelRule` says which stored values are members: ``value >= threshold`` when ``high``
is true, else ``value < threshold``. Packed bits use threshold 1, so ``high`` means "set bit".
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import Enum

import numpy as np

from .._bits import packed_row_bytes  # noqa: F401  (readers and writers take it from here)
from ..choices import Polarity  # noqa: F401  (defined there so the CLI loads it without NumPy)
from ..errors import UsageError


class _RowLayout:
    """``row_items`` and ``row_nbytes`` of rows that are ``packed`` or planes of ``dtype``."""

    packed: bool
    dtype: np.dtype

    @property
    def row_items(self) -> int:
        return packed_row_bytes(self.width) if self.packed else self.width

    @property
    def row_nbytes(self) -> int:
        return self.row_items * np.dtype(self.dtype).itemsize


class Kind(str, Enum):
    """What a file holds, which decides the default pixel rule."""

    gray = "gray"          # uint8 / uint16 image: thresholded
    bilevel = "bilevel"    # 1-bit image with a photometric interpretation
    mask = "mask"          # boolean mask: a set value is a member


@dataclass(frozen=True)
class PixelRule:
    """How stored values become members (see the module docstring)."""

    threshold: int
    high: bool
    text: str

    def members(self, values: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Boolean membership of plane values (into ``out``, a bool array, when given).

        The one place the rule is applied to values; every CPU path calls it.
        """
        op = np.greater_equal if self.high else np.less
        return op(values, self.threshold, out=out)

    def uniform(self, values: np.ndarray) -> bool | None:
        """The membership every one of ``values`` shares, or None when it varies.

        A rule is one threshold, so the smallest and the largest value decide: two reads of
        ``values`` and no temporaries, against a boolean array and a count for :meth:`members`.
        """
        ends = self.members(np.array([values.min(), values.max()], values.dtype))
        return bool(ends[0]) if ends[0] == ends[1] else None


@dataclass(frozen=True)
class Encoding(_RowLayout):
    """What the engine needs to know about the rows of one input: their layout and the rule.

    The layout (``packed``, ``width``, ``dtype``: how rows are stored) and the rule (which stored
    values are members) are two things, and the rule already is a value of its own
    (:class:`PixelRule`, applied only by :meth:`PixelRule.members`); an encoding holds one of
    each because every engine call needs both, for each input. The few places that need only a
    layout (the GPU kernel choice, histograms) pass a placeholder rule. A separate layout class
    would add a type without removing a field: every engine signature and every construction
    (``Encoding(packed, width, dtype, rule)``) would stay, so the split is not made.
    """

    packed: bool
    width: int
    dtype: np.dtype
    rule: PixelRule


class MaskReader(_RowLayout, abc.ABC):
    """One 2-D image of a file, read as row blocks without ever loading the whole image.

    Subclasses set the attributes below in ``__init__`` after validating the file, and implement
    :meth:`read_rows`. Readers are used by one thread at a time, but ``read_rows`` may decode the
    segments of a block on several threads internally.
    """

    path: str
    #: (rows, columns) of the image.
    shape: tuple[int, int]
    #: 1, 8 or 16.
    bits: int
    #: True when rows are delivered packed (1 bit a pixel), False for planes.
    packed: bool
    #: dtype of the delivered rows (uint8 when packed).
    dtype: np.dtype
    kind: Kind
    #: for bilevel images: whether a set bit is white (MINISBLACK) or black (MINISWHITE).
    set_is_white: bool = True
    #: for gray images: whether larger values are darker (MINISWHITE).
    inverted: bool = False
    #: rows of the file's natural unit (strip, tile or chunk rows); block edges on multiples of it
    #: never decode a unit twice.
    row_granularity: int = 1

    @property
    def height(self) -> int:
        return self.shape[0]

    @property
    def width(self) -> int:
        return self.shape[1]

    @property
    def unit_nbytes(self) -> int:
        """Bytes the reader holds at once to decode one natural unit (strip, tile row, chunk row).

        The pipeline refuses a file whose unit does not fit the memory budget before reading it;
        readers whose units are wider than the image (tiles, chunks) override this.
        """
        return self.row_granularity * self.row_nbytes

    @property
    def tile_grid(self) -> tuple[int, int] | None:
        """(rows, pixel columns) of a full tile when the image is a grid of tiles narrower than
        the image that :meth:`read_tile` decodes one at a time, else None (rows only).

        Engines count a pair whose inputs share a grid tile by tile, with no rows assembled.
        """
        return None

    @property
    def strip_rows(self) -> int | None:
        """Rows of the full-width units (strips, HDF5 chunks as wide as the image) when
        :meth:`read_tile` decodes them one at a time, as ``read_tile(band, 0)``; else None.

        The CPU engine counts a pair of the same strip height strip by strip, like tiles, when
        the strips are small against its blocks (:func:`.engines.cpu_tiles.walk_grid`).
        """
        return None

    def read_tile(self, band: int, col: int) -> np.ndarray:
        """The decoded tile at grid position (``band``, ``col``), shape ``(rows, items)`` of
        full tiles: edge tiles include their padding beyond the image, which never counts.

        The result may be a view of a buffer of the calling thread, valid until that thread
        reads from this reader again. Only readers with a :attr:`tile_grid` implement it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no tiles")

    def empty_rows(self, rows: int) -> np.ndarray:
        """An uninitialised buffer that :meth:`read_rows` can fill with ``rows`` rows."""
        return np.empty((rows, self.row_items), dtype=self.dtype)

    @abc.abstractmethod
    def read_rows(self, row_start: int, row_stop: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``[row_start, row_stop)`` as an array of shape ``(rows, row_items)``.

        When ``out`` is given (C-contiguous, at least that many rows, right dtype and width) the
        rows are written into its first rows and a view of them is returned.
        """

    @abc.abstractmethod
    def describe(self) -> dict:
        """Facts for ``dragon-gpu info``: layout, compression, stored bytes..."""

    def warnings(self, role: str, rule: PixelRule) -> list[str]:
        """Facts about the pixels read so far that the detect JSON reports (absent chunks...)."""
        return []

    def close(self) -> None:  # pragma: no cover - trivial default
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_range(self, row_start: int, row_stop: int, out: np.ndarray | None) -> np.ndarray:
        if not 0 <= row_start <= row_stop <= self.height:
            raise ValueError(f"rows [{row_start}, {row_stop}) outside an image of {self.height} rows")
        rows = row_stop - row_start
        if out is None:
            return self.empty_rows(rows)
        if (out.dtype != self.dtype or out.ndim != 2 or out.shape[1] != self.row_items
                or out.shape[0] < rows or not out.flags.c_contiguous):
            raise ValueError("out buffer does not match the reader's rows")
        return out[:rows]


def default_threshold(bits: int) -> int:
    """Half the dtype range: 128 for uint8, 32768 for uint16, 1 for a bit."""
    return 1 << (bits - 1) if bits > 1 else 1


def resolve_rule(reader: MaskReader, role: str, polarity: Polarity | str | None = None,
                 threshold: int | None = None, option: str = "threshold",
                 method: str | None = None) -> PixelRule:
    """The pixel rule of the SPEC for ``reader`` used as ``role`` (``"body"`` or ``"dye"``).

    * gray images: body = dark (``value < threshold``), dye = bright (``value >= threshold``);
      the threshold applies to the displayed brightness, so a MINISWHITE image is flipped.
    * bilevel (1-bit) images: body = black, dye = white, after the photometric interpretation.
    * masks: a set value is a member; an explicit polarity reads the mask as a 0/1 image in which
      set is bright.

    ``polarity`` overrides the role's default; ``threshold`` applies to gray images only, and
    ``option`` is the parameter that gave it (an error's ``param``: ``body_threshold``...).
    ``method`` names the threshold method that chose ``threshold``: it may then be one past the
    largest value (an image of one value: nothing is brighter), and the rule's text names it.
    """
    if role not in ("body", "dye"):
        raise ValueError(f"role must be 'body' or 'dye', not {role!r}")
    explicit = polarity is not None
    pol = Polarity(polarity) if explicit else (Polarity.dark if role == "body" else Polarity.bright)
    bright = pol is Polarity.bright
    if reader.kind is Kind.gray:
        maxval = (1 << reader.bits) - 1
        thr = default_threshold(reader.bits) if threshold is None else int(threshold)
        top = maxval + 1 if method is not None else maxval
        if not 1 <= thr <= top:
            raise UsageError(f"must be between 1 and {maxval} for a {reader.bits}-bit image, "
                             f"got {thr}", reader.path, param=option)
        dtype = f"uint{reader.bits}"
        how = f", {method} threshold" if method is not None else ""
        if reader.inverted:
            # Displayed brightness is maxval - value: brightness >= thr <=> value <= maxval - thr.
            stored = maxval + 1 - thr
            rule = PixelRule(stored, not bright,
                             f"{dtype} MINISWHITE image: brightness (={maxval}-value) "
                             f"{'>=' if bright else '<'} {thr} is {role} ({pol.value}{how})")
            return rule
        op = ">=" if bright else "<"
        return PixelRule(thr, bright,
                         f"{dtype} image: value {op} {thr} is {role} ({pol.value}{how})")
    if reader.kind is Kind.bilevel:
        photometric = "MINISBLACK" if reader.set_is_white else "MINISWHITE"
        high = bright == reader.set_is_white
        colour = "white" if bright else "black"
        bit = "set" if high else "clear"
        return PixelRule(1, high, f"1-bit {photometric} image: {colour} ({bit} bit) is {role} "
                                  f"({pol.value})")
    # mask
    high = not explicit or bright
    what = "set" if high else "unset"
    suffix = f" (--{role}-polarity {pol.value})" if explicit else ""
    return PixelRule(1, high, f"mask: {what} value is {role}{suffix}")
