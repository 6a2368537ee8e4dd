"""A downsampled picture of a pair: body, dye inside it and dye leaking outside, with the counts.

The image is streamed in row blocks like a detection and never held whole: each block is binned
into squares of ``scale x scale`` image pixels (one output pixel each), an output row is coloured
as soon as all its image rows have arrived, and only those few open rows are kept as integers.
Each output pixel mixes four colours by area::

    colour = bg * (1 - body - dye_out) + BODY * (body - dye_in)
             + DYE_IN * dye_in + DYE_OUT * dye_out

where ``body``, ``dye_in`` and ``dye_out`` are the shares of the square's pixels that are body,
dye inside the body and dye outside it. The same pass also counts every pixel exactly, so the
legend's numbers are the detection's numbers.

Pillow draws the legend and writes the PNG; it is optional (``pip install 'dragon-gpu[preview]'``)
and imported only here, when a preview is asked for.
"""

from __future__ import annotations

import os
from contextlib import closing
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from ._bits import BYTE_BITS
from .errors import UsageError
from .io import Encoding, MaskReader
from .io._output import AtomicOutput, check_target
from .io.base import packed_row_bytes
from .model import Counts
from .verdict import decide

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


def require_pillow():
    """The PIL package, or a clear :class:`UsageError` that says how to install it."""
    try:
        import PIL.Image  # noqa: F401
        import PIL.ImageDraw  # noqa: F401
        import PIL.ImageFont  # noqa: F401
    except ImportError:
        raise UsageError("the preview needs Pillow, which is not installed; install it with "
                         "pip install 'dragon-gpu[preview]' (or pip install pillow)") from None
    import PIL

    return PIL


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


# -- watching a detection --------------------------------------------------------------------------
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
        drawn = _write(self.path, self.overlay, self.layout, result.body_path, result.dye_path,
                       result.verdict.cutoff_text, result.backend,
                       chosen.describe() if chosen is not None else None)
        return replace(drawn, thresholds=chosen)


# -- the standalone pass ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewResult:
    """What was drawn, and the exact counts of the pair."""

    path: str
    shape: tuple[int, int]
    scale: int
    overlay_shape: tuple[int, int]
    png_shape: tuple[int, int]
    legend_height: int
    counts: Counts
    legend: list[str]
    #: the thresholds used (:class:`dragon_gpu.autothreshold.Chosen`)
    thresholds: object = None


def preview(body_path, dye_path, png_path, options=None, *, max_side: int = DEFAULT_MAX_SIDE,
            progress: Callable[[int, int], None] | None = None, **kwargs) -> PreviewResult:
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
    from .autothreshold import passes, resolve
    from .engines.cpu import CpuEngine
    from .pipeline import DetectOptions, open_pair
    from .streaming import prefetch

    require_pillow()
    opts = DetectOptions.derive(options, **kwargs)
    plan_layout((1, 1), max_side)
    check_output(Path(os.fspath(png_path)), (body_path, dye_path))
    with open_pair(body_path, dye_path, opts) as pair:
        # A threshold method first streams the histograms it needs (a pass of its own).
        total = pair.body.height * passes(opts, pair, watching=True)
        done = 0

        def tick(rows: int) -> None:
            nonlocal done
            done += rows
            if progress is not None:
                progress(done, total)

        pair, chosen, _ = resolve(pair, opts, CpuEngine(), tick, watching=True)
        body, dye, blocks = pair.body, pair.dye, pair.blocks
        layout = plan_layout(body.shape, max_side)
        overlay = Overlay(body.shape, pair.body_enc, pair.dye_enc, layout.scale)
        with closing(prefetch((body, dye), blocks)) as ring:
            for rows, (b, d) in ring:
                overlay.add_rows(rows.row_start, b, d)
                tick(rows.rows)
    drawn = _write(Path(os.fspath(png_path)), overlay, layout, os.fspath(body_path),
                   os.fspath(dye_path), opts.cutoff, None, chosen.describe())
    return replace(drawn, thresholds=chosen)


# -- drawing ---------------------------------------------------------------------------------------
def legend_lines(counts: Counts, shape, scale: int, body_path: str, dye_path: str,
                 cutoff: str, backend: str | None) -> list[str]:
    """The text under the picture: the verdict, the exact counts, the files and the scale."""
    if counts.body:
        verdict = decide(counts, cutoff)
        decision = (f"{'CANCER' if verdict.cancer else 'no cancer'}: dye in body "
                    f"{100 * counts.dye_in_body / counts.body:.4f}% of the body (cutoff {cutoff})")
    else:
        decision = "no verdict: the body is empty under its pixel rule"
    where = f", counted on {backend}" if backend else ""
    return [
        decision,
        f"body {counts.body:,} px   dye in body {counts.dye_in_body:,} px   "
        f"dye outside body {counts.dye_outside_body:,} px",
        f"{Path(body_path).name} + {Path(dye_path).name}: {shape[0]} x {shape[1]} px, "
        f"1 picture px = {scale} x {scale}{where}",
    ]


def render(overlay: Overlay, layout: Layout, lines: list[str]):
    """The picture as a PIL image: the overlay, then a band with the legend and the text."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = layout.png_shape
    canvas = Image.new("RGB", (width, height), PANEL_RGB)
    canvas.paste(Image.fromarray(overlay.rgb, "RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=layout.font_px)
    except TypeError:  # Pillow without FreeType: a fixed bitmap font
        font = ImageFont.load_default()
    step = layout.font_px + 8
    x0, y = 8, overlay.out_shape[0] + 8
    for text in lines:
        draw.text((x0, y), _fit(draw, text, font, width - 2 * x0), fill=TEXT_RGB, font=font)
        y += step
    x = x0
    box = layout.font_px
    for colour, label in ((BODY_RGB, "body"), (DYE_IN_RGB, "dye in body"),
                          (DYE_OUT_RGB, "dye outside body"), (BACKGROUND_RGB, "background")):
        draw.rectangle([x, y + 1, x + box, y + 1 + box], fill=colour, outline=TEXT_RGB)
        draw.text((x + box + 5, y), label, fill=TEXT_RGB, font=font)
        x += box + 5 + int(draw.textlength(label, font=font)) + 3 * layout.font_px // 2
    return canvas


def _fit(draw, text: str, font, room: int) -> str:
    if draw.textlength(text, font=font) <= room:
        return text
    while text and draw.textlength(text + "...", font=font) > room:
        text = text[:-1]
    return text + "..."


def _write(path: Path, overlay: Overlay, layout: Layout, body_path: str, dye_path: str,
           cutoff: str, backend: str | None, thresholds: str | None = None) -> PreviewResult:
    inputs = (body_path, dye_path)
    if not overlay.complete:
        raise RuntimeError("the overlay is missing rows")
    lines = legend_lines(overlay.counts, overlay.shape, overlay.scale, body_path, dye_path, cutoff,
                         backend)
    if thresholds:  # the legend has room for a fourth line (LEGEND_LINES)
        lines.append(thresholds)
    image = render(overlay, layout, lines)
    write_picture(image, path, inputs)
    return PreviewResult(str(path), overlay.shape, overlay.scale, overlay.out_shape,
                         layout.png_shape, layout.legend_height, overlay.counts, lines)


#: Picture formats by suffix, with Pillow's save options: lossless where the format allows it.
PICTURE_FORMATS = {".png": ("PNG", {"optimize": False}), ".jpg": ("JPEG", {"quality": 92}),
                   ".jpeg": ("JPEG", {"quality": 92}), ".tif": ("TIFF", {}),
                   ".tiff": ("TIFF", {}), ".webp": ("WEBP", {"lossless": True}),
                   ".bmp": ("BMP", {})}


def picture_format(path) -> tuple[str, dict]:
    """Pillow's format name and save options for the picture ``path``, from its suffix.

    Raises
    ------
    UsageError
        For a suffix that names no format written here (or one this Pillow cannot write).
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        shown = f"the suffix {suffix!r}" if suffix else "a name without a suffix"
        raise UsageError(f"cannot tell the picture format from {shown}; end the name with "
                         f"{', '.join(PICTURE_FORMATS)}", os.fspath(path))
    name, options = PICTURE_FORMATS[suffix]
    PIL = require_pillow()
    if name not in PIL.Image.SAVE:
        PIL.Image.init()
    if name not in PIL.Image.SAVE:
        raise UsageError(f"this Pillow cannot write {name} pictures; use .png", os.fspath(path))
    return name, dict(options)


def check_output(path: Path, inputs=()) -> None:
    """Refuse, before any work is done, a picture that cannot be written: an unknown suffix, a
    folder that does not exist, an existing directory, FIFO or device, or one of the inputs."""
    picture_format(path)
    check_target(path, inputs, hint="give a picture file name such as overlay.png")


def write_picture(image, path: Path, inputs=()) -> None:
    """Save in the format of the suffix, to a temporary name then renamed (never half a file)."""
    name, options = picture_format(path)
    hint = "give a picture file name such as overlay.png"
    with AtomicOutput(path, inputs, hint=hint) as out:
        image.save(out.tmp, format=name, **options)
