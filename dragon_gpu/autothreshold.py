"""Threshold methods in a detection: which inputs need one, the histogram pass, the rules used.

``--threshold otsu`` (or ``--body-threshold`` / ``--dye-threshold``) makes a gray input's threshold
the one the method computes on that image's exact histogram (:mod:`dragon_gpu.thresholds`). The
histograms are streamed with the same bounded-memory row blocks as the count:

* a **uint8 pair** is read once: the pass builds the 256 x 256 joint histogram of (body value,
  dye value), from which the thresholds *and* the counts under them follow exactly;
* otherwise (uint16, a 1-bit or mask partner, or a preview that draws while counting) each input
  that needs a method is histogrammed in a first pass over that file alone, and the pair is then
  counted in a second pass with the chosen thresholds.

A threshold method needs gray levels: naming one for a 1-bit image or a mask with the input's own
option (``--body-threshold otsu``) is an error; the shared ``--threshold otsu`` applies to the gray
inputs of the pair and says so in a warning when the other input has no gray levels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from . import thresholds
from .blocks import check_unit_memory, plan_blocks
from .errors import UsageError
from .io.base import Encoding, Kind, MaskReader, default_threshold, resolve_rule

ROLES = ("body", "dye")
#: the ``*_threshold_method`` of a number given on the command line, or of the default.
FIXED = "fixed"


def normalise(opts):
    """``opts`` with its three threshold fields parsed (ints, method names or None).

    Raises
    ------
    UsageError
        For a value that is neither an integer nor a known method.
    """
    return replace(opts,
                   threshold=thresholds.parse_threshold(opts.threshold, "threshold"),
                   body_threshold=thresholds.parse_threshold(opts.body_threshold,
                                                             "body_threshold"),
                   dye_threshold=thresholds.parse_threshold(opts.dye_threshold, "dye_threshold"))


def spec_of(opts, role: str) -> tuple[int | str | None, str]:
    """The threshold a role asks for (its own option, else ``threshold``) and that option's
    parameter name."""
    own = opts.body_threshold if role == "body" else opts.dye_threshold
    if own is not None:
        return own, f"{role}_threshold"
    return opts.threshold, "threshold"


def has_method(opts) -> bool:
    """Whether any input of the pair may need a histogram pass."""
    return any(isinstance(spec_of(opts, role)[0], str) for role in ROLES)


@dataclass(frozen=True)
class Chosen:
    """The thresholds a detection used, as the detect JSON reports them.

    ``body`` / ``dye`` are the integer ``t`` of the rule on displayed brightness (body: ``< t``,
    dye: ``>= t`` under the default polarities), None for 1-bit and mask inputs; the methods are
    a method name, :data:`FIXED` for a number or the default, or None without gray levels.
    """

    body: int | None = None
    dye: int | None = None
    body_method: str | None = None
    dye_method: str | None = None
    warnings: list[str] = field(default_factory=list)
    #: the rules' texts (they name the method), for drivers that count with the integers
    body_rule: str | None = None
    dye_rule: str | None = None

    def as_dict(self) -> dict:
        return {"body_threshold": self.body, "dye_threshold": self.dye,
                "body_threshold_method": self.body_method,
                "dye_threshold_method": self.dye_method}

    def describe(self) -> str:
        """One line: ``thresholds: body 97 (otsu), dye 128 (fixed)``."""
        parts = []
        for role, t, method in (("body", self.body, self.body_method),
                                ("dye", self.dye, self.dye_method)):
            parts.append(f"{role} {t} ({method})" if t is not None else f"{role} none (mask)")
        return "thresholds: " + ", ".join(parts)


def methods_for(opts, body: MaskReader, dye: MaskReader) -> tuple[dict[str, str], list[str]]:
    """Which roles need a method (``role -> method``), and the warnings about the others.

    Raises
    ------
    UsageError
        If a method is named for an input without gray levels with its own option, or
        ``--threshold METHOD`` is given for a pair with no gray input.
    """
    wanted, warnings, skipped = {}, [], []
    for role, reader in (("body", body), ("dye", dye)):
        spec, option = spec_of(opts, role)
        if not isinstance(spec, str):
            continue
        if reader.kind is Kind.gray:
            wanted[role] = spec
            continue
        what = "a 1-bit image" if reader.kind is Kind.bilevel else "a mask"
        if option != "threshold":
            raise UsageError(f"{spec}: the {role} image is {what}, which has no gray levels to "
                             "threshold", reader.path, param=option)
        skipped.append((role, reader, what))
    if skipped and not wanted:
        role, reader, what = skipped[0]
        raise UsageError(f"{opts.threshold}: neither image has gray levels (the {role} image "
                         f"is {what})", reader.path, param="threshold")
    for role, reader, what in skipped:
        warnings.append(f"--threshold {opts.threshold} applies to the gray image only: the {role} "
                        f"image is {what} and keeps its rule")
    return wanted, warnings


def brightness_histogram(hist: np.ndarray, reader: MaskReader) -> np.ndarray:
    """The histogram of displayed brightness: reversed for a MINISWHITE image."""
    return hist[::-1] if reader.inverted else hist


def joint_possible(body_enc: Encoding, dye_enc: Encoding) -> bool:
    """Whether one joint-histogram pass gives both thresholds and counts (two uint8 planes)."""
    return (not body_enc.packed and not dye_enc.packed
            and np.dtype(body_enc.dtype) == np.uint8 and np.dtype(dye_enc.dtype) == np.uint8)


def passes(opts, opened, watching: bool = False) -> int:
    """How many passes over the files a detection of the ``opened`` pair makes (1 or 2)."""
    wanted, _ = methods_for(opts, opened.body, opened.dye)
    if not wanted or (joint_possible(opened.body_enc, opened.dye_enc) and not watching):
        return 1
    return 2


def resolve(opened, opts, engine, progress=None, *, watching: bool = False):
    """Run the histogram pass a method needs and return the pair under the chosen rules.

    Parameters
    ----------
    opened : OpenPair
        Both readers and the block plan (:func:`dragon_gpu.pipeline.open_pair`), covering the
        whole image.
    opts : DetectOptions
        With thresholds parsed by :func:`normalise`.
    engine : Engine
        Builds the histograms (CPU or CUDA: bit for bit the same).
    progress : Tick, optional
        ``progress(rows)`` as histogram rows are done.
    watching : bool
        Something (a preview) must see the counting pass: never take the counts from the joint
        histogram.

    Returns
    -------
    (OpenPair, Chosen, Counts or None)
        The pair with its encodings under the chosen rules, the thresholds used, and the
        counts when the joint histogram already gave them (the count pass is then skipped).
    """
    wanted, warnings = methods_for(opts, opened.body, opened.dye)
    counts = None
    picked: dict[str, thresholds.MethodThreshold] = {}
    if wanted:
        readers = {"body": opened.body, "dye": opened.dye}
        if joint_possible(opened.body_enc, opened.dye_enc) and not watching:
            from .engines.cpu_hist import body_histogram, dye_histogram

            joint = engine.histogram((opened.body, opened.dye), opened.blocks, progress)
            hists = {"body": body_histogram(joint), "dye": dye_histogram(joint)}
        else:
            joint = None
            hists = {role: engine.histogram((readers[role],), opened.blocks, progress)
                     for role in wanted}
        for role, method in wanted.items():
            reader = readers[role]
            hist = brightness_histogram(hists[role], reader)
            if not hist.any():
                raise UsageError(f"the {role} image has no pixels to threshold", reader.path)
            picked[role] = thresholds.compute(method, hist)
    body_enc, dye_enc, chosen = encodings_with(opened.body, opened.dye, opts, picked, warnings)
    if wanted and joint is not None:
        from .engines.cpu_hist import counts_from_joint

        counts = counts_from_joint(joint, body_enc.rule, dye_enc.rule)
    return replace(opened, body_enc=body_enc, dye_enc=dye_enc), chosen, counts


def encodings_with(body: MaskReader, dye: MaskReader, opts, picked=None, warnings=()):
    """Both encodings under the options' rules, method thresholds taken from ``picked``.

    A role whose method has not been computed (``picked`` lacks it) gets the default threshold:
    the provisional rule :func:`dragon_gpu.pipeline.open_pair` checks before any pixel is read.
    Returns ``(body_enc, dye_enc, Chosen)``.
    """
    picked = picked or {}
    out, used = [], {}
    for reader, role, polarity in ((body, "body", opts.body_polarity),
                                   (dye, "dye", opts.dye_polarity)):
        spec, option = spec_of(opts, role)
        method = None
        if isinstance(spec, str):
            if role in picked:
                method, value = spec, picked[role].threshold
            else:
                value = None
        else:
            value = spec
        rule = resolve_rule(reader, role, polarity, value, option=option, method=method)
        out.append(Encoding(reader.packed, reader.width, reader.dtype, rule))
        if reader.kind is Kind.gray:
            t = default_threshold(reader.bits) if value is None else int(value)
            used[role] = (t, method or FIXED)
        else:
            used[role] = (None, None)
    from .ignored import ignored_options

    chosen = Chosen(body=used["body"][0], dye=used["dye"][0], body_method=used["body"][1],
                    dye_method=used["dye"][1],
                    warnings=list(warnings) + ignored_options(opts, body, dye),
                    body_rule=out[0].rule.text, dye_rule=out[1].rule.text)
    return out[0], out[1], chosen


def histogram_of(path, engine=None, *, page: int = 0, dataset: str | None = None,
                 allow_external: bool = False, memory: int = 1 << 30) -> tuple[np.ndarray, bool]:
    """The exact histogram of one gray file's displayed brightness, streamed (for ``info``).

    Returns ``(hist, inverted)``.

    Raises
    ------
    UsageError
        If the file is a 1-bit image or a mask.
    """
    from .engines.cpu import CpuEngine
    from .io import open_mask

    engine = engine or CpuEngine()
    with open_mask(path, page=page, dataset=dataset, allow_external=allow_external) as reader:
        if reader.kind is not Kind.gray:
            raise UsageError("--histogram: the image has no gray levels (a 1-bit image or a "
                             "mask)", os.fspath(path))
        check_unit_memory(reader, memory)
        blocks = plan_blocks(reader.height, reader.row_nbytes, (reader.row_granularity,), memory)
        hist = engine.histogram((reader,), blocks)
        return brightness_histogram(hist, reader), reader.inverted


__all__ = ["Chosen", "FIXED", "encodings_with", "has_method", "histogram_of", "methods_for",
           "normalise", "passes", "resolve", "spec_of"]
