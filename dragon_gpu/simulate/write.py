"""Writing a pair: the row writers of each format, and the rendering pass that feeds them.

Blocks are rendered, counted (popcount) and compressed on all cores; only the writing is serial.
"""

from __future__ import annotations

import numpy as np

from .._bits import BYTE_BITS
from ..model import Counts
from .gray import GrayLook
from .histogram import TruthHistogram, block_histogram
from .scene import Scene

__all__ = ["open_writer", "write_gray_pass", "write_pass"]


def _to_u8(packed: np.ndarray, width: int, set_value: int) -> np.ndarray:
    """Plane of ``set_value`` where a bit is set and ``255 - set_value`` elsewhere."""
    bits = BYTE_BITS[packed].reshape(packed.shape[0], -1)[:, :width]
    if set_value == 255:
        return bits * np.uint8(255)
    return (1 - bits) * np.uint8(255)


def open_writer(path, fmt: str, encoding: str, shape, role: str, compression, rows_per_strip):
    """A row writer for the ``role`` image of a pair (see :func:`~.generate`'s ``encoding``)."""
    from ..io.writers import Hdf5RowWriter, TiffRowWriter

    packed = encoding == "packed"
    bits = {"packed": 1, "u8": 8, "u16": 16}[encoding]
    if fmt == "tiff":
        # Body: MINISWHITE, a set bit is black (the dark body); dye: MINISBLACK, set is lit.
        photometric = "miniswhite" if (packed and role == "body") else "minisblack"
        return TiffRowWriter(path, shape, bits=bits, photometric=photometric,
                             compression=compression or "deflate", rows_per_strip=rows_per_strip)
    return Hdf5RowWriter(path, shape, packed=packed,
                         dtype=np.uint16 if bits == 16 else np.uint8, dataset="mask",
                         compression=compression or "gzip", chunk_rows=rows_per_strip,
                         attrs={"dragon_gpu_role": role})


def write_pass(scene: Scene, body_w, dye_w, encoding: str, workers: int, progress,
               done: int, total: int) -> Counts:
    """Render every row block, append it to both writers in order, and return the counts.

    ``progress(done + rows_written, total)`` follows the rows written.
    """
    height, width, seg = scene.height, scene.width, body_w.segment_rows

    def task(r0):
        rows = np.arange(r0, min(height, r0 + seg), dtype=np.int64)
        body, dye, _ = scene.render(rows)
        counts = scene.block_counts(body, dye)
        n, nb = rows.size, scene.row_nbytes
        b2, d2 = body[:n * nb].reshape(n, nb), dye[:n * nb].reshape(n, nb)
        if encoding == "u8":
            b2, d2 = _to_u8(b2, width, 0), _to_u8(d2, width, 255)
        return r0, n, counts, body_w.encode(r0, b2), dye_w.encode(r0, d2)

    return _write_blocks(task, height, body_w, dye_w, workers, progress, done, total)


def _write_blocks(task, height: int, body_w, dye_w, workers: int, progress, done: int,
                  total: int):
    """Run ``task(row_start) -> (row_start, rows, part, body bytes, dye bytes)`` on every block
    on ``workers`` threads, append the blocks in order, close both writers, and return the sum
    of the parts (counts or histograms)."""
    from ..io.writers import ordered_map

    total_part = None
    for r0, n, part, benc, denc in ordered_map(task, range(0, height, body_w.segment_rows),
                                               workers):
        body_w.append(r0, n, benc)
        dye_w.append(r0, n, denc)
        total_part = part if total_part is None else total_part + part
        done += n
        if progress is not None:
            progress(done, total)
    body_w.close()
    dye_w.close()
    return total_part


def write_gray_pass(scene: Scene, look: GrayLook, body_w, dye_w, bits: int, workers: int,
                    progress) -> TruthHistogram:
    """Render every row block as gray images (:mod:`.gray`), append it to both writers in order,
    and return the exact histogram truth of the values written."""
    height, seg = scene.height, body_w.segment_rows

    def task(r0):
        r1 = min(height, r0 + seg)
        body, dye = look.render(scene, r0, r1)
        return (r0, r1 - r0, block_histogram(body, dye, bits), body_w.encode(r0, body),
                dye_w.encode(r0, dye))

    return _write_blocks(task, height, body_w, dye_w, workers, progress, 0, height)
