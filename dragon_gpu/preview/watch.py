"""The two ways a preview is made: watching a detection's blocks, or a pass of its own."""

from __future__ import annotations

import os
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..io import Encoding, MaskReader
from ..model import RowProgress, ticker
from .overlay import DEFAULT_MAX_SIDE, Layout, Overlay, plan_layout
from .picture import PreviewResult, check_output, require_pillow, write_overlay


class _TeeReader(MaskReader):
    """A reader that hands every block it delivers to a :class:`_BlockPairer` as well."""

    def __init__(self, inner: MaskReader, role: str, pairer: "_BlockPairer"):
        self._inner, self._role, self._pairer = inner, role, pairer
        for name in ("path", "shape", "bits", "packed", "dtype", "kind", "set_is_white",
                     "inverted", "row_granularity"):
            setattr(self, name, getattr(inner, name))

    def read_rows(self, row_start, row_stop, out=None):
        rows = self._inner.read_rows(row_start, row_stop, out=out)
        self._pairer.arrived(self._role, row_start, rows)
        return rows

    def describe(self):
        return self._inner.describe()

    def __getattr__(self, name):  # anything else an engine may ask of the real reader
        if name == "_inner":  # not set yet (copying, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self._inner, name)


class _BlockPairer:
    """Joins the body and dye rows of each block and adds them to an :class:`Overlay`.

    Engines read a block's body rows and dye rows one after the other; the first to arrive is
    copied (the engine may reuse its buffer), so pairing does not depend on how engines manage
    their buffers.
    """

    def __init__(self, overlay: Overlay):
        self.overlay = overlay
        self._waiting: dict[tuple[str, int, int], np.ndarray] = {}
        self._lock = threading.Lock()

    def arrived(self, role: str, row_start: int, rows: np.ndarray) -> None:
        other = "dye" if role == "body" else "body"
        key = (row_start, rows.shape[0])
        with self._lock:
            partner = self._waiting.pop((other,) + key, None)
            if partner is None:
                self._waiting[(role,) + key] = rows.copy()
                return
        body, dye = (rows, partner) if role == "body" else (partner, rows)
        self.overlay.add_rows(row_start, body, dye)


class DetectPreview:
    """Draws the preview of a detection from the blocks the detection reads (one pass).

    Use ``detect(..., watch=preview.watch)`` and then :meth:`write` with the result.
    """

    def __init__(self, path, max_side: int = DEFAULT_MAX_SIDE, inputs=()):
        require_pillow()
        self.path = Path(os.fspath(path))
        self.max_side = int(max_side)
        plan_layout((1, 1), self.max_side)  # check --max-side and the output before counting
        check_output(self.path, inputs)
        self.overlay: Overlay | None = None
        self.layout: Layout | None = None

    def watch(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding):
        self.layout = plan_layout(body.shape, self.max_side)
        self.overlay = Overlay(body.shape, body_enc, dye_enc, self.layout.scale)
        pairer = _BlockPairer(self.overlay)
        return _TeeReader(body, "body", pairer), _TeeReader(dye, "dye", pairer)

    def write(self, result) -> "PreviewResult":
        """Write the PNG for a :class:`~dragon_gpu.pipeline.DetectResult` of the watched pass."""
        if self.overlay is None or not self.overlay.complete:
            raise RuntimeError("the detection did not deliver every row to the preview")
        if self.overlay.counts != result.counts:
            raise RuntimeError(f"preview counts {self.overlay.counts} differ from the engine's "
                               f"{result.counts}")
        chosen = getattr(result, "thresholds", None)
        drawn = write_overlay(self.path, self.overlay, self.layout, result.body_path,
                              result.dye_path, result.verdict.cutoff_text, result.backend,
                              chosen.describe() if chosen is not None else None)
        return replace(drawn, thresholds=chosen)


def preview(body_path, dye_path, png_path, options=None, *, max_side: int = DEFAULT_MAX_SIDE,
            progress: RowProgress | None = None, **kwargs) -> PreviewResult:
    """Draw the overlay of a pair into a PNG, streaming the images in row blocks.

    Parameters
    ----------
    body_path, dye_path : str or PathLike
        The body and dye images (any formats the detection reads), of the same shape.
    png_path : str or PathLike
        The picture to write; its suffix names the format (:data:`PICTURE_FORMATS`: .png, .jpg,
        .tif, .webp, .bmp). It is written to a temporary name in the same folder and renamed;
        an existing directory, FIFO or device, or one of the inputs, is refused.
    options : DetectOptions, optional
        Pixel rules, datasets, page, memory budget and cutoff, as for a detection; keyword
        arguments override its fields.
    max_side : int
        Longest side of the PNG, legend included.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` after each block.

    Returns
    -------
    PreviewResult
        Sizes of the picture and the exact counts of the pair (an empty body is drawn, not
        refused: the picture is how one finds out why).
    """
    from ..autothreshold import passes, resolve
    from ..engines.cpu import CpuEngine
    from ..pipeline import DetectOptions, open_pair
    from ..streaming import prefetch

    require_pillow()
    opts = DetectOptions.derive(options, **kwargs)
    plan_layout((1, 1), max_side)
    check_output(Path(os.fspath(png_path)), (body_path, dye_path))
    with open_pair(body_path, dye_path, opts) as opened:
        # A threshold method first streams the histograms it needs (a pass of its own).
        total = opened.body.height * passes(opts, opened, watching=True)
        tick = ticker(progress, total)
        opened, chosen, _ = resolve(opened, opts, CpuEngine(), tick, watching=True)
        body, dye, blocks = opened.body, opened.dye, opened.blocks
        layout = plan_layout(body.shape, max_side)
        overlay = Overlay(body.shape, opened.body_enc, opened.dye_enc, layout.scale)
        with closing(prefetch((body, dye), blocks)) as ring:
            for rows, (b, d) in ring:
                overlay.add_rows(rows.row_start, b, d)
                tick(rows.rows)
    drawn = write_overlay(Path(os.fspath(png_path)), overlay, layout, os.fspath(body_path),
                   os.fspath(dye_path), opts.cutoff, None, chosen.describe())
    return replace(drawn, thresholds=chosen)
