"""``generate()``: a pair and its exact truth in five steps (check, open, draw, write, publish)."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import GENERATE_ENCODINGS, GENERATE_KINDS
from ..errors import OutputError, UsageError
from ..model import RowProgress
from .aim import Sampler, aim_kind, draw_kind
from .boundary import patch_boundary
from .gray import draw_look
from .histogram import HISTOGRAM_NAME, TruthHistogram
from .scene import DEFAULT_SPECKLE, Scene, build_scene, scene_rng
from .truth import check_drawn, truth_record, write_truth
from .write import open_writer, write_gray_pass, write_pass

__all__ = ["ENCODINGS", "FORMATS", "KINDS", "MIN_SIDE", "generate"]

KINDS = GENERATE_KINDS
FORMATS = ("tiff", "hdf5")
ENCODINGS = GENERATE_ENCODINGS
MIN_SIDE = 64


def _validate(height, width, seed, kind, fmt, encoding, compression, cancer_rate, speckle,
              texture):
    from ..io.writers import HDF5_COMPRESSIONS, TIFF_COMPRESSIONS

    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_SIDE:
            raise UsageError(f"must be an integer of at least {MIN_SIDE}, got {value!r}",
                             param=name)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"must be a non-negative integer, got {seed!r}", param="seed")
    if kind not in KINDS:
        raise UsageError(f"choose one of {', '.join(KINDS)}, got {kind!r}", param="kind")
    if fmt not in FORMATS:
        raise UsageError(f"choose tiff or hdf5, got {fmt!r}", param="fmt")
    if encoding not in ENCODINGS:
        raise UsageError(f"choose one of {', '.join(ENCODINGS)}, got {encoding!r}",
                         param="encoding")
    if texture and encoding == "packed":
        raise UsageError("{option:texture} draws gray levels: add {option:encoding} u8 or "
                         "{option:encoding} u16")
    if encoding == "u16" and not texture:
        raise UsageError("u16 goes with {option:texture} (two-level images are u8 or packed)",
                         param="encoding")
    if texture and kind == "boundary":
        raise UsageError("boundary is exact on masks only; with {option:texture} the truth is "
                         "whatever the gray pixels give (choose another kind)", param="kind")
    allowed = TIFF_COMPRESSIONS if fmt == "tiff" else HDF5_COMPRESSIONS
    if compression is not None and compression not in allowed:
        raise UsageError(f"{compression!r} is not available for {fmt}; choose one of "
                         f"{', '.join(allowed)}", param="compression")
    if not 0 <= cancer_rate <= 1:
        raise UsageError(f"must be between 0 and 1, got {cancer_rate}", param="cancer_rate")
    if not 0 <= speckle <= 0.01:
        raise UsageError(f"must be between 0 and 0.01, got {speckle}", param="speckle")


@dataclass(frozen=True)
class _Drawn:
    """A drawn pair: the scene to render, its kind, the aimed share and the progress plan."""

    scene: Scene
    kind: str
    target: float | None
    passes: int


def _draw(height, width, seed, speckle, kind, cancer_rate, segment_rows, workers,
          progress) -> _Drawn:
    """Scene, drawn kind and vessel gain (plus the boundary patch): every number of the pair."""
    rng = scene_rng(height, width, seed)
    scene = build_scene(height, width, seed, speckle, rng=rng)
    drawn = draw_kind(rng, kind, cancer_rate)
    sampler = Sampler(scene)
    if drawn == "boundary":
        scene = patch_boundary(scene, sampler, segment_rows, workers, progress, 2 * height)
        return _Drawn(scene, drawn, None, 2)
    gain, target = aim_kind(sampler, rng, drawn)
    return _Drawn(scene.with_gain(gain), drawn, target, 1)


def _workers(workers: int | None) -> int:
    from ..io.writers import default_workers

    return default_workers() if workers is None else max(1, int(workers))


def _write(drawn: _Drawn, body_w, dye_w, encoding: str, texture: bool, workers: int, progress):
    """Render and write the pair: ``(counts, histogram truth, gray look)`` (None, None for a
    two-level pair)."""
    height = drawn.scene.height
    if not texture:
        counts = write_pass(drawn.scene, body_w, dye_w, encoding, workers, progress,
                            (drawn.passes - 1) * height, drawn.passes * height)
        return counts, None, None
    from ..io import default_threshold

    bits = 16 if encoding == "u16" else 8
    look = draw_look(height, drawn.scene.width, drawn.scene.seed, bits)
    hist = write_gray_pass(drawn.scene, look, body_w, dye_w, bits, workers, progress)
    t = default_threshold(bits)
    return hist.counts_at(t, t), hist, look


def _gray_keys(encoding: str, look) -> dict:
    """What truth.json adds for a gray pair: the thresholds its counts are at, the histogram,
    and the drawn look."""
    from ..io import default_threshold

    t = default_threshold(16 if encoding == "u16" else 8)
    return {"body_threshold": t, "dye_threshold": t, "body_threshold_method": "fixed",
            "dye_threshold_method": "fixed", "histogram": HISTOGRAM_NAME, "texture": look.info}


class _PairFiles:
    """The body, dye and ``truth.json`` of a pair: checked before anything is drawn, written to
    temporaries, and published together (``truth.json`` last) or not at all."""

    def __init__(self, outdir, fmt: str, force: bool, texture: bool = False):
        from ..io._output import check_target

        outdir = Path(outdir)
        try:
            outdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the output folder ({exc.strerror})",
                             str(outdir)) from None
        suffix = ".tif" if fmt == "tiff" else ".h5"
        self.where = str(outdir)
        names = [f"body{suffix}", f"dye{suffix}"] + ([HISTOGRAM_NAME] if texture else [])
        self.paths = tuple(outdir / n for n in names + ["truth.json"])
        # A directory, FIFO or device under one of the names, or an existing pair without force,
        # stops the run with nothing done.
        for path in self.paths:
            check_target(path)
        existing = [p.name for p in self.paths if os.path.lexists(p)]
        if existing and not force:
            raise OutputError(f"already holds {', '.join(existing)}; add {{option:force}} to "
                              "replace the pair", self.where)

    def open(self, stack: ExitStack, fmt, encoding, shape, compression, rows_per_strip):
        """Temporaries and row writers; an exception before :meth:`publish` removes them."""
        from ..io._output import AtomicOutput

        self.outputs = [stack.enter_context(AtomicOutput(p, where=self.where))
                        for p in self.paths]
        writers = []
        for out, role in zip(self.outputs, ("body", "dye")):
            w = open_writer(out.tmp, fmt, encoding, shape, role, compression, rows_per_strip)
            stack.callback(w.abort)
            writers.append(w)
        return writers

    def rules(self) -> tuple[str, str]:
        """The pixel rules the readers find in the written temporaries."""
        from ..io import open_mask, resolve_rule

        out = []
        for tmp, role in ((self.outputs[0].tmp, "body"), (self.outputs[1].tmp, "dye")):
            with open_mask(tmp) as r:
                out.append(resolve_rule(r, role).text)
        return out[0], out[1]

    def publish(self, truth: dict, hist: TruthHistogram | None = None) -> None:
        from ..io._output import publish

        if hist is not None:
            hist.save(self.outputs[2].tmp)
        write_truth(self.outputs[-1].tmp, truth)
        publish(self.outputs)


def generate(outdir, *, height: int, width: int, seed: int = 0, kind: str = "typical",
             fmt: str = "tiff", encoding: str = "packed", compression: str | None = None,
             cancer_rate: float = 0.001, speckle: float = DEFAULT_SPECKLE,
             rows_per_strip: int | None = None, workers: int | None = None,
             progress: RowProgress | None = None, force: bool = False,
             texture: bool = False) -> dict:
    """Generate a realistic body/dye pair and its exact ground truth in ``outdir``.

    The files are checked before anything is written (each absent, or a regular file when
    ``force``), written to temporaries and renamed together, ``truth.json`` last.

    Parameters
    ----------
    outdir : str or PathLike
        Folder (created if missing) that receives ``body.tif`` + ``dye.tif`` (or ``body.h5`` +
        ``dye.h5``, dataset ``mask``) and ``truth.json``.
    height, width : int
        Image size in pixels (at least 64).
    seed : int
        Everything is drawn from it: same seed and parameters, same bytes.
    kind : {"typical", "cancer", "healthy", "boundary"}
        ``cancer``: dye in body clearly above 10% of the body (aimed at 14-22%, at least 12%);
        ``healthy``: clearly below (3-7%, at most 8%); ``boundary``: exactly 10%
        (``10 * dye_in_body == body``, not cancer); ``typical``: cancer with probability
        ``cancer_rate``, else healthy.
    fmt : {"tiff", "hdf5"}
    encoding : {"packed", "u8", "u16"}
        ``packed``: 1 bit a pixel (TIFF: body MINISWHITE, dye MINISBLACK, a set bit is the
        member; HDF5: packed-bit masks, see :class:`~dragon_gpu.io.writers.Hdf5RowWriter`).
        ``u8``: 8-bit images, body 0 on 255 (dark body), dye 255 on 0 (bright dye); with
        ``texture``, gray 8-bit images. ``u16``: gray 16-bit images (``texture`` only).
    compression : str, optional
        TIFF: deflate (default), lzw, packbits, zstd, none; HDF5: gzip (default), lzf, lz4,
        zstd, none.
    cancer_rate : float
        Prevalence of cancer for ``typical``.
    speckle : float
        Share of pixels lit by speckle noise in the dye image (short runs of 1-2 pixels).
    rows_per_strip : int, optional
        TIFF strip / HDF5 chunk rows; default about 1 MiB of raw rows.
    workers : int, optional
        Threads that render and compress; default: the usable cores.
    progress : callable, optional
        ``progress(rows_done, rows_total)``.
    force : bool
        Replace an existing pair; without it, an existing ``body``, ``dye`` or ``truth.json`` is
        refused (:class:`~dragon_gpu.errors.OutputError`).
    texture : bool
        Gray images that look like microscopy (:mod:`dragon_gpu.simulate.gray`) instead of two
        levels. The counts of ``truth.json`` are then those of the gray pixels at the default
        thresholds, and ``truth_hist.npz`` beside it gives them at any thresholds
        (:func:`dragon_gpu.simulate.counts_at`). Not with ``kind="boundary"``.

    Returns
    -------
    dict
        The content of ``truth.json``: the detect JSON keys (exact counts, verdict, rules)
        plus ``seed``, ``kind``, ``drawn_kind``, ``parameters`` and ``generator_version``.
    """
    speckle = DEFAULT_SPECKLE if speckle is None else speckle
    _validate(height, width, seed, kind, fmt, encoding, compression, cancer_rate, speckle,
              texture)
    height, width, seed, workers = int(height), int(width), int(seed), _workers(workers)
    start = time.perf_counter()
    files = _PairFiles(outdir, fmt, force, texture)                            # 1. check
    with ExitStack() as stack:
        body_w, dye_w = files.open(stack, fmt, encoding, (height, width), compression,
                                   rows_per_strip)                             # 2. open
        seg = body_w.segment_rows
        drawn = _draw(height, width, seed, speckle, kind, cancer_rate, seg, workers,
                      progress)                                                # 3. draw
        counts, hist, look = _write(drawn, body_w, dye_w, encoding, texture, workers,
                                    progress)                                  # 4. write
        verdict = check_drawn(counts, drawn.kind, height * width)
        truth = truth_record(
            counts=counts, verdict=verdict, scene=drawn.scene, paths=files.paths,
            rules=files.rules(), seconds=time.perf_counter() - start, kind=kind,
            drawn=drawn.kind, target=drawn.target,
            parameters={"format": fmt, "encoding": encoding, "compression": body_w.compression,
                        "rows_per_strip": seg, "cancer_rate": cancer_rate, "speckle": speckle},
            extra=_gray_keys(encoding, look) if texture else {})
        files.publish(truth, hist)                                             # 5. publish
    return truth
