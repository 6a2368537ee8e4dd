"""``dragon-gpu convert``: re-encode one image (format, bit depth, packing, compression), streaming.

What is preserved is what detect sees. Every input pixel has a *brightness* (gray images: the
value, flipped for MINISWHITE; 1-bit images: white or black under their photometric) or, for
masks (HDF5 packed bits or bool), a *membership*. Outputs:

* ``packed`` TIFF: a 1-bit image. From a 1-bit TIFF the bits and photometric are kept. From a
  gray image, a pixel is white when its brightness is ``>= threshold`` (default half the range,
  as in detect), so detect's default rules (body: dark, dye: bright) give the same masks.
* ``packed`` HDF5: a mask (a set bit is a member). From a mask the bits are kept; from an image,
  ``--polarity`` says which pixels are members: ``dark`` (a body) or ``bright`` (lit dye).
* ``u8`` / ``u16``: a gray image of brightness values (TIFF MINISBLACK or a plain HDF5 dataset).
  Gray values are kept (rescaled between 8 and 16 bits: ``v >> 8`` or ``v * 257``, which keeps
  the comparison with the default threshold); white is the top value, black is 0.

Converting between a mask and an image needs ``--polarity``: a mask does not say whether its
members are dark (a body) or bright (dye). When given, a 1-bit TIFF output is written so that a
set bit is a member (MINISWHITE for dark members, MINISBLACK for bright ones), like the files of
``dragon-gpu generate``. A 1-bit TIFF turned into a mask without ``--polarity`` keeps its set
bits as the members (dark for MINISWHITE, bright for MINISBLACK): the mask then counts as the
TIFF does when detect reads it in the role its photometric suggests, which is how generate's
pairs are written.
"""

from __future__ import annotations

import os
from contextlib import closing
import time

import numpy as np

from .blocks import check_unit_memory
from .choices import CONVERT_ENCODINGS, OUTPUT_FORMATS
from .errors import OutputError, UsageError
from .io import Kind, Polarity, open_mask, split_selector
from .io.base import default_threshold, packed_row_bytes
from .io._output import check_target
from .io.writers import segment_rows_for, write_hdf5, write_tiff
from .model import RowProgress, RowRange

ENCODINGS = CONVERT_ENCODINGS
_SUFFIXES = {".tif": "tiff", ".tiff": "tiff", ".h5": "hdf5", ".hdf5": "hdf5", ".hdf": "hdf5",
             ".he5": "hdf5"}
#: Raw input bytes read per block: large enough to keep the compression threads busy.
BLOCK_NBYTES = 64 << 20


FORMATS = OUTPUT_FORMATS


def _format_of(path: str, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise UsageError(f"choose one of {', '.join(FORMATS)}, got {fmt!r}", param="fmt")
        return fmt
    lower = path.rstrip("/").lower()
    if lower.endswith(".zarr"):
        return "ome-zarr" if lower.endswith(".ome.zarr") else "zarr"
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SUFFIXES:
        raise UsageError("cannot tell the output format from the suffix; use {option:fmt} "
                         "tiff|hdf5|zarr|ome-zarr or a .tif / .h5 / .zarr / .ome.zarr name", path)
    return _SUFFIXES[suffix]


class RowMapping:
    """Turns input row blocks into output row blocks, and says in words how.

    Used by :func:`convert` and by the generator's Zarr output (:mod:`dragon_gpu.simulate.zarr`).
    """

    def __init__(self, reader, fmt: str, encoding: str, polarity: Polarity | None,
                 threshold: int | None, where: str):
        self.reader = reader
        self.width = reader.width
        self.polarity = None if polarity is None else Polarity(polarity)
        kind = reader.kind
        self.kind = kind
        self.out_packed = encoding == "packed"
        self.out_bits = {"packed": 1, "u8": 8, "u16": 16}[encoding]
        if threshold is not None and kind is not Kind.gray:
            raise UsageError("{option:threshold} applies to 8/16-bit inputs only", reader.path)
        if kind is Kind.gray:
            maxval = (1 << reader.bits) - 1
            self.threshold = default_threshold(reader.bits) if threshold is None else int(threshold)
            if not 1 <= self.threshold <= maxval:
                raise UsageError(f"must be between 1 and {maxval} for a {reader.bits}-bit "
                                 f"image, got {self.threshold}", reader.path, param="threshold")
        needs_polarity = (kind is Kind.mask) != (fmt == "hdf5" and self.out_packed)
        self.default_polarity = False
        if needs_polarity and self.polarity is None and kind is Kind.bilevel:
            # The set bits are the members: a MINISWHITE file's set bits are black (a body, as
            # detect reads it), a MINISBLACK file's are white (lit dye). That is how generate and
            # convert write 1-bit files, so the mask counts as the TIFF did in its role.
            self.polarity = Polarity.bright if reader.set_is_white else Polarity.dark
            self.default_polarity = True
        if needs_polarity and self.polarity is None:
            if kind is Kind.mask:
                raise UsageError("converting a mask to an image needs {option:polarity}: add "
                                 "{option:polarity} dark if it is a body mask (members drawn "
                                 "dark) or {option:polarity} bright if it is a dye mask (members "
                                 "drawn bright)", where)
            raise UsageError(f"converting an image to a mask needs {{option:polarity}}: add "
                             f"{{option:polarity}} dark if {reader.path} is a body image (members "
                             "are dark) or {option:polarity} bright if it is a dye image (members "
                             "are bright)", where)
        self.mask_out = fmt == "hdf5" and self.out_packed
        self.photometric = "minisblack"
        if self.out_packed and not self.mask_out:
            if kind is Kind.bilevel:
                self.photometric = "minisblack" if reader.set_is_white else "miniswhite"
            elif self.polarity is Polarity.dark:
                self.photometric = "miniswhite"
        self.text = self._describe()

    def _describe(self) -> str:
        r = self.reader
        src = ("mask" if self.kind is Kind.mask else
               f"1-bit {'MINISBLACK' if r.set_is_white else 'MINISWHITE'} image"
               if self.kind is Kind.bilevel else
               f"uint{r.bits} {'MINISWHITE ' if r.inverted else ''}image")
        pol = f" (members: {self.polarity.value})" if self.polarity is not None else ""
        if self.default_polarity:
            pol = (f" (members: the set bits, {self.polarity.value}: the default for a "
                   f"{'MINISBLACK' if r.set_is_white else 'MINISWHITE'} image)")
        if self.mask_out:
            dst = "packed-bit mask (set = member)"
        elif self.out_packed:
            dst = f"1-bit {self.photometric.upper()} image"
        else:
            dst = f"uint{self.out_bits} image of brightness"
        how = ""
        if self.kind is Kind.gray and self.out_packed:
            how = f", bright = brightness >= {self.threshold}"
        return f"{src}{pol} -> {dst}{how}"

    # -- per block ----------------------------------------------------------------------------
    def _pad_mask(self) -> np.uint8:
        rem = self.width % 8
        return np.uint8((0xFF << (8 - rem)) & 0xFF) if rem else np.uint8(0xFF)

    def _packed_bright(self, block) -> np.ndarray:
        """Packed bits, 1 = bright (white)."""
        r = self.reader
        if self.kind is Kind.bilevel:
            return block.copy() if r.set_is_white else self._invert(block)
        if self.kind is Kind.mask:
            member = self._packed_member(block)
            return member if self.polarity is Polarity.bright else self._invert(member)
        return np.packbits(self._bright_plane(block), axis=1)

    def _bright_plane(self, block) -> np.ndarray:
        r = self.reader
        if r.inverted:
            return block <= ((1 << r.bits) - 1) - self.threshold
        return block >= self.threshold

    def _packed_member(self, block) -> np.ndarray:
        """Packed bits, 1 = member (mask inputs, or images under --polarity)."""
        if self.kind is Kind.mask:
            return block.copy() if self.reader.packed else np.packbits(block != 0, axis=1)
        bright = self._packed_bright(block)
        return bright if self.polarity is Polarity.bright else self._invert(bright)

    def _invert(self, packed) -> np.ndarray:
        out = np.invert(packed)
        out[:, -1] &= self._pad_mask()
        return out

    def __call__(self, block: np.ndarray) -> np.ndarray:
        if self.mask_out:
            return self._packed_member(block)
        if self.out_packed:
            if self.kind is Kind.bilevel:
                return block.copy()  # same bits, same photometric
            if self.kind is Kind.mask:
                return self._packed_member(block)  # photometric chosen so set = member
            bright = self._packed_bright(block)
            return bright if self.photometric == "minisblack" else self._invert(bright)
        top = (1 << self.out_bits) - 1
        dtype = np.uint8 if self.out_bits == 8 else np.uint16
        if self.kind is Kind.gray:
            # In the input's own dtype (no wider temporary); always a new array, since the
            # block's buffer is reused for the next block while the writer may still hold this.
            r = self.reader
            values = (np.subtract((1 << r.bits) - 1, block, dtype=block.dtype) if r.inverted
                      else block)
            if r.bits == 16 and self.out_bits == 8:
                return (values >> 8).astype(np.uint8)
            if r.bits == 8 and self.out_bits == 16:
                out = values.astype(np.uint16)
                out *= 257
                return out
            return values.astype(dtype, copy=values is block)
        bright = np.unpackbits(self._packed_bright(block), axis=1, count=self.width)
        out = bright.astype(dtype)
        out *= dtype(top)
        return out


#: The former private name, which tests patch.
_Mapping = RowMapping


def convert(src, dst, *, fmt: str | None = None, encoding: str | None = None,
            compression: str | None = None, segment_rows: int | None = None,
            polarity: Polarity | str | None = None, threshold: int | None = None,
            page: int = 0, dataset: str | None = None, out_dataset: str = "mask",
            allow_external: bool = False, workers: int | None = None, memory: int = 1 << 30,
            progress: RowProgress | None = None, levels: int = 1) -> dict:
    """Re-encode the image ``src`` into ``dst``, streaming row blocks (see the module docstring).

    Parameters
    ----------
    src : str or PathLike
        Input image (TIFF or HDF5), read with :func:`dragon_gpu.io.open_mask`.
    dst : str or PathLike
        Output file, written to a temporary name and renamed when complete.
    fmt : {"tiff", "hdf5", "zarr", "ome-zarr"}, optional
        Output format; default from the suffix of ``dst`` (``.ome.zarr`` is OME-Zarr). Zarr
        outputs are Zarr v3 stores (OME-Zarr 0.5 image groups); a packed encoding is written as
        a bool mask (a set value is a member), as for HDF5.
    encoding : {"packed", "u8", "u16"}, optional
        Default: packed for 1-bit and mask inputs, else the input's bit depth.
    compression : str, optional
        TIFF: deflate (default), lzw, packbits, zstd, none; HDF5: gzip (default), lzf, lz4,
        zstd, none.
    segment_rows : int, optional
        Rows of a TIFF strip / HDF5 chunk; default about 1 MiB of raw rows.
    polarity : {"dark", "bright"}, optional
        Which pixels are a mask's members; needed between masks and images.
    threshold : int, optional
        Brightness from which a gray pixel is white (bright) in a 1-bit output.
    page, dataset, allow_external
        Which image of ``src`` to read, as in detect.
    memory : int
        Memory budget in bytes, as detect's ``--memory``: a file whose strips, tiles or chunks
        cannot be decoded within it is refused before anything is read, and blocks are sized
        from it.
    out_dataset : str
        HDF5 dataset name of the output (``"mask"``).
    levels : int
        OME-Zarr pyramid levels (the full resolution and ``levels - 1`` halvings).

    Returns
    -------
    dict
        ``input``, ``output``, ``shape``, ``format``, ``encoding``, ``compression``,
        ``mapping`` (how pixels were mapped, in words), ``input_bytes``, ``output_bytes``,
        ``seconds``.
    """
    from .streaming import prefetch

    src, dst = os.fspath(src), os.fspath(dst)
    fmt = _format_of(dst, fmt)
    _check_output(src, dst, fmt)
    if encoding is not None and encoding not in ENCODINGS:
        raise UsageError(f"choose one of {', '.join(ENCODINGS)}, got {encoding!r}",
                         param="encoding")
    start = time.perf_counter()
    with open_mask(src, page=page, dataset=dataset, allow_external=allow_external) as reader:
        encoding = encoding or _default_encoding(reader)
        # Zarr masks are bool arrays: the HDF5 mapping (membership bits) is used, then unpacked.
        zarr_out = fmt in ("zarr", "ome-zarr")
        mapping = RowMapping(reader, "hdf5" if zarr_out else fmt, encoding, polarity, threshold,
                             dst)
        height, width = reader.shape
        seg = segment_rows or _segment_rows(width, encoding, zarr_out)
        blocks = _blocks(reader, seg, memory)

        def rows():
            with closing(prefetch((reader,), blocks, depth=1)) as ring:
                for _, (block,) in ring:
                    yield mapping(block)

        info = _write(fmt, src, dst, rows(), mapping, encoding, compression, seg,
                      out_dataset=out_dataset, levels=levels, workers=workers, progress=progress)
    return {"input": src, "output": dst, "shape": [height, width], "format": fmt,
            "encoding": encoding, "compression": info["compression"],
            "segment_rows": info["segment_rows"], "mapping": mapping.text,
            "input_bytes": _size(src), "output_bytes": info["bytes"],
            "seconds": round(time.perf_counter() - start, 6)}


def _default_encoding(reader) -> str:
    """Packed for 1-bit and mask inputs, else the input's bit depth."""
    if reader.kind is not Kind.gray:
        return "packed"
    return "u8" if reader.bits == 8 else "u16"


def _segment_rows(width: int, encoding: str, zarr_out: bool) -> int:
    """Default rows of a strip or chunk: about 1 MiB of output rows; for Zarr, chunks of
    1024 x 1024 pixels (tiles, not strips)."""
    if zarr_out:
        return 1024
    if encoding == "packed":
        return segment_rows_for(packed_row_bytes(width))
    itemsize = np.dtype(np.uint16 if encoding == "u16" else np.uint8).itemsize
    return segment_rows_for(width * itemsize)


def _check_output(src: str, dst: str, fmt: str) -> None:
    """Before the input is opened: a FIFO, device, directory or the input itself is refused
    without reading anything (compared by inode, so another name of the input is caught too)."""
    location = split_selector(src)[0]
    if fmt in ("zarr", "ome-zarr"):
        # A Zarr output is a folder: ZarrImageWriter replaces only a Zarr store there.
        if os.path.exists(dst) and os.path.exists(location) and os.path.samefile(location, dst):
            raise OutputError("is the input store; write to another name", dst)
    else:
        check_target(dst, (location,))


def _blocks(reader, seg: int, memory: int) -> list:
    """Row blocks of the input: whole units of the reader and of the output, within ``memory``."""
    unit = max(seg, reader.row_granularity)
    check_unit_memory(reader, memory)
    in_rows = max(1, min(BLOCK_NBYTES, memory // 8) // max(1, reader.row_nbytes))
    block_rows = max(unit, in_rows // unit * unit)
    height = reader.height
    return [RowRange(r, min(height, r + block_rows)) for r in range(0, height, block_rows)]


def _write(fmt: str, src: str, dst: str, rows, mapping: RowMapping, encoding: str,
           compression: str | None, seg: int, *, out_dataset: str, levels: int, workers,
           progress) -> dict:
    """Write the output rows ``rows`` in ``fmt``; the writer's summary."""
    shape = (mapping.reader.height, mapping.width)
    packed = encoding == "packed"
    dtype = np.uint16 if encoding == "u16" else np.uint8
    if fmt in ("zarr", "ome-zarr"):
        from .io.zarr_writer import write_zarr_rows

        return write_zarr_rows(dst, rows, shape, packed=packed, dtype=dtype,
                               ome=fmt == "ome-zarr", levels=levels,
                               compression=compression or "zstd", chunk_rows=seg,
                               chunk_cols=seg, progress=progress)
    common = dict(workers=workers, progress=progress, inputs=(src,))
    if fmt == "tiff":
        return write_tiff(dst, rows, shape, bits=mapping.out_bits,
                          photometric=mapping.photometric,
                          compression=compression or "deflate", rows_per_strip=seg, **common)
    return write_hdf5(dst, rows, shape, packed=packed, dtype=dtype, dataset=out_dataset,
                      compression=compression or "gzip", chunk_rows=seg, **common)


def _size(path: str) -> int | None:
    """Bytes of an input file or store folder (None for a URL)."""
    from .io import is_url, split_selector

    path = split_selector(path)[0]
    if is_url(path):
        return None
    if os.path.isdir(path):
        from .io.zarr_writer import stored_bytes

        return stored_bytes(path)
    return os.path.getsize(path)
