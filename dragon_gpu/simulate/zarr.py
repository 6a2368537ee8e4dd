"""``dragon-gpu generate --format zarr|ome-zarr``: a generated pair stored as Zarr v3 / OME-Zarr.

The pair is rendered by :func:`dragon_gpu.simulate.generate` (the same scene, seed for seed, as
the TIFF pair) into a temporary folder, then streamed into Zarr row block by row block:

* ``zarr``: ``body.zarr`` and ``dye.zarr``, Zarr v3 arrays (bool masks for ``packed``: a set
  value is the member; uint8 images for ``u8``: body 0 on 255, dye 255 on 0; gray uint8 or
  uint16 images with ``texture``, whose ``truth_hist.npz`` is copied beside truth.json);
* ``ome-zarr``: ``image.ome.zarr``, one OME-Zarr 0.5 image of two channels (``c=0`` body,
  ``c=1`` dye) with the body also as the label image ``labels/body`` (1 = body). ``truth.json``
  names the inputs ``image.ome.zarr#c=0`` and ``image.ome.zarr#c=1``.

The counts of ``truth.json`` are those of the rendered scene; the Zarr stores hold exactly the
same members (``tests/test_zarr_write.py`` re-detects them).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .histogram import HISTOGRAM_NAME

ZARR_FORMATS = ("zarr", "ome-zarr")


def generate_zarr(outdir, *, fmt: str, encoding: str = "packed", compression: str | None = None,
                  rows_per_strip: int | None = None, levels: int = 1, progress=None,
                  force: bool = False, **kwargs) -> dict:
    """Generate a pair (see :func:`dragon_gpu.simulate.generate` for ``kwargs``) as Zarr.

    Returns
    -------
    dict
        The content of ``truth.json``.
    """
    from .generator import generate

    if fmt not in ZARR_FORMATS:
        raise UsageError(f"{fmt!r} is not a Zarr format", param="fmt")
    from ..io.zarr_writer import COMPRESSIONS

    compression = compression or "zstd"
    if compression not in COMPRESSIONS:
        raise UsageError(f"choose one of {', '.join(COMPRESSIONS)} for Zarr, got "
                         f"{compression!r}", param="compression")
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder ({exc.strerror})", str(outdir)) from None
    names = ("body.zarr", "dye.zarr") if fmt == "zarr" else ("image.ome.zarr",)
    texture = bool(kwargs.get("texture"))
    extra = (HISTOGRAM_NAME,) if texture else ()
    existing = [n for n in names + extra + ("truth.json",) if os.path.lexists(outdir / n)]
    if existing and not force:
        from ..errors import OutputError

        raise OutputError(f"already holds {', '.join(existing)}; add {{option:force}} to replace "
                          "the pair", str(outdir))
    chunk = rows_per_strip or 1024
    with tempfile.TemporaryDirectory(dir=outdir, prefix=".generate-") as tmp:
        truth = generate(tmp, fmt="tiff", encoding=encoding, compression="zstd",
                         progress=progress, **kwargs)
        body_src, dye_src = truth["body_path"], truth["dye_path"]
        if fmt == "zarr":
            body_path, dye_path = outdir / "body.zarr", outdir / "dye.zarr"
            _convert_pair(body_src, dye_src, None, body_path, dye_path, encoding, compression,
                          chunk)
            names = (os.fspath(body_path), os.fspath(dye_path))
        else:
            image = outdir / "image.ome.zarr"
            _convert_pair(body_src, dye_src, image, None, None, encoding, compression, chunk,
                          levels)
            names = (f"{image}#c=0", f"{image}#c=1")
        truth.update(_rules(*names))
        truth["body_path"], truth["dye_path"] = names
        truth["parameters"].update({"format": fmt, "compression": compression,
                                    "rows_per_strip": chunk, "levels": levels})
        from ..io.writers import AtomicOutput

        if texture:
            with AtomicOutput(outdir / HISTOGRAM_NAME) as out:
                shutil.copyfile(os.path.join(tmp, HISTOGRAM_NAME), out.tmp)
        with AtomicOutput(outdir / "truth.json") as out, open(out.tmp, "w") as fh:
            json.dump(truth, fh, indent=2)
            fh.write("\n")
    return truth


def _rules(body: str, dye: str) -> dict:
    from ..io import open_mask, resolve_rule

    with open_mask(body) as b, open_mask(dye) as d:
        return {"body_rule": resolve_rule(b, "body").text, "dye_rule": resolve_rule(d, "dye").text}


def _convert_pair(body_src, dye_src, image, body_dst, dye_dst, encoding, compression, chunk,
                  levels=1) -> None:
    """Stream both generated TIFFs into Zarr: two arrays, or one two-channel OME-Zarr image."""
    from ..convert import RowMapping
    from ..io import open_mask
    from ..io.zarr_writer import ZarrImageWriter
    from ..model import RowRange
    from ..streaming import prefetch

    with ExitStack() as stack:
        body = stack.enter_context(open_mask(body_src))
        dye = stack.enter_context(open_mask(dye_src))
        height, width = body.shape
        # Membership for packed pairs (bool masks), brightness for u8 pairs.
        maps = [RowMapping(r, "hdf5", encoding, pol, None, str(r.path))
                for r, pol in ((body, "dark"), (dye, "bright"))]
        packed = encoding == "packed"
        dtype = np.bool_ if packed else (np.uint16 if encoding == "u16" else np.uint8)
        half = 32768 if encoding == "u16" else 128   # the label: the default body rule
        kw = dict(chunk_rows=chunk, chunk_cols=chunk, compression=compression)
        if image is not None:
            writers = [stack.enter_context(ZarrImageWriter(
                image, (height, width), dtype, channels=["body", "dye"], ome=True, levels=levels,
                labels=["body"], **kw))]
        else:
            writers = [stack.enter_context(ZarrImageWriter(p, (height, width), dtype, **kw))
                       for p in (body_dst, dye_dst)]
        step = max(chunk, (32 << 20) // max(1, width) // chunk * chunk)
        blocks = [RowRange(r, min(height, r + step)) for r in range(0, height, step)]
        with closing(prefetch((body, dye), blocks, depth=1)) as ring:
            for rows, (b, d) in ring:
                planes = []
                for m, block in zip(maps, (b, d)):
                    out = m(block)
                    planes.append(np.unpackbits(out, axis=1, count=width).view(np.bool_)
                                  if packed else out)
                if image is not None:
                    member = planes[0] if packed else planes[0] < half
                    writers[0].write(rows.row_start, planes,
                                     labels={"body": member.astype(np.uint8)})
                else:
                    writers[0].write(rows.row_start, planes[0])
                    writers[1].write(rows.row_start, planes[1])
