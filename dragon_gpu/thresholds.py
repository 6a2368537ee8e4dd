"""Automatic thresholds from an image's exact integer histogram (pure functions).

Each method follows the definition of ``skimage.filters.threshold_<method>`` on integer images,
whose histogram has one bin per integer value from the image's minimum to its maximum (bin
centres are those integers). A method gives a threshold ``T`` under the rule "bright means
``value > T``"; dragon-gpu's rules are ``value >= t``, so the integer reported and used is
``t = floor(T) + 1``.

The computations are exact: histogram counts are Python integers and every comparison that picks
a bin is made on integers (cross-multiplied ratios), never on rounded floats. scikit-image keeps
histogram counts in float32 (``_validate_image_histogram`` returns ``counts.astype('float32')``),
which is exact only while every count and every cumulative sum stays below 2**24 (16.7 million
pixels), and compares float64 criteria that can round two different bins to one value; on large
or peaky images its answer can therefore be one or a few levels away from the exact optimum of
its own definition. ``li`` is iterative with a logarithm in its update: its class means are exact
(fractions of integer sums, then rounded once to float64) and only the update ``(mb - mf) /
(log mb - log mf)`` is float64, which matters only when that value falls within about 1e-13 of an
integer or when a step lands within that distance of the 0.5 tolerance (ties, as in scikit-image,
continue only while the step is strictly larger than 0.5).

``minimum`` (scikit-image's smoothing until two peaks remain) is not offered: its repeated float32
smoothing has no cheap exact counterpart on 65536-bin histograms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

import numpy as np

from .errors import UsageError
from .numbers import is_integer

__all__ = ["METHODS", "MethodThreshold", "compute", "describe_histogram", "parse_threshold",
           "threshold_of", "trim"]


def trim(hist: np.ndarray) -> tuple[list[int], int]:
    """The counts from the first to the last non-empty bin, and the value of the first.

    This is scikit-image's ``histogram(..., source_range='image')`` of an integer image: one bin
    per value from the minimum to the maximum.

    Raises
    ------
    ValueError
        If the histogram is empty (no pixel).
    """
    hist = np.asarray(hist)
    if hist.ndim != 1 or hist.dtype.kind not in "iu":
        raise ValueError("a histogram is a 1-D array of integer counts")
    nonzero = np.flatnonzero(hist)
    if nonzero.size == 0:
        raise ValueError("the histogram is empty")
    lo, hi = int(nonzero[0]), int(nonzero[-1])
    return [int(v) for v in hist[lo:hi + 1]], lo


def _prefix(counts: list[int], values: list[int]):
    """Cumulative counts and value sums: ``c[i] = sum(counts[:i+1])``, ``s[i]`` likewise."""
    c, s, tc, ts = [], [], 0, 0
    for n, v in zip(counts, values):
        tc += n
        ts += n * v
        c.append(tc)
        s.append(ts)
    return c, s


def otsu(counts: list[int], lo: int) -> Fraction:
    """Maximise ``w1 * w2 * (m1 - m2) ** 2`` over splits after bin ``i`` (first maximum).

    With ``C``/``S`` the count and value sum at or below bin ``i`` and ``N``/``S_all`` the totals,
    the criterion is ``(S * (N - C) - (S_all - S) * C) ** 2 / (C * (N - C))``; candidates are
    compared by cross-multiplication.
    """
    if len(counts) == 1:
        return Fraction(lo)
    values = range(lo, lo + len(counts))
    c, s = _prefix(counts, values)
    n, total = c[-1], s[-1]
    best, best_num, best_den = 0, -1, 1
    for i in range(len(counts) - 1):
        c1, c2 = c[i], n - c[i]
        num = (s[i] * c2 - (total - s[i]) * c1) ** 2
        den = c1 * c2
        if num * best_den > best_num * den:
            best, best_num, best_den = i, num, den
    return Fraction(lo + best)


def yen(counts: list[int], lo: int) -> Fraction:
    """Maximise ``log((P1 (1 - P1)) ** 2 / (P1sq * P2sq))``, i.e. the ratio
    ``(C (N - C)) ** 2 / (Q1 * Q2)`` of integers, with ``Q1`` the sum of squared counts at or
    below bin ``i`` and ``Q2`` above it (first maximum)."""
    if len(counts) == 1:
        return Fraction(lo)
    q2 = [0] * (len(counts) + 1)
    for i in range(len(counts) - 1, -1, -1):
        q2[i] = q2[i + 1] + counts[i] ** 2
    n = sum(counts)
    best, best_num, best_den = 0, -1, 1
    c = q1 = 0
    for i in range(len(counts) - 1):
        c += counts[i]
        q1 += counts[i] ** 2
        num = (c * (n - c)) ** 2
        den = q1 * q2[i + 1]
        if num * best_den > best_num * den:
            best, best_num, best_den = i, num, den
    return Fraction(lo + best)


def isodata(counts: list[int], lo: int) -> Fraction:
    """The first bin value ``b`` with ``0 <= (mean_low + mean_high) / 2 - b < 1``, where the
    means are of the values at or below ``b`` and above it (one always exists)."""
    if len(counts) == 1:
        return Fraction(lo)
    values = range(lo, lo + len(counts))
    c, s = _prefix(counts, values)
    n, total = c[-1], s[-1]
    for i in range(len(counts) - 1):
        b, c1, c2 = lo + i, c[i], n - c[i]
        # (s/c1 + (total - s)/c2) / 2 - b in [0, 1), times 2 * c1 * c2 > 0:
        x = s[i] * c2 + (total - s[i]) * c1
        d = 2 * c1 * c2
        if b * d <= x < (b + 1) * d:
            return Fraction(b)
    raise AssertionError("isodata found no threshold")  # pragma: no cover - proven impossible


def mean(counts: list[int], lo: int) -> Fraction:
    """The mean value, exactly."""
    values = range(lo, lo + len(counts))
    return Fraction(sum(n * v for n, v in zip(counts, values)), sum(counts))


def triangle(counts: list[int], lo: int) -> Fraction:
    """The bin farthest from the line joining the histogram's peak to the end of its longer
    tail (scikit-image's geometry: first peak, ties resolved in the flipped order it uses)."""
    nbins = len(counts)
    if nbins == 1:
        return Fraction(lo)
    peak_arg = max(range(nbins), key=lambda i: (counts[i], -i))  # np.argmax: first maximum
    peak = counts[peak_arg]
    low_arg, high_arg = 0, nbins - 1  # trimmed: both ends are non-empty
    hist = counts
    flip = peak_arg - low_arg < high_arg - peak_arg
    if flip:
        hist = counts[::-1]
        low_arg = nbins - high_arg - 1
        peak_arg = nbins - peak_arg - 1
    width = peak_arg - low_arg
    # length = (peak * x - width * y) / norm: the positive norm does not move the maximum.
    best, best_len = 0, None
    for x in range(width):
        length = peak * x - width * hist[x + low_arg]
        if best_len is None or length > best_len:
            best, best_len = x, length
    level = best + low_arg
    if flip:
        level = nbins - level - 1
    return Fraction(lo + level)


def li(counts: list[int], lo: int) -> float:
    """Li's minimum cross-entropy iteration as scikit-image runs it on integer images.

    Values are shifted so the minimum is 0; the iteration starts at the mean, and while the step
    is larger than 0.5 it moves to ``(mb - mf) / (log mb - log mf)`` with ``mb``/``mf`` the mean
    of the values at or below / above the current threshold; it stops early when ``mb`` is 0.
    The result is shifted back.
    """
    if len(counts) == 1:
        return float(lo)
    values = range(len(counts))  # shifted: the minimum is 0
    c, s = _prefix(counts, values)
    n, total = c[-1], s[-1]
    tolerance = 0.5
    t_next = float(Fraction(total, n))
    t_curr = -2 * tolerance
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        k = math.floor(t_curr)  # foreground: value > t_curr <=> value > floor(t_curr)
        k = min(max(k, -1), len(counts) - 1)
        nb = c[k] if k >= 0 else 0
        sb = s[k] if k >= 0 else 0
        mean_fore = Fraction(total - sb, n - nb)
        mean_back = Fraction(sb, nb)
        if mean_back == 0:
            break
        mf, mb = float(mean_fore), float(mean_back)
        t_next = (mb - mf) / (math.log(mb) - math.log(mf))
    return t_next + lo


#: name -> function of (trimmed counts, first value) giving T; the names, in this order, are
#: :data:`dragon_gpu.choices.THRESHOLD_METHODS` (what the CLI offers).
METHODS: dict[str, Callable[[list[int], int], Fraction | float]] = {
    "otsu": otsu, "li": li, "triangle": triangle, "yen": yen, "isodata": isodata, "mean": mean,
}


def threshold_of(T: Fraction | float) -> int:
    """``floor(T) + 1``: the ``value >= t`` form of "bright means ``value > T``"."""
    return math.floor(T) + 1


@dataclass(frozen=True)
class MethodThreshold:
    """What a method chose on a histogram: its own ``T`` and the rule's integer ``t``."""

    method: str
    T: Fraction | float
    threshold: int


def compute(method: str, hist: np.ndarray) -> MethodThreshold:
    """Threshold of ``method`` on the full histogram ``hist`` (``hist[v]`` pixels of value v).

    Raises
    ------
    ValueError
        For an unknown method or an empty histogram.
    """
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}")
    counts, lo = trim(hist)
    T = METHODS[method](counts, lo)
    return MethodThreshold(method, T, threshold_of(T))


def parse_threshold(value, option: str = "threshold") -> int | str | None:
    """An integer threshold, a method name (lower-cased), or None, from a CLI or API value.

    Raises
    ------
    UsageError
        With ``param=option``, for anything else.
    """
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    text = str(value).strip()
    if is_integer(text):
        return int(text)
    name = text.lower()
    if name in METHODS:
        return name
    raise UsageError(f"expected a gray level (an integer) or a method "
                     f"({', '.join(METHODS)}), got {value!r}", param=option)


def describe_histogram(hist: np.ndarray) -> dict:
    """Summary of a full histogram and what each method would choose (for ``info``).

    Returns a dict: ``pixels``, ``min``, ``max``, ``mean`` (float), ``levels`` (distinct values)
    and ``methods`` (name -> ``t``, the ``value >= t`` threshold).
    """
    counts, lo = trim(hist)
    n = sum(counts)
    return {
        "pixels": n,
        "min": lo,
        "max": lo + len(counts) - 1,
        "mean": float(mean(counts, lo)),
        "levels": sum(1 for v in counts if v),
        "methods": {name: threshold_of(fn(counts, lo)) for name, fn in METHODS.items()},
    }
