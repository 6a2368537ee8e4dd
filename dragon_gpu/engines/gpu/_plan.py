"""Host-side decisions of the CUDA engine that need neither CuPy nor a GPU.

Which kernel counts a pair, how many threads it gets, how large a block may be on the device, and
how the blocks of a pair are split across devices: all pure functions of the encodings and row
ranges, tested with plain NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..._bits import packed_row_bytes
from ...io.base import Encoding, PixelRule
from ...model import RowRange

#: Threads of a thread block; the in-kernel reduction needs a multiple of 32 (whole warps).
THREADS = 256
#: Thread blocks per multiprocessor: enough to hide memory latency, few enough that the
#: per-block atomics stay negligible (a grid-stride loop covers the rest of the work).
BLOCKS_PER_SM = 8
#: The kernels index a block with 32-bit unsigned ints (faster division); the host keeps every
#: launch below this many pixels, so every byte, value and pixel index fits.
MAX_LAUNCH_PIXELS = (1 << 31) - 1
#: Device buffers are allocated in multiples of this, so vector loads never straddle an
#: allocation and every slot starts aligned.
ALIGN = 16

_ANY_RULE = PixelRule(1, True, "any")
_KERNEL_FILES = {"packed_packed": "packed_packed.cu", "plane_plane": "plane_plane.cu",
                 "mixed": "mixed.cu"}


@dataclass(frozen=True)
class KernelSpec:
    """A counting kernel: the ``.cu`` file that holds it and its (dtype-suffixed) name."""

    file: str
    name: str
    #: the kernel's work items: ``"vectors16"`` (16 packed bytes), ``"groups8"`` (8 plane
    #: pixels) or ``"bytes"`` (one packed byte of a row, up to 8 pixels).
    unit: str


def encoding_tag(enc: Encoding) -> str:
    """``"packed"``, ``"u8"`` or ``"u16"``; raises ``ValueError`` for anything else."""
    dtype = np.dtype(enc.dtype)
    if enc.packed:
        if dtype != np.uint8:
            raise ValueError(f"packed rows must be uint8, got {dtype}")
        return "packed"
    if dtype.kind != "u" or dtype.itemsize not in (1, 2):
        raise ValueError(f"plane rows must be uint8 or uint16, got {dtype}")
    if not dtype.isnative:
        raise ValueError(f"plane rows must be in native byte order, got {dtype.str}")
    return f"u{8 * dtype.itemsize}"


def kernel_for(body: Encoding, dye: Encoding) -> KernelSpec:
    """The kernel that counts a pair of these encodings.

    ``count_packed_packed``; ``count_plane_plane_{body}_{dye}`` for two planes;
    ``count_packed_plane_{dye}`` when only the body is packed and ``count_plane_packed_{body}``
    when only the dye is, where ``{body}`` / ``{dye}`` is ``u8`` or ``u16``.
    """
    if body.width != dye.width:
        raise ValueError(f"widths differ: {body.width} and {dye.width}")
    b, d = encoding_tag(body), encoding_tag(dye)
    if b == d == "packed":
        return KernelSpec(_KERNEL_FILES["packed_packed"], "count_packed_packed", "vectors16")
    if b != "packed" and d != "packed":
        return KernelSpec(_KERNEL_FILES["plane_plane"], f"count_plane_plane_{b}_{d}", "groups8")
    if b == "packed":
        return KernelSpec(_KERNEL_FILES["mixed"], f"count_packed_plane_{d}", "bytes")
    return KernelSpec(_KERNEL_FILES["mixed"], f"count_plane_packed_{b}", "bytes")


def all_kernels() -> list:
    """Every kernel the engine can launch: one counting kernel per encoding pair, and the
    histogram kernels (the probe loads them all, so a GPU that passes it can count any pair and
    histogram any plane)."""
    tags = [("packed", np.uint8), ("u8", np.uint8), ("u16", np.uint16)]
    specs = []
    for b, b_dtype in tags:
        for d, d_dtype in tags:
            body = Encoding(b == "packed", 8, np.dtype(b_dtype), _ANY_RULE)
            dye = Encoding(d == "packed", 8, np.dtype(d_dtype), _ANY_RULE)
            specs.append(kernel_for(body, dye))
    specs += [HistogramSpec("histogram_u8", 256), HistogramSpec("histogram_u16", 65536),
              HistogramSpec("histogram_u8_u8", 65536)]
    return specs


def work_items(spec: KernelSpec, rows: int, width: int) -> int:
    """How many work items the kernel's grid-stride loop walks for ``rows`` rows."""
    row_bytes = packed_row_bytes(width)
    if spec.unit == "vectors16":
        return rows * row_bytes // 16
    if spec.unit == "groups8":
        return rows * width // 8
    return rows * row_bytes


def grid_size(items: int, multiprocessors: int, threads: int = THREADS) -> int:
    """Thread blocks of a launch: one item a thread at most, capped at ``BLOCKS_PER_SM`` per
    multiprocessor, and never zero (thread 0 also counts the tail of a block)."""
    return max(1, min(-(-items // threads), multiprocessors * BLOCKS_PER_SM))


def device_nbytes(rows: int, enc: Encoding) -> int:
    """Bytes of a device buffer for ``rows`` rows of ``enc``: rows stay contiguous, exactly as the
    reader delivers them (no pitch), and the size is rounded up to ``ALIGN``."""
    return -(-rows * enc.row_nbytes // ALIGN) * ALIGN


def max_rows(width: int, row_nbytes: int, nbytes: int) -> int:
    """The most rows of a block: ``nbytes`` for the rows of both inputs (``row_nbytes`` a row),
    and fewer than ``MAX_LAUNCH_PIXELS`` pixels; at least 1."""
    return max(1, min(nbytes // max(1, row_nbytes), MAX_LAUNCH_PIXELS // max(1, width)))


def sub_blocks(blocks: Sequence[RowRange], rows: int) -> list[RowRange]:
    """``blocks`` cut into pieces of at most ``rows`` rows, in order, covering the same rows."""
    if rows < 1:
        raise ValueError(f"rows must be positive, got {rows}")
    out = []
    for block in blocks:
        for start in range(block.row_start, block.row_stop, rows):
            out.append(RowRange(start, min(block.row_stop, start + rows)))
    return out


def split_for_devices(blocks: Sequence[RowRange], devices: int) -> list[list[RowRange]]:
    """Split ``blocks`` into ``devices`` runs of consecutive blocks with about the same rows.

    Runs are contiguous (device k gets the rows after device k - 1's), every block lands in
    exactly one run, and runs split only between blocks, so block edges stay on the files'
    strips or chunks. A run may be empty when there are fewer blocks than devices.
    """
    if devices < 1:
        raise ValueError(f"devices must be positive, got {devices}")
    total = sum(b.rows for b in blocks)
    runs: list[list[RowRange]] = [[] for _ in range(devices)]
    done = 0
    for block in blocks:
        # The run whose share of the rows holds the block's middle row.
        middle = done + block.rows / 2
        k = min(devices - 1, math.floor(middle * devices / total)) if total else 0
        runs[k].append(block)
        done += block.rows
    return runs


# -- histograms -----------------------------------------------------------------------------------
#: Bins a shared-memory slice of the histogram kernel holds (``DRAGON_SLICE_BINS``).
SLICE_BINS = 8192


@dataclass(frozen=True)
class HistogramSpec:
    """A histogram kernel of ``histogram.cu``: its name, bins and shared-memory slices."""

    name: str
    bins: int
    file: str = "histogram.cu"

    @property
    def slices(self) -> int:
        return max(1, self.bins // SLICE_BINS)


def histogram_for(encs: Sequence[Encoding]) -> HistogramSpec:
    """The kernel histogramming one uint8/uint16 plane, or two uint8 planes jointly.

    Raises
    ------
    ValueError
        For packed rows, or a pair that is not two uint8 planes.
    """
    tags = [encoding_tag(e) for e in encs]
    if tags == ["u8"]:
        return HistogramSpec("histogram_u8", 256)
    if tags == ["u16"]:
        return HistogramSpec("histogram_u16", 65536)
    if tags == ["u8", "u8"]:
        if encs[0].width != encs[1].width:
            raise ValueError(f"widths differ: {encs[0].width} and {encs[1].width}")
        return HistogramSpec("histogram_u8_u8", 65536)
    raise ValueError(f"no histogram kernel for {' x '.join(tags)} rows")


def histogram_grid(spec: HistogramSpec, pixels: int, multiprocessors: int,
                   threads: int = THREADS) -> int:
    """Thread blocks of a histogram launch: a multiple of ``spec.slices`` (every slice gets the
    same parts of the pixels), about ``BLOCKS_PER_SM`` per multiprocessor in all, at least one
    part, and no more parts than the pixels need."""
    parts = max(1, min(-(-pixels // threads), multiprocessors * BLOCKS_PER_SM // spec.slices))
    return parts * spec.slices
