"""The single-machine driver: open both inputs, plan row blocks, count with an engine, decide."""

from __future__ import annotations

import os
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Callable

from . import autothreshold
from ._version import __version__
from .engines import select_engine
from .errors import EmptyBodyError, MemoryBudgetError, ShapeMismatchError, UsageError
from .io import Encoding, MaskReader, Polarity, open_mask
# Block planning lives in .blocks (.autothreshold uses it too); the names stay importable here.
from .blocks import BLOCK_SHARE, MAX_BLOCK_NBYTES, check_unit_memory, plan_blocks  # noqa: F401
from .model import Counts, RowProgress, RowRange, Verdict, ticker
from .numbers import parse_size
from .autothreshold import Chosen
from .verdict import DEFAULT_CUTOFF, decide, parse_cutoff

DEFAULT_MEMORY = 1 << 30
BODY_WARN_SHARE = Fraction(1, 4)
#: ``watch(body, body_enc, dye, dye_enc) -> (body, dye)``: see :func:`detect`.
Watch = Callable[[MaskReader, Encoding, MaskReader, Encoding], tuple[MaskReader, MaskReader]]
DYE_WARN_SHARE = Fraction(1, 2)


@dataclass(frozen=True)
class DetectOptions:
    """Everything a detection needs besides the two paths (the CLI's options, validated)."""

    cutoff: str = DEFAULT_CUTOFF
    device: str = "auto"
    require_gpu: bool = False
    #: bytes, or a size such as "1GiB" (read by :func:`dragon_gpu.numbers.parse_size`)
    memory: int | str = DEFAULT_MEMORY
    #: a gray level, or a method name (``otsu``, ``li``...: see :mod:`dragon_gpu.thresholds`)
    threshold: int | str | None = None
    #: per-input thresholds, overriding ``threshold`` (for pairs of different bit depths)
    body_threshold: int | str | None = None
    dye_threshold: int | str | None = None
    body_polarity: Polarity | None = None
    dye_polarity: Polarity | None = None
    body_dataset: str | None = None
    dye_dataset: str | None = None
    page: int = 0
    allow_external: bool = False
    block_rows: int | None = None
    #: refuse absent Zarr chunks instead of reading them as the fill value
    strict: bool = False
    #: ``--decode``: where compressed segments are inflated (auto, cpu, gpu)
    decode: str = "auto"
    #: ``--gpu-decoder``: what inflates LZ4 on the GPU (nvcomp, dali)
    gpu_decoder: str = "nvcomp"

    @classmethod
    def derive(cls, options: "DetectOptions | None" = None, **overrides) -> "DetectOptions":
        """``options`` (default: the defaults) with ``overrides`` applied, checked and normalised.

        Every driver builds its options here: the cutoff is parsed (a bad one fails before any
        file is read), a ``memory`` written as a size ("1GiB") becomes bytes, and threshold
        fields are normalised (:func:`autothreshold.normalise`).

        Raises
        ------
        TypeError
            For an override that is not a field.
        UsageError
            For a bad cutoff, memory size or threshold.
        """
        opts = options or cls()
        if overrides:
            opts = cls(**{**opts.__dict__, **overrides})
        parse_cutoff(opts.cutoff)  # fail on a bad cutoff before reading anything
        if isinstance(opts.memory, str):  # "1GiB", as the CLI reads it
            opts = replace(opts, memory=parse_size(opts.memory, param="memory"))
        return autothreshold.normalise(opts)


#: Keys of the detect JSON (:meth:`DetectResult.to_dict`), in its order: the SPEC's, then the
#: thresholds used, then where each input was decoded.
DETECT_JSON_KEYS = ("version", "body_path", "dye_path", "shape", "body_pixels",
                    "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels", "fraction",
                    "cutoff", "cancer", "backend", "seconds", "pixels_per_second", "body_rule",
                    "dye_rule", "warnings", "body_threshold", "dye_threshold",
                    "body_threshold_method", "dye_threshold_method", "decode")
#: The SPEC's keys of the detect JSON (those every detect object and ``truth.json`` hold).
SPEC_JSON_KEYS = DETECT_JSON_KEYS[:DETECT_JSON_KEYS.index("warnings") + 1]


@dataclass(frozen=True)
class DetectResult:
    """A verdict with everything the detect JSON reports."""

    body_path: str
    dye_path: str
    shape: tuple[int, int]
    verdict: Verdict
    backend: str
    seconds: float
    body_rule: str
    dye_rule: str
    warnings: list[str] = field(default_factory=list)
    #: the thresholds used (:class:`dragon_gpu.autothreshold.Chosen`); None: not reported.
    thresholds: "Chosen | None" = None
    #: which decode ran per input: "cpu", "nvcomp" or "dali" (None: not known, as for a run
    #: split across Dask workers)
    decode: dict | None = None

    @property
    def counts(self) -> Counts:
        return self.verdict.counts

    def to_dict(self) -> dict:
        """The detect JSON object of the SPEC, keys in its order."""
        c = self.counts
        pixels = self.shape[0] * self.shape[1]
        return {  # the keys of DETECT_JSON_KEYS, in its order (tests hold them to it)
            "version": __version__,
            "body_path": self.body_path,
            "dye_path": self.dye_path,
            "shape": list(self.shape),
            "body_pixels": c.body,
            "dye_in_body_pixels": c.dye_in_body,
            "dye_outside_body_pixels": c.dye_outside_body,
            "dye_pixels": c.dye,
            "fraction": self.verdict.fraction,
            "cutoff": self.verdict.cutoff_text,
            "cancer": self.verdict.cancer,
            "backend": self.backend,
            "seconds": round(self.seconds, 6),
            "pixels_per_second": round(pixels / self.seconds) if self.seconds > 0 else None,
            "body_rule": self.body_rule,
            "dye_rule": self.dye_rule,
            "warnings": list(self.warnings),
            **(self.thresholds or Chosen()).as_dict(),
            # added by the GPU decode path: where each input's segments were inflated
            "decode": dict(self.decode) if self.decode is not None else None,
        }


def detect(body_path, dye_path, options: DetectOptions | None = None,
           progress: RowProgress | None = None, *, watch: Watch | None = None,
           **kwargs) -> DetectResult:
    """Decide one pair: count body and dye-in-body pixels, streaming, and apply the cutoff.

    Parameters
    ----------
    body_path, dye_path : str or PathLike
        The body and dye images (TIFF or HDF5, any mix), of the same shape.
    options : DetectOptions, optional
        Cutoff, device, memory budget, pixel rules...; keyword arguments override its fields.
    progress : callable, optional
        ``progress(rows_done, rows_total)`` after each block.
    watch : callable, optional
        ``watch(body, body_enc, dye, dye_enc) -> (body, dye)``, called once both inputs are open:
        it returns the readers the engine reads instead, so that something else (the preview)
        sees every block of the same pass.

    Returns
    -------
    DetectResult
        Counts, verdict (``cancer = dye_in_body > cutoff * body``, exactly) and metadata.

    Raises
    ------
    DragonError
        For any problem with the inputs or options (the CLI exits 2 on these).
    """
    opts = DetectOptions.derive(options, **kwargs)
    start = time.perf_counter()
    counts, shape, body_rule, dye_rule, backend, chosen, decode, notes = _count(
        body_path, dye_path, opts, None, progress, watch)
    return finish(body_path, dye_path, counts, shape, opts.cutoff, backend=backend,
                  seconds=time.perf_counter() - start, rules=(body_rule, dye_rule),
                  chosen=chosen, notes=notes, decode=decode)


def finish(body_path, dye_path, counts: Counts, shape: tuple[int, int], cutoff: str, *,
           backend: str, seconds: float, rules: tuple[str, str], chosen: Chosen,
           notes: list[str] | tuple[str, ...] = (), decode: dict | None = None) -> DetectResult:
    """The result of a pair whose pixels are all counted: the verdict and its warnings.

    Every driver ends here (the local :func:`detect` and the Dask driver), so they refuse an
    empty body and report a pair the same way. ``rules`` are the body and dye rule texts;
    ``notes`` the readers' warnings, which come first.

    Raises
    ------
    EmptyBodyError
        If no pixel is body under the body rule: the fraction would be undefined.
    """
    if counts.body == 0:
        raise EmptyBodyError(f"the body mask is empty under the rule '{rules[0]}' "
                             "(check {option:body_polarity} / {option:threshold})",
                             os.fspath(body_path),
                             counts=counts)
    return DetectResult(
        body_path=os.fspath(body_path), dye_path=os.fspath(dye_path), shape=tuple(shape),
        verdict=decide(counts, cutoff), backend=backend, seconds=seconds, body_rule=rules[0],
        dye_rule=rules[1], warnings=[*notes, *chosen.warnings, *coverage_warnings(counts, shape)],
        thresholds=chosen, decode=decode)


def count_range(body_path, dye_path, rows: RowRange, options: DetectOptions | None = None,
                **kwargs) -> Counts:
    """Counts of rows ``[rows.row_start, rows.row_stop)`` of a pair: the task of a distributed run.

    Opens the files itself (tasks carry paths, never open handles), so counts of disjoint ranges
    that cover the image add up exactly to the counts of :func:`detect`. A threshold method
    needs the whole image: resolve it first (:func:`resolve_thresholds`).
    """
    opts = DetectOptions.derive(options, **kwargs)
    if autothreshold.has_method(opts):
        raise UsageError("count_range needs numeric thresholds: a threshold method is computed on "
                         "the whole image (resolve_thresholds)")
    return _count(body_path, dye_path, opts, rows, None)[0]


@dataclass(frozen=True)
class OpenPair:
    """Both readers of a pair, checked against each other, with their encodings and block plan.

    Code calls a value of this class ``opened`` (the "pair" itself is the two files, and a batch
    manifest row is a "job"), as :func:`open_pair` yields it.
    """

    body: MaskReader
    dye: MaskReader
    body_enc: Encoding
    dye_enc: Encoding
    blocks: list[RowRange]


@contextmanager
def open_pair(body_path, dye_path, opts: DetectOptions, rows: RowRange | None = None):
    """Open both inputs and do every check that comes before reading a pixel.

    Shapes must match, the pixel rules must resolve, and each file's strip, tile or chunk rows
    must fit the memory budget; then the blocks are planned. Every driver (local detect, preview,
    the Dask planner) goes through here, so they refuse the same inputs with the same messages.
    """
    with ExitStack() as stack:
        body = stack.enter_context(open_mask(body_path, page=opts.page, dataset=opts.body_dataset,
                                             allow_external=opts.allow_external,
                                             strict=opts.strict))
        dye = stack.enter_context(open_mask(dye_path, page=opts.page, dataset=opts.dye_dataset,
                                            allow_external=opts.allow_external,
                                            strict=opts.strict))
        if body.shape != dye.shape:
            raise ShapeMismatchError(
                f"shapes differ: body is {body.shape[0]} x {body.shape[1]}, dye "
                f"({os.fspath(dye_path)}) is {dye.shape[0]} x {dye.shape[1]}", os.fspath(body_path))
        body_enc, dye_enc = encodings(body, dye, opts)
        for reader in (body, dye):
            check_unit_memory(reader, opts.memory)
        try:
            blocks = plan_blocks(body.height, body.row_nbytes + dye.row_nbytes,
                                 (body.row_granularity, dye.row_granularity), opts.memory,
                                 opts.block_rows, rows)
        except MemoryBudgetError as exc:
            # Name the file whose strips/tiles/chunks are too tall, as every input error does.
            tall = body_path if body.row_granularity >= dye.row_granularity else dye_path
            raise MemoryBudgetError(exc.problem, os.fspath(tall), param=exc.param) from None
        yield OpenPair(body, dye, body_enc, dye_enc, blocks)


def _count(body_path, dye_path, opts: DetectOptions, rows: RowRange | None,
           progress: RowProgress | None, watch: Watch | None = None):
    """Open, validate and count; returns (counts, shape, body rule, dye rule, backend, Chosen,
    decode, the readers' warnings).

    A threshold method first streams the histograms it needs (see :mod:`.autothreshold`); for a
    uint8 pair that one joint-histogram pass also gives the counts.
    """
    engine = select_engine(opts.device, require_gpu=opts.require_gpu)
    if opts.decode == "gpu" and not engine.name.startswith("cuda"):
        raise UsageError(f"{{option:decode}} gpu needs a usable GPU (the engine is {engine.name}); "
                         "use {option:decode} auto or cpu")
    if opts.decode == "gpu" and watch is not None:
        raise UsageError("{option:decode} gpu keeps the decoded rows on the GPU; {option:preview} "
                         "needs them on the host (use {option:decode} auto)")
    with open_pair(body_path, dye_path, opts, rows) as opened:
        passes = autothreshold.passes(opts, opened, watch is not None)
        tick = ticker(progress, sum(b.rows for b in opened.blocks) * passes)
        opened, chosen, counts = autothreshold.resolve(opened, opts, engine, tick,
                                                       watching=watch is not None)
        body, dye, body_enc, dye_enc, blocks = (opened.body, opened.dye, opened.body_enc,
                                                opened.dye_enc, opened.blocks)
        decode = {"body": "cpu", "dye": "cpu"}  # histograms decode on the CPU
        if counts is None:
            body_in, dye_in = watch(body, body_enc, dye, dye_enc) if watch else (body, dye)
            if engine.name.startswith("cuda") and opts.decode != "cpu" and watch is None:
                # Only the CUDA engine imports the GPU decode path (the CPU path imports nothing
                # new). A watched pass (the preview) needs the decoded rows on the host.
                from .engines.gpu.decode import prepare

                engine, decode = prepare(engine, (body, dye), (body_path, dye_path),
                                         opts.decode, opts.gpu_decoder, opts.memory)
            counts = engine.count_pair(body_in, body_enc, dye_in, dye_enc, blocks, tick)
        notes = body.warnings("body", body_enc.rule) + dye.warnings("dye", dye_enc.rule)
        return (counts, body.shape, body_enc.rule.text, dye_enc.rule.text, engine.name, chosen,
                decode, notes)


def encodings(body: MaskReader, dye: MaskReader, opts: DetectOptions) -> tuple[Encoding, Encoding]:
    """The engine's view of both inputs under the options' pixel rules.

    A role whose threshold is a method gets a provisional rule (the default threshold) until
    :func:`dragon_gpu.autothreshold.resolve` has computed it; every other check is final.
    """
    autothreshold.methods_for(opts, body, dye)  # a method for a mask fails before any pixel
    body_enc, dye_enc, _ = autothreshold.encodings_with(body, dye, opts)
    return body_enc, dye_enc


def resolve_thresholds(body_path, dye_path, options: DetectOptions | None = None,
                       **kwargs) -> tuple[DetectOptions, "Chosen"]:
    """The options with every threshold method replaced by the integer it computes.

    Streams the histograms the methods need (one pass per such input, on the CPU engine unless
    ``options.device`` names a GPU) so that row-range tasks (:func:`count_range`) can share one
    numeric rule; returns the options and the thresholds chosen.
    """
    opts = DetectOptions.derive(options, **kwargs)
    if not autothreshold.has_method(opts):
        with open_pair(body_path, dye_path, opts) as opened:
            return opts, autothreshold.encodings_with(opened.body, opened.dye, opts)[2]
    engine = select_engine(opts.device, require_gpu=opts.require_gpu)
    with open_pair(body_path, dye_path, opts) as opened:
        _, chosen, _ = autothreshold.resolve(opened, opts, engine, watching=True)
    wanted, _ = autothreshold.methods_for(opts, opened.body, opened.dye)
    fixed = {f"{role}_threshold": getattr(chosen, role) for role in wanted}
    if isinstance(opts.threshold, str):  # now applied through the per-role fields
        fixed["threshold"] = None
    return replace(opts, **fixed), chosen


def coverage_warnings(counts: Counts, shape: tuple[int, int]) -> list[str]:
    """Hints that a rule is probably wrong: a small body, or dye over most of the image."""
    pixels = shape[0] * shape[1]
    out = []
    if counts.body and Fraction(counts.body, pixels) < BODY_WARN_SHARE:
        out.append(f"the body covers {100 * counts.body / pixels:.2f}% of the image, less than the "
                   "25% expected of a parasite; check the body image, --threshold and "
                   "--body-polarity")
    if Fraction(counts.dye, pixels) > DYE_WARN_SHARE:
        out.append(f"the dye covers {100 * counts.dye / pixels:.2f}% of the image; is the dye "
                   "polarity inverted (--dye-polarity)?")
    return out
