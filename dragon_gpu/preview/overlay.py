"""The overlay picture of a pair: its layout, and the binning of row blocks into it.

Each block is binned into squares of ``scale x scale`` image pixels (one output pixel each); an
output row is coloured as soon as all its image rows have arrived, and only those few open rows
are kept as integers (see :mod:`dragon_gpu.preview` for the colour mix).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .._bits import BYTE_BITS, packed_row_bytes
from ..errors import UsageError
from ..io import Encoding
from ..model import Counts

#: Colours (RGB) of the overlay, chosen to stay distinct for red-green colour blindness.
BACKGROUND_RGB = (255, 255, 255)
BODY_RGB = (150, 170, 205)      # muted blue: body without dye
DYE_IN_RGB = (200, 0, 140)      # magenta: lit dye inside the body (what the verdict counts)
DYE_OUT_RGB = (0, 175, 90)      # green: lit dye outside the body (ignored by the verdict)
TEXT_RGB = (20, 20, 20)
PANEL_RGB = (240, 240, 240)

DEFAULT_MAX_SIDE = 2048
MIN_MAX_SIDE = 256
#: pixels per binning step: bounds the temporaries (a few bytes a pixel) to a few MiB.
SLICE_PIXELS = 1 << 20


# -- layout ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Sizes of the picture: the overlay on top, a legend band of ``legend_height`` below."""

    scale: int                      # one output pixel = scale x scale image pixels
    overlay_shape: tuple[int, int]  # (rows, columns) of the overlay
    legend_height: int
    font_px: int
    width: int                      # of the whole PNG

    @property
    def png_shape(self) -> tuple[int, int]:
        return self.overlay_shape[0] + self.legend_height, self.width


LEGEND_LINES = 4


def plan_layout(shape: tuple[int, int], max_side: int) -> Layout:
    """The smallest integer ``scale`` whose picture, legend included, fits ``max_side``.

    Raises
    ------
    UsageError
        If ``max_side`` is under :data:`MIN_MAX_SIDE` (no room for the legend).
    """
    if max_side < MIN_MAX_SIDE:
        raise UsageError(f"at least {MIN_MAX_SIDE} pixels are needed for the picture and its "
                         f"legend, got {max_side}", param="max_side")
    height, width = shape
    font_px = max(11, min(22, max_side // 90))
    legend_height = LEGEND_LINES * (font_px + 8) + 12
    scale = max(1, -(-width // max_side), -(-height // (max_side - legend_height)))
    overlay = (-(-height // scale), -(-width // scale))
    # The legend needs some width even beside a very narrow image.
    png_width = max(overlay[1], min(max_side, 48 * font_px))
    return Layout(scale, overlay, legend_height, font_px, png_width)


# -- binning ---------------------------------------------------------------------------------------
def members(rows: np.ndarray, enc: Encoding, out: np.ndarray | None = None) -> np.ndarray:
    """Boolean members of stored rows (packed bits or planes) under ``enc.rule``.

    ``out``, when given, is a C-contiguous uint8 buffer of at least ``rows * row_items * 8`` bytes
    (packed) or ``rows * width`` bytes (planes), reused so that no slice allocates.
    """
    n, width = rows.shape[0], enc.width
    if enc.packed:
        nbytes = rows.shape[1]
        buf = np.empty(n * nbytes * 8, np.uint8) if out is None else out[:n * nbytes * 8]
        bits = buf.reshape(n, nbytes, 8)
        np.take(BYTE_BITS, rows, axis=0, out=bits)
        bits = bits.reshape(n, nbytes * 8)[:, :width]
        if not enc.rule.high:
            np.bitwise_xor(bits, 1, out=bits)
        return bits.view(np.bool_)
    buf = np.empty(n * width, np.uint8) if out is None else out[:n * width]
    return enc.rule.members(rows, out=buf.reshape(n, width).view(np.bool_))


class Overlay:
    """Accumulates binned counts of row blocks into the overlay picture, in any block order.

    Parameters
    ----------
    shape : (int, int)
        Rows and columns of the image pair.
    body_enc, dye_enc : Encoding
        Encodings and pixel rules of the two inputs.
    scale : int
        Side of the square of image pixels behind one output pixel.

    Notes
    -----
    Memory: the output picture (3 bytes an output pixel) plus, for output rows that only part of
    their image rows have reached, three int64 counts an output pixel; a slice of at most
    :data:`SLICE_PIXELS` image pixels is binned at a time. :meth:`add_rows` is thread safe.
    """

    def __init__(self, shape: tuple[int, int], body_enc: Encoding, dye_enc: Encoding, scale: int):
        self.shape = tuple(shape)
        self.body_enc, self.dye_enc = body_enc, dye_enc
        self.scale = int(scale)
        height, width = self.shape
        self.out_shape = (-(-height // scale), -(-width // scale))
        self.rgb = np.empty(self.out_shape + (3,), dtype=np.uint8)
        self._cols = np.arange(0, width, scale)
        col_pixels = np.diff(np.append(self._cols, width))
        self._col_pixels = col_pixels.astype(np.int64)
        self._open: dict[int, list] = {}
        self._finished = np.zeros(self.out_shape[0], dtype=bool)
        self._done_rows = 0
        self._totals = [0, 0, 0]  # body, dye in body, dye
        self._lock = threading.Lock()
        self._local = threading.local()
        self._palette = np.array([BACKGROUND_RGB, BODY_RGB, DYE_IN_RGB, DYE_OUT_RGB], np.float64)

    @property
    def complete(self) -> bool:
        """True once every image row has been added (each exactly once)."""
        return self._done_rows == self.out_shape[0] and not self._open

    @property
    def counts(self) -> Counts:
        """Exact counts of the rows added so far."""
        body, dye_in, dye = self._totals
        return Counts(body=body, dye_in_body=dye_in, dye=dye)

    def add_rows(self, row_start: int, body_rows: np.ndarray, dye_rows: np.ndarray) -> None:
        """Add image rows ``[row_start, row_start + len(body_rows))`` in their stored encodings."""
        n = body_rows.shape[0]
        if dye_rows.shape[0] != n or not 0 <= row_start <= row_start + n <= self.shape[0]:
            raise ValueError(f"rows [{row_start}, {row_start + n}) do not fit the overlay")
        step = max(1, SLICE_PIXELS // self.shape[1])
        for a in range(0, n, step):
            b = min(n, a + step)
            self._add_slice(row_start + a, body_rows[a:b], dye_rows[a:b])

    def _scratch(self, rows: int) -> dict:
        """This thread's buffers for slices of up to ``rows`` rows (reused: no allocation churn)."""
        local = self._local
        if getattr(local, "rows", 0) < rows:
            width = self.shape[1]
            items = packed_row_bytes(width) * 8  # whole bytes of pixels: unpackbits' output
            local.rows = rows
            local.body = np.empty(rows * items, np.uint8)
            local.dye = np.empty(rows * items, np.uint8)
            local.both = np.empty((rows, width), np.bool_)
            groups = rows // self.scale + 2
            dtype = np.uint8 if self.scale < 256 else np.int64
            local.sums = np.empty((3, groups, width), dtype)
        return local.__dict__

    def _add_slice(self, row_start: int, body_rows: np.ndarray, dye_rows: np.ndarray) -> None:
        s, n = self.scale, body_rows.shape[0]
        scratch = self._scratch(max(n, max(1, SLICE_PIXELS // self.shape[1])))
        body = members(body_rows, self.body_enc, scratch["body"])
        dye = members(dye_rows, self.dye_enc, scratch["dye"])
        both = np.logical_and(body, dye, out=scratch["both"][:n])
        first = row_start // s
        last = (row_start + n - 1) // s
        # Offsets in the slice where a new output row begins (the first may start mid-square).
        starts = np.maximum(np.arange(first, last + 1) * s - row_start, 0)
        rows_in = np.diff(np.append(starts, n))
        sums = np.stack([np.add.reduceat(_row_sums(plane, starts, rows_in, s, scratch["sums"][i]),
                                         self._cols, axis=1, dtype=np.int64)
                         for i, plane in enumerate((body, both, dye))])  # (3, out rows, columns)
        with self._lock:
            for j, out_row in enumerate(range(first, last + 1)):
                self._merge(out_row, sums[:, j], int(rows_in[j]))

    def _merge(self, out_row: int, sums: np.ndarray, rows: int) -> None:
        need = min(self.scale, self.shape[0] - out_row * self.scale)
        if self._finished[out_row]:
            raise ValueError(f"image rows of output row {out_row} were added twice")
        entry = self._open.get(out_row)
        if entry is None:
            if rows == need:
                self._finish(out_row, sums, need)
                return
            self._open[out_row] = [sums.copy(), rows]
            return
        entry[0] += sums
        entry[1] += rows
        if entry[1] > need:
            raise ValueError(f"image rows of output row {out_row} were added twice")
        if entry[1] == need:
            del self._open[out_row]
            self._finish(out_row, entry[0], need)

    def _finish(self, out_row: int, sums: np.ndarray, rows: int) -> None:
        body, dye_in, dye = sums
        for i, plane in enumerate(sums):
            self._totals[i] += int(plane.sum())
        area = (rows * self._col_pixels).astype(np.float64)
        dye_out = dye - dye_in
        shares = np.stack([area - body - dye_out, body - dye_in, dye_in, dye_out], axis=1)
        shares /= area[:, None]
        self.rgb[out_row] = np.clip(np.rint(shares @ self._palette), 0, 255).astype(np.uint8)
        self._finished[out_row] = True
        self._done_rows += 1


def _row_sums(plane: np.ndarray, starts: np.ndarray, rows_in: np.ndarray, scale: int,
              out: np.ndarray) -> np.ndarray:
    """Sums of the groups of rows of a boolean plane that start at ``starts`` (into ``out``).

    Sums of at most ``scale`` rows of 0/1 fit ``out``'s uint8 when scale < 256.
    """
    values = plane.view(np.uint8)
    if scale == 1:
        return values
    # A Python loop over the (few) groups: np.add.reduceat along rows took 31 ms where this loop
    # took 2.3 ms (8 groups of 49 rows x 100,000 columns, NumPy 2.4, 2-core AMD EPYC).
    for i, (a, k) in enumerate(zip(starts, rows_in)):
        values[a:a + k].sum(axis=0, dtype=out.dtype, out=out[i])
    return out[:len(starts)]
