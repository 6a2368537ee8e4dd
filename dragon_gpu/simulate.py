"""Realistic simulated body/dye pairs of any size, streamed by row blocks, with exact truth.

The scene
---------
* **Body**: one irregular blob. A main blob whose rows are single intervals ``[lo(r), hi(r))``
  with smooth random edges (a random superellipse-like profile times sums of random low-frequency
  sinusoids, with bays pushed into its sides), plus one to three overlapping lobes built the same
  way, minus a few holes (capsules) strictly inside the main blob. It covers 30-50% of the image
  (25% at the very least) and is one 8-connected component by construction: each blob is cut
  where consecutive rows stop touching, each lobe overlaps the main blob, and each hole is
  checked, row by row at the pixel level, to leave every remaining piece touching the row above.
* **Dye**: a branching vessel-like tree: random walks that start at the body edge (most from
  outside, like vessels entering) and bend back inside when they leave it, branching into
  thinner vessels; every step is a *capsule* (a segment with a radius). Vessels mostly stay in
  the body and partly leak out. Optional speckle: short runs of lit pixels at a given density.
* **Kinds**: ``healthy`` aims at 3-7% of the body lit, ``cancer`` at 14-22%; a radius gain of the
  vessel tree is searched (monotone bisection) on a sample of rows. ``boundary`` is exactly 10%
  (``10 * dye_in_body == body``): a counting pass measures the pair, then a few body pixels are
  added at the body's edge (so that the body is a multiple of 10) and a few dye pixels are lit
  inside the body at deterministic, spread-out places. ``typical`` is cancer with probability
  ``cancer_rate``, drawn from the seed.

Streaming and speed
-------------------
Every shape is described by intervals of columns per row: a blob row is looked up in a
precomputed table of ``O(rows)`` integers, and a capsule's intersection with a row is computed
in closed form with ``+ - * / sqrt`` only (correctly rounded, so a row renders identically
whatever block it falls in). Speckle comes from a counter-based hash of ``(seed, row, index)``.
Rendering a row block merges its intervals and turns them into packed bits with byte-level XOR
toggles and a running XOR: the cost is a few operations per *byte*, not per pixel. Blocks are
rendered, counted (popcount) and compressed on all cores; only the writing is serial.

Same seed, size and parameters give byte-identical files on the same installation.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .errors import OutputError, UsageError
from .model import Counts

__all__ = ["GENERATOR_VERSION", "KINDS", "generate", "Scene", "build_scene"]

#: Bumped whenever the same seed and parameters would produce different pixels.
GENERATOR_VERSION = "1"
KINDS = ("typical", "cancer", "healthy", "boundary")
FORMATS = ("tiff", "hdf5")
ENCODINGS = ("packed", "u8")
MIN_SIDE = 64
#: Rows sampled to estimate the dye fraction while the vessel gain is searched.
SAMPLE_ROWS = 4096
#: Capsules thinner than this (pixels) are not drawn; drawn ones are at least R_FLOOR wide.
R_CUT = 0.5
R_FLOOR = 0.75
DEFAULT_SPECKLE = 2e-4
#: Dye-in-body targets (share of the body) per kind: (low, high) of the drawn target.
TARGETS = {"healthy": (0.03, 0.07), "cancer": (0.14, 0.22)}
#: Hard limits a drawn pair must respect, or it is not produced.
HEALTHY_MAX = Fraction(8, 100)
CANCER_MIN = Fraction(12, 100)
BOUNDARY_AIM = 0.097

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_STREAM_SPECKLE = 1
_STREAM_CANDIDATE = 2


# -- counter-based hashing ----------------------------------------------------------------------
def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: a bijective 64-bit mix (wrapping uint64 arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """A uint64 hash of ``(seed, stream, row, index)``; broadcasts ``rows`` against ``index``."""
    # One-element arrays, not scalars: NumPy wraps array arithmetic silently but warns on
    # scalar overflow, and the wrap-around is the point here.
    key = _mix(np.array([seed % (1 << 64)], dtype=np.uint64)
               + np.array([stream], dtype=np.uint64) * _GOLD)
    r = _mix(key ^ np.asarray(rows, dtype=np.uint64))
    return _mix(r + np.asarray(index, dtype=np.uint64) * _GOLD)


# -- intervals to packed bits -------------------------------------------------------------------
def merge_intervals(pos: np.ndarray, a: np.ndarray, b: np.ndarray, width: int):
    """Union of half-open intervals ``[a, b)`` on rows ``pos``: disjoint, sorted intervals.

    Intervals that touch or overlap are merged; empty ones are dropped.
    """
    keep = a < b
    pos, a, b = pos[keep], a[keep], b[keep]
    if pos.size == 0:
        return pos, a, b
    order = np.lexsort((a, pos))
    pos, a, b = pos[order], a[order], b[order]
    # A running maximum of (row, end) keys is a per-row running maximum of the ends, because
    # every key of a later row is larger than every key of an earlier one.
    span = np.int64(width + 2)
    run_end = np.maximum.accumulate(pos * span + b) - pos * span
    start = np.empty(pos.size, dtype=bool)
    start[0] = True
    start[1:] = (pos[1:] != pos[:-1]) | (a[1:] > run_end[:-1])
    first = np.flatnonzero(start)
    return pos[first], a[first], np.maximum.reduceat(b, first)


_REPEAT_BYTE = np.uint64(0x0101010101010101)


def prefix_xor(buf: np.ndarray) -> None:
    """In place, ``buf[i] = buf[0] ^ ... ^ buf[i]`` for a uint8 buffer of a multiple of 8 bytes.

    Same result as ``np.bitwise_xor.accumulate``, which holds the GIL for its whole run. Here
    the bytes of each 64-bit word are scanned with three shift-XOR steps and words are chained
    by an accumulate over 8 times fewer items, so most of the work is binary ufuncs that release
    the GIL and row blocks render in parallel on threads.
    """
    words = buf.view("<u8")
    tmp = np.empty_like(words)
    for shift in (8, 16, 32):
        np.left_shift(words, np.uint64(shift), out=tmp)
        np.bitwise_xor(words, tmp, out=words)
    carry = np.bitwise_xor.accumulate(words >> np.uint64(56))
    tmp[0] = 0
    np.multiply(carry[:-1], _REPEAT_BYTE, out=tmp[1:])
    np.bitwise_xor(words, tmp, out=words)


def render_xor(nrows: int, width: int, pos: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Packed rows whose bits are the XOR of the intervals ``[a, b)`` on rows ``pos``.

    For disjoint intervals the XOR is their union; an interval inside another cuts a hole.

    Returns
    -------
    ndarray, uint8, shape (ceil(nrows * ceil(width / 8) + 1, 8 bytes),)
        A flat buffer whose first ``nrows * ceil(width / 8)`` bytes are the packed rows (most
        significant bit first, padding bits zero); the rest is zero, so the whole buffer can
        be viewed as uint64 for a popcount.
    """
    nb = (width + 7) // 8
    size = nrows * nb + 1
    out = np.zeros(-(-size // 8) * 8, dtype=np.uint8)
    keep = a < b
    pos, a, b = pos[keep], a[keep], b[keep]
    if pos.size == 0:
        return out
    base = pos * nb
    fa = (a + 7) >> 3          # first whole byte
    fb = b >> 3                # end of the whole bytes
    multi = fa <= fb           # not inside a single byte
    whole = multi & (fa < fb)
    # Full bytes: toggle 0xFF at the first whole byte and after the last, then a running XOR
    # over the flat buffer fills the run (a toggle at the end of a row lands on the next row's
    # first byte, which is the same thing).
    toggles = np.concatenate([base[whole] + fa[whole], base[whole] + fb[whole]])
    np.bitwise_xor.at(out, toggles, np.uint8(0xFF))
    prefix_xor(out)
    left = multi & ((a & 7) != 0)
    right = multi & ((b & 7) != 0)
    single = ~multi
    idx = np.concatenate([base[left] + (a[left] >> 3), base[right] + (b[right] >> 3),
                          base[single] + (a[single] >> 3)])
    masks = np.concatenate([
        0xFF >> (a[left] & 7),
        (0xFF00 >> (b[right] & 7)) & 0xFF,
        (0xFF >> (a[single] & 7)) & ((0xFF00 >> (b[single] & 7)) & 0xFF),
    ]).astype(np.uint8)
    np.bitwise_xor.at(out, idx, masks)
    return out


def popcount(buf: np.ndarray) -> int:
    """Set bits of a uint8 buffer whose length is a multiple of 8."""
    return int(np.bitwise_count(buf.view(np.uint64)).sum(dtype=np.int64))


# -- capsules --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Capsules:
    """Segments with a radius, in pixel coordinates (row ``y``, column ``x``; pixel ``(i, j)``
    has its centre at ``(i + 0.5, j + 0.5)``)."""

    y0: np.ndarray
    x0: np.ndarray
    y1: np.ndarray
    x1: np.ndarray
    r: np.ndarray

    @classmethod
    def empty(cls) -> "Capsules":
        z = np.zeros(0)
        return cls(z, z, z, z, z)

    @classmethod
    def from_rows(cls, rows) -> "Capsules":
        if not rows:
            return cls.empty()
        arr = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
        return cls(*(np.ascontiguousarray(arr[:, i]) for i in range(5)))

    def __len__(self) -> int:
        return int(self.r.size)

    def take(self, sel) -> "Capsules":
        return Capsules(self.y0[sel], self.x0[sel], self.y1[sel], self.x1[sel], self.r[sel])

    def row_range(self) -> tuple[np.ndarray, np.ndarray]:
        """First and last pixel row whose centre can meet each capsule (inclusive)."""
        ymin = np.minimum(self.y0, self.y1) - self.r
        ymax = np.maximum(self.y0, self.y1) + self.r
        return np.ceil(ymin - 0.5).astype(np.int64), np.floor(ymax - 0.5).astype(np.int64)


def _solve_linear(k, c_lo, c_hi):
    """The interval of ``s`` with ``c_lo <= s * k <= c_hi`` (``(inf, -inf)`` when empty)."""
    safe = np.where(k == 0, 1.0, k)
    lo = np.where(k > 0, c_lo / safe, c_hi / safe)
    hi = np.where(k > 0, c_hi / safe, c_lo / safe)
    flat_ok = (c_lo <= 0) & (0 <= c_hi)
    lo = np.where(k == 0, np.where(flat_ok, -np.inf, np.inf), lo)
    hi = np.where(k == 0, np.where(flat_ok, np.inf, -np.inf), hi)
    return lo, hi


def capsule_spans(caps: Capsules, which: np.ndarray, rows: np.ndarray, width: int):
    """Columns ``[a, b)`` whose pixel centres lie in capsule ``which[i]`` on pixel row ``rows[i]``.

    The capsule is convex, so its intersection with the row's centre line is one interval: the
    union of the intersections with the two end discs and with the band swept by the segment,
    each solved in closed form.
    """
    y0, x0, y1, x1, r = (v[which] for v in (caps.y0, caps.x0, caps.y1, caps.x1, caps.r))
    yc = rows.astype(np.float64) + 0.5
    lo = np.full(yc.shape, np.inf)
    hi = np.full(yc.shape, -np.inf)
    for py, px in ((y0, x0), (y1, x1)):
        h2 = r * r - (yc - py) * (yc - py)
        ok = h2 >= 0
        h = np.sqrt(np.where(ok, h2, 0.0))
        lo = np.where(ok, np.minimum(lo, px - h), lo)
        hi = np.where(ok, np.maximum(hi, px + h), hi)
    dy, dx = y1 - y0, x1 - x0
    len2 = dy * dy + dx * dx
    length = np.sqrt(len2)
    u = yc - y0
    # With s = x - x0: the projection t = (u dy + s dx) / len2 lies in [0, 1], and the signed
    # distance (s dy - u dx) / length lies in [-r, r].
    t_lo, t_hi = _solve_linear(dx, -u * dy, len2 - u * dy)
    d_lo, d_hi = _solve_linear(dy, u * dx - r * length, u * dx + r * length)
    s_lo, s_hi = np.maximum(t_lo, d_lo), np.minimum(t_hi, d_hi)
    ok = (len2 > 0) & (s_lo <= s_hi)
    lo = np.where(ok, np.minimum(lo, x0 + s_lo), lo)
    hi = np.where(ok, np.maximum(hi, x0 + s_hi), hi)
    empty = ~(lo <= hi)
    a = np.ceil(np.where(empty, 0.0, lo) - 0.5)
    b = np.floor(np.where(empty, -1.0, hi) - 0.5) + 1
    a = np.clip(a, 0, width).astype(np.int64)
    b = np.clip(b, 0, width).astype(np.int64)
    b = np.where(empty, a, b)
    return a, b


def _pairs(first: np.ndarray, last: np.ndarray, rows: np.ndarray):
    """(capsule index, position in ``rows``) for every sorted row each capsule can meet."""
    lo = np.searchsorted(rows, first, "left")
    hi = np.searchsorted(rows, last, "right")
    n = np.maximum(hi - lo, 0)
    sel = np.flatnonzero(n)
    counts = n[sel]
    total = int(counts.sum())
    which = np.repeat(sel, counts)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return which, lo[which] + offset


# -- the scene -------------------------------------------------------------------------------------
@dataclass
class Scene:
    """Everything needed to render any row block of a pair (``O(rows)`` numbers, no pixels)."""

    height: int
    width: int
    seed: int
    shape_lo: np.ndarray      # (blobs, rows) first column of each blob's row (main blob first)
    shape_hi: np.ndarray      # (blobs, rows) end column (== lo for an empty row)
    holes: Capsules
    vessels: Capsules         # base radii; drawn at gain * r
    gain: float
    speckle: float
    body_extra: dict          # row -> column of one body pixel added (boundary kind)
    dye_quota: np.ndarray | None = None   # (rows,) dye pixels to light in each row (boundary)
    candidates: int = 0       # candidate columns a row for those dye pixels
    info: dict | None = None

    def __post_init__(self):
        self._hole_range = self.holes.row_range()
        self.set_gain(self.gain)
        valid = self.shape_hi > self.shape_lo
        big = np.iinfo(np.int64).max
        self.span_lo = np.where(valid, self.shape_lo, big).min(axis=0)
        self.span_hi = np.where(valid, self.shape_hi, -1).max(axis=0)

    def set_gain(self, gain: float) -> None:
        """Draw the vessels at ``gain`` times their base radius (thin ones vanish)."""
        self.gain = float(gain)
        r = self.vessels.r * self.gain
        keep = r >= R_CUT
        drawn = self.vessels.take(keep)
        self._drawn = Capsules(drawn.y0, drawn.x0, drawn.y1, drawn.x1,
                               np.maximum(r[keep], R_FLOOR))
        self._drawn_range = self._drawn.row_range()

    @property
    def row_nbytes(self) -> int:
        return (self.width + 7) // 8

    # -- intervals of a set of rows (sorted, unique) --------------------------------------------
    def body_intervals(self, rows: np.ndarray):
        n = rows.size
        k = self.shape_lo.shape[0]
        pos = np.tile(np.arange(n, dtype=np.int64), k)
        a = self.shape_lo[:, rows].ravel()
        b = self.shape_hi[:, rows].ravel()
        pos, a, b = merge_intervals(pos, a, b, self.width)
        which, hp = _pairs(*self._hole_range, rows)
        ha, hb = capsule_spans(self.holes, which, rows[hp], self.width)
        # Holes lie strictly inside the main blob and apart from each other and from the lobes,
        # so XOR with the union cuts them out.
        return (np.concatenate([pos, hp]), np.concatenate([a, ha]), np.concatenate([b, hb]))

    def dye_intervals(self, rows: np.ndarray):
        which, vp = _pairs(*self._drawn_range, rows)
        va, vb = capsule_spans(self._drawn, which, rows[vp], self.width)
        sp, sa, sb = self._speckle(rows)
        return merge_intervals(np.concatenate([vp, sp]), np.concatenate([va, sa]),
                               np.concatenate([vb, sb]), self.width)

    def _speckle(self, rows: np.ndarray):
        empty = np.zeros(0, dtype=np.int64)
        if self.speckle <= 0 or rows.size == 0:
            return empty, empty, empty
        lam = self.speckle * self.width
        nmax = int(math.floor(lam)) + 1
        u = (_hash(self.seed, _STREAM_SPECKLE, rows, 0) >> np.uint64(11)).astype(np.float64)
        count = np.floor(lam + u * 2.0 ** -53).astype(np.int64)
        index = np.arange(1, nmax + 1, dtype=np.uint64)
        h = _hash(self.seed, _STREAM_SPECKLE, rows[:, None], index[None, :])
        col = (h % np.uint64(self.width)).astype(np.int64)
        run = 1 + ((h >> np.uint64(40)) & np.uint64(1)).astype(np.int64)
        mask = np.arange(nmax)[None, :] < count[:, None]
        pos = np.broadcast_to(np.arange(rows.size, dtype=np.int64)[:, None], mask.shape)[mask]
        a = col[mask]
        return pos, a, np.minimum(a + run[mask], self.width)

    # -- rendering --------------------------------------------------------------------------------
    def render(self, rows: np.ndarray, want_candidates: bool = False):
        """Packed body and dye rows for ``rows`` (sorted, unique), as flat padded buffers.

        Returns ``(body, dye, eligible)``: ``body`` and ``dye`` as described in
        :func:`render_xor`; ``eligible`` (with ``want_candidates``) the number of candidate
        places per row where a dye pixel could be lit inside the body (boundary kind).
        """
        rows = np.asarray(rows, dtype=np.int64)
        n = rows.size
        body = render_xor(n, self.width, *self.body_intervals(rows))
        dye = render_xor(n, self.width, *self.dye_intervals(rows))
        if self.body_extra:
            for i, row in enumerate(rows.tolist()):
                col = self.body_extra.get(row)
                if col is not None:
                    body[i * self.row_nbytes + (col >> 3)] |= np.uint8(0x80 >> (col & 7))
        eligible = None
        if want_candidates or (self.dye_quota is not None and self.dye_quota[rows].any()):
            eligible = self._light_candidates(rows, body, dye, apply=not want_candidates)
        return body, dye, eligible

    def _light_candidates(self, rows, body, dye, apply: bool):
        """Count (or light, per ``dye_quota``) dye pixels at candidate places inside the body.

        Candidates of row ``r`` are ``candidates`` hashed columns within the row's body span;
        the unique ones that are body and not yet dye are *eligible*. Lighting ``q`` of ``e``
        eligible columns takes those of rank ``(2j + 1) * e // (2 q)``, spread along the row.
        """
        nb = self.row_nbytes
        m = self.candidates
        n = rows.size
        span = np.maximum(self.span_hi[rows] - self.span_lo[rows], 0)
        h = _hash(self.seed, _STREAM_CANDIDATE, rows[:, None], np.arange(m, dtype=np.uint64)[None])
        col = self.span_lo[rows][:, None] + (h % np.maximum(span, 1).astype(np.uint64)[:, None]
                                             ).astype(np.int64)
        col = np.sort(col, axis=1)
        unique = np.ones(col.shape, dtype=bool)
        unique[:, 1:] = col[:, 1:] != col[:, :-1]
        unique &= span[:, None] > 0
        byte = np.arange(n, dtype=np.int64)[:, None] * nb + (np.clip(col, 0, self.width - 1) >> 3)
        bit = (0x80 >> (col & 7)).astype(np.uint8)
        eligible = unique & ((body[byte] & bit) != 0) & ((dye[byte] & bit) == 0)
        counts = eligible.sum(axis=1)
        if apply:
            quota = self.dye_quota[rows]
            for i in np.flatnonzero(quota):
                q, e = int(quota[i]), int(counts[i])
                if q > e:  # the counting pass saw the same candidates: a bug if it happens
                    raise RuntimeError(f"row {int(rows[i])}: {q} dye pixels to light, {e} places")
                places = np.flatnonzero(eligible[i])
                ranks = (2 * np.arange(q, dtype=np.int64) + 1) * e // (2 * q)
                chosen = places[ranks]
                np.bitwise_or.at(dye, byte[i, chosen], bit[i, chosen])
        return counts

    def block_counts(self, body: np.ndarray, dye: np.ndarray) -> Counts:
        return Counts(body=popcount(body), dye_in_body=popcount(body & dye), dye=popcount(dye))


def _smooth_wave(rng, n: int, amp: float, fmin: float, fmax: float):
    """Parameters of a sum of ``n`` sinusoids of t in [-1, 1] with decreasing amplitudes."""
    amps = amp * rng.uniform(0.5, 1.0, n) / np.arange(1, n + 1) ** 0.7
    freqs = rng.uniform(fmin, fmax, n)
    phases = rng.uniform(0, 2 * np.pi, n)
    return amps, freqs, phases


def _wave(t, params):
    amps, freqs, phases = params
    out = np.zeros_like(t)
    for a, f, p in zip(amps, freqs, phases):
        out += a * np.sin(np.pi * f * (t + 1) + p)
    return out


def _bump(s):
    return np.where(np.abs(s) < 1, (1 - s * s) ** 2, 0.0)


@dataclass
class _BlobParams:
    v_mid: float
    v_half: float
    c0: float
    hw: float
    alpha: float
    drift: tuple
    wig_l: tuple
    wig_r: tuple
    bays_l: list
    bays_r: list

    @classmethod
    def draw(cls, rng, v_mid, v_half, c0, hw, wiggle, nbays):
        def bays():
            out = []
            for _ in range(int(rng.integers(0, nbays + 1))):
                out.append((rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.25), rng.uniform(0.25, 0.5)))
            return out

        return cls(v_mid, v_half, c0, hw, rng.uniform(1.6, 2.6),
                   _smooth_wave(rng, 3, 0.25 * hw, 0.5, 2.0),
                   _smooth_wave(rng, 4, wiggle, 1.0, 5.0), _smooth_wave(rng, 4, wiggle, 1.0, 5.0),
                   bays(), bays())

    def rows(self, height: int, width: int, scale: float = 1.0):
        """Pixel intervals ``(lo, hi)`` of every row, cut to one 8-connected piece."""
        v = (np.arange(height) + 0.5) / height
        t = (v - self.v_mid) / self.v_half
        inside = np.abs(t) < 1
        tt = np.clip(np.abs(t), 0, 1)
        profile = (1 - tt ** self.alpha) ** (1 / self.alpha)
        hw = self.hw * scale
        centre = self.c0 + _wave(t, self.drift) * scale
        left = hw * profile * np.maximum(1 + _wave(t, self.wig_l), 0.45)
        right = hw * profile * np.maximum(1 + _wave(t, self.wig_r), 0.45)
        for tc, w, depth in self.bays_l:
            left = left * (1 - depth * _bump((t - tc) / w))
        for tc, w, depth in self.bays_r:
            right = right * (1 - depth * _bump((t - tc) / w))
        lo = np.ceil((centre - left) * width - 0.5)
        hi = np.floor((centre + right) * width - 0.5) + 1
        lo = np.clip(lo, 0, width).astype(np.int64)
        hi = np.clip(hi, 0, width).astype(np.int64)
        empty = ~inside | (hi <= lo)
        lo[empty] = 0
        hi[empty] = 0
        return _keep_connected(lo, hi)


def _keep_connected(lo: np.ndarray, hi: np.ndarray):
    """Keep the rows 8-connected to the widest row: cut where consecutive rows stop touching."""
    nonempty = hi > lo
    if not nonempty.any():
        return lo, hi
    mid = int(np.argmax(hi - lo))
    touch = nonempty[:-1] & nonempty[1:] & (lo[1:] <= hi[:-1]) & (lo[:-1] <= hi[1:])
    up = np.flatnonzero(~touch[:mid])
    top = int(up[-1]) + 1 if up.size else 0
    down = np.flatnonzero(~touch[mid:])
    bottom = mid + int(down[0]) if down.size else lo.size - 1
    lo, hi = lo.copy(), hi.copy()
    lo[:top] = hi[:top] = 0
    lo[bottom + 1:] = hi[bottom + 1:] = 0
    return lo, hi


def _union_area(lo: np.ndarray, hi: np.ndarray, width: int) -> int:
    k, h = lo.shape
    pos = np.tile(np.arange(h, dtype=np.int64), k)
    _, a, b = merge_intervals(pos, lo.ravel(), hi.ravel(), width)
    return int((b - a).sum())


def _build_body(rng, height: int, width: int):
    """Main blob + lobes as row tables scaled to a drawn coverage, then holes."""
    coverage = rng.uniform(0.32, 0.5)
    v_half = rng.uniform(0.36, 0.45)
    main = _BlobParams.draw(rng, rng.uniform(0.47, 0.53), v_half, rng.uniform(0.45, 0.55),
                            0.25, rng.uniform(0.12, 0.22), 2)
    nlobes = int(rng.integers(1, 4))
    lobe_draws = []
    for _ in range(nlobes):
        lobe_draws.append(dict(anchor=rng.uniform(-0.6, 0.6), side=rng.choice([-1, 1]),
                               v_half=rng.uniform(0.08, 0.16), hw=rng.uniform(0.06, 0.12),
                               out=rng.uniform(0.1, 0.7), params_rng=int(rng.integers(1 << 62))))

    def assemble(scale):
        lo0, hi0 = main.rows(height, width, scale)
        los, his = [lo0], [hi0]
        for d in lobe_draws:
            row = int(np.clip((main.v_mid + d["anchor"] * main.v_half) * height, 0, height - 1))
            if hi0[row] <= lo0[row]:
                continue
            edge = (hi0[row] if d["side"] > 0 else lo0[row]) / width
            hw = d["hw"] * scale
            c0 = edge + d["side"] * d["out"] * hw
            lrng = np.random.default_rng(d["params_rng"])
            lobe = _BlobParams.draw(lrng, (row + 0.5) / height, d["v_half"],
                                    float(np.clip(c0, 0.03 + hw, 0.97 - hw)), hw,
                                    lrng.uniform(0.08, 0.15), 0)
            llo, lhi = lobe.rows(height, width)
            overlap = np.minimum(lhi, hi0) - np.maximum(llo, lo0)
            if (overlap > 1).sum() < 2:  # a lobe must share rows with the main blob
                continue
            los.append(llo)
            his.append(lhi)
        return np.stack(los), np.stack(his)

    scale = 1.0
    for _ in range(8):
        lo, hi = assemble(scale)
        got = _union_area(lo, hi, width) / (height * width)
        if abs(got - coverage) < 0.005:
            break
        scale *= (coverage / max(got, 1e-6)) ** 0.9
        scale = min(scale, 1.8)
    holes = _place_holes(rng, lo, hi, height, width)
    return lo, hi, holes, {"coverage_target": round(coverage, 4), "lobes": int(lo.shape[0] - 1),
                           "holes": len(holes)}


def _place_holes(rng, lo, hi, height, width) -> Capsules:
    """A few capsule holes strictly inside the main blob that keep the body in one piece."""
    size = math.sqrt(height * width)
    main_lo, main_hi = lo[0], hi[0]
    rows_main = np.flatnonzero(main_hi > main_lo)
    accepted: list[tuple[float, float, float, float, float]] = []
    taken: list[tuple[int, int]] = []
    if rows_main.size < 16:
        return Capsules.empty()
    top, bottom = int(rows_main[0]), int(rows_main[-1])
    for _ in range(int(rng.integers(0, 4))):
        for _attempt in range(30):
            row = rng.uniform(top + 0.2 * (bottom - top), top + 0.8 * (bottom - top))
            i = int(row)
            if main_hi[i] - main_lo[i] < 8:
                continue
            col = rng.uniform(main_lo[i] + 0.25 * (main_hi[i] - main_lo[i]),
                              main_lo[i] + 0.75 * (main_hi[i] - main_lo[i]))
            r = rng.uniform(0.008, 0.03) * size
            length = rng.uniform(0, 3) * r
            ang = rng.uniform(0, np.pi)
            cap = (row - 0.5 * length * np.sin(ang), col - 0.5 * length * np.cos(ang),
                   row + 0.5 * length * np.sin(ang), col + 0.5 * length * np.cos(ang), r)
            if _hole_fits(cap, lo, hi, width, taken):
                accepted.append(cap)
                first, last = Capsules.from_rows([cap]).row_range()
                taken.append((int(first[0]) - 1, int(last[0]) + 1))
                break
    return Capsules.from_rows(accepted)


def _hole_fits(cap, lo, hi, width, taken) -> bool:
    """Pixel-exact check that cutting ``cap`` out of the main blob keeps everything connected."""
    caps = Capsules.from_rows([cap])
    first, last = (int(v[0]) for v in caps.row_range())
    height = lo.shape[1]
    if first - 1 < 0 or last + 1 >= height:
        return False
    if any(not (last + 1 < t0 or first - 1 > t1) for t0, t1 in taken):
        return False
    rows = np.arange(first - 1, last + 2)
    a, b = capsule_spans(caps, np.zeros(rows.size, dtype=np.int64), rows, width)
    if not (b > a).any():
        return False
    prev = None
    for i, row in enumerate(rows.tolist()):
        mlo, mhi = int(lo[0, row]), int(hi[0, row])
        if mhi <= mlo:
            return False
        if b[i] > a[i]:
            if a[i] < mlo + 1 or b[i] > mhi - 1:
                return False
            for k in range(1, lo.shape[0]):  # stay away from the lobes
                if hi[k, row] > lo[k, row] and lo[k, row] <= b[i] and a[i] <= hi[k, row]:
                    return False
            pieces = [(mlo, int(a[i])), (int(b[i]), mhi)]
        else:
            pieces = [(mlo, mhi)]
        if (i == 0 or i == rows.size - 1) and len(pieces) != 1:
            return False
        if prev is not None:
            # Every piece must touch a piece of the row above (8-connectivity).
            for p0, p1 in pieces:
                if not any(q0 <= p1 and p0 <= q1 for q0, q1 in prev):
                    return False
        prev = pieces
    return True


def _grow_vessels(rng, lo, hi, height, width) -> Capsules:
    """A branching tree of capsules that mostly stays in the body (see the module docstring).

    Each branch is a random walk of capsules with a slowly turning direction and a slowly
    shrinking radius; it spawns thinner branches at random. A branch that leaves the body turns
    back, most of the time, towards its own random *home* point inside the body (one per
    branch, so the trees spread over the body instead of converging on its centre).
    """
    size = math.sqrt(height * width)
    r0 = 0.006 * size
    step = 0.012 * size
    r_min = 0.0005 * size
    max_segments = 9000
    rows_body = np.flatnonzero((hi > lo).any(axis=0))
    span_lo = np.where(hi > lo, lo, width).min(axis=0)
    span_hi = np.where(hi > lo, hi, 0).max(axis=0)

    def inside(y, x):
        i = int(y)
        if not 0 <= i < height:
            return False
        return bool(((lo[:, i] <= x) & (x < hi[:, i])).any())

    top, bottom = int(rows_body[0]), int(rows_body[-1])

    def home():
        for _ in range(20):
            row = int(rng.uniform(top, bottom + 1))
            x = rng.uniform(span_lo[row], span_hi[row])
            if inside(row + 0.5, x):
                return row + 0.5, x
        return row + 0.5, x

    queue: list = []
    for _ in range(int(rng.integers(4, 8))):
        row = int(rng.uniform(top + 0.1 * (bottom - top), top + 0.9 * (bottom - top)))
        if rng.random() < 0.65:  # enters from outside the body
            left = rng.random() < 0.5
            edge = span_lo[row] if left else span_hi[row]
            x = edge + (-1 if left else 1) * rng.uniform(0.0, 0.04) * size
        else:
            x = rng.uniform(span_lo[row], span_hi[row])
        y = row + 0.5
        hy, hx = home()
        theta = math.atan2(hy - y, hx - x) + rng.normal(0, 0.3)
        queue.append((y, float(x), theta, r0 * rng.uniform(0.7, 1.3)))
    segments = []
    head = 0
    while head < len(queue) and len(segments) < max_segments:
        y, x, theta, r = queue[head]
        head += 1
        hy, hx = home()
        for _ in range(int(rng.integers(20, 60))):
            theta += rng.normal(0, 0.18)
            length = step * rng.uniform(0.6, 1.2) * (0.35 + 0.65 * min(1.0, r / r0))
            y1, x1 = y + length * math.sin(theta), x + length * math.cos(theta)
            if not inside(y1, x1) and rng.random() < 0.85:
                # Turn back towards home: vessels mostly stay inside the body.
                toward = math.atan2(hy - y, hx - x)
                theta += 0.7 * math.remainder(toward - theta, 2 * math.pi)
                y1, x1 = y + length * math.sin(theta), x + length * math.cos(theta)
            margin = 0.02 * size
            if not (-margin < y1 < height + margin and -margin < x1 < width + margin):
                break
            segments.append((y, x, y1, x1, r))
            y, x = y1, x1
            r *= 0.99
            if rng.random() < 0.09:
                child = r * rng.uniform(0.55, 0.85)
                if child >= r_min:
                    side = 1 if rng.random() < 0.5 else -1
                    queue.append((y, x, theta + side * rng.uniform(0.4, 1.0), child))
            if len(segments) >= max_segments:
                break
    return Capsules.from_rows(segments)


def build_scene(height: int, width: int, seed: int, speckle: float = DEFAULT_SPECKLE) -> Scene:
    """The body, holes and vessel tree of a pair (vessel gain 1, no boundary adjustments)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), height, width]))
    lo, hi, holes, info = _build_body(rng, height, width)
    vessels = _grow_vessels(rng, lo, hi, height, width)
    info["vessel_segments"] = len(vessels)
    scene = Scene(height=height, width=width, seed=int(seed), shape_lo=lo, shape_hi=hi,
                  holes=holes, vessels=vessels, gain=1.0, speckle=float(speckle), body_extra={},
                  info=info)
    scene.rng = rng
    return scene


# -- aiming the dye fraction ----------------------------------------------------------------------
def sample_rows(height: int, n: int = SAMPLE_ROWS) -> np.ndarray:
    """Evenly spread rows (all rows when the image has at most ``n``)."""
    n = min(n, height)
    return np.unique((np.arange(n, dtype=np.int64) * height) // n)


class _Sampler:
    """Dye-in-body share of the body on sampled rows, as a function of the vessel gain."""

    def __init__(self, scene: Scene):
        self.scene = scene
        self.rows = sample_rows(scene.height)
        self.body = render_xor(self.rows.size, scene.width, *scene.body_intervals(self.rows))
        self.body_count = popcount(self.body)

    def share(self, gain: float) -> float:
        self.scene.set_gain(gain)
        dye = render_xor(self.rows.size, self.scene.width, *self.scene.dye_intervals(self.rows))
        return popcount(self.body & dye) / max(self.body_count, 1)


def _aim(sampler: _Sampler, target: float, tol: float, ok: Callable[[float], bool]) -> float:
    """A gain whose sampled share is within ``tol`` of ``target`` (the share grows with the gain).

    Falls back to the closest gain that satisfies ``ok``; raises if none does (tiny images).
    """
    best = None

    def consider(g, s):
        nonlocal best
        if ok(s) and (best is None or abs(s - target) < abs(best[1] - target)):
            best = (g, s)

    lo, hi = None, None
    g = 1.0
    for _ in range(24):  # bracket the target
        s = sampler.share(g)
        consider(g, s)
        if abs(s - target) <= tol:
            return g
        if s < target:
            lo = (g, s)
            if hi is not None:
                break
            g *= 2.0
        else:
            hi = (g, s)
            if lo is not None:
                break
            g /= 2.0
        if g > 1e4 or g < 1e-4:
            break
    if lo is not None and hi is not None:
        a, b = lo[0], hi[0]
        for _ in range(40):
            g = math.sqrt(a * b)
            s = sampler.share(g)
            consider(g, s)
            if abs(s - target) <= tol:
                return g
            if s < target:
                a = g
            else:
                b = g
            if b / a < 1 + 1e-9:
                break
    if best is None:
        raise UsageError(f"cannot draw this pair at {sampler.scene.height} x "
                         f"{sampler.scene.width}: the image is too small to reach a dye share "
                         f"near {target:.3f}; use a larger size")
    return best[0]


# -- writing ---------------------------------------------------------------------------------------
_U8 = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1)


def _to_u8(packed: np.ndarray, width: int, set_value: int) -> np.ndarray:
    """Plane of ``set_value`` where a bit is set and ``255 - set_value`` elsewhere."""
    bits = _U8[packed].reshape(packed.shape[0], -1)[:, :width]
    if set_value == 255:
        return bits * np.uint8(255)
    return (1 - bits) * np.uint8(255)


def _writer(path, fmt, encoding, shape, role, compression, rows_per_strip):
    from .io.writers import Hdf5RowWriter, TiffRowWriter

    packed = encoding == "packed"
    if fmt == "tiff":
        # Body: MINISWHITE, a set bit is black (the dark body); dye: MINISBLACK, set is lit.
        photometric = "miniswhite" if (packed and role == "body") else "minisblack"
        return TiffRowWriter(path, shape, bits=1 if packed else 8, photometric=photometric,
                             compression=compression or "deflate", rows_per_strip=rows_per_strip)
    return Hdf5RowWriter(path, shape, packed=packed, dtype=np.uint8, dataset="mask",
                         compression=compression or "gzip", chunk_rows=rows_per_strip,
                         attrs={"dragon_gpu_role": role})


def _count_pass(scene: Scene, segment_rows: int, workers: int, progress, offset: int, total: int):
    """Exact counts and per-row eligible places of the whole pair, without writing anything."""
    from .io.writers import ordered_map

    height = scene.height
    eligible = np.zeros(height, dtype=np.int64)

    def task(r0):
        rows = np.arange(r0, min(height, r0 + segment_rows), dtype=np.int64)
        body, dye, elig = scene.render(rows, want_candidates=True)
        return r0, rows.size, scene.block_counts(body, dye), elig

    counts = Counts()
    done = 0
    for r0, n, c, elig in ordered_map(task, range(0, height, segment_rows), workers):
        counts = counts + c
        eligible[r0:r0 + n] = elig
        done += n
        if progress is not None:
            progress(offset + done, total)
    return counts, eligible


def _prepare_boundary(scene: Scene, sampler: _Sampler, segment_rows: int, workers: int,
                      progress, total: int) -> None:
    """Make ``10 * dye_in_body == body`` exact (see the module docstring)."""
    aim = BOUNDARY_AIM
    for _attempt in range(6):
        gain = _aim(sampler, aim, 0.001, lambda s: 0.05 < s < 0.1)
        scene.set_gain(gain)
        scene.body_extra = {}
        scene.dye_quota = None
        scene.candidates = int(math.ceil(0.01 * scene.width)) + 8
        counts, eligible = _count_pass(scene, segment_rows, workers, progress, 0, total)
        # Body: add pixels just left of the body's first pixel in rows near the middle (each
        # touches the body, so it stays one piece) until the body is a multiple of 10.
        need = (-counts.body) % 10
        extra = {}
        dye_added = 0
        middle = int(np.argmax(scene.span_hi - scene.span_lo))
        order = [middle + d for k in range(scene.height) for d in ((k,) if k == 0 else (k, -k))]
        for row in order:
            if len(extra) == need:
                break
            if not 0 <= row < scene.height or scene.span_lo[row] < 1 or \
                    scene.span_hi[row] <= scene.span_lo[row]:
                continue
            col = int(scene.span_lo[row]) - 1
            _, dye, _ = scene.render(np.array([row]))
            extra[row] = col
            dye_added += int((dye[col >> 3] >> (7 - (col & 7))) & 1)
        body = counts.body + len(extra)
        dye_in_body = counts.dye_in_body + dye_added
        if len(extra) != need:
            raise UsageError("cannot make the body a multiple of 10 pixels: the image is too small")
        delta = body // 10 - dye_in_body
        eligible[list(extra)] = 0
        total_places = int(eligible.sum())
        if delta < 0:
            aim -= (dye_in_body / body - 0.1) + 0.002
            continue
        if delta > total_places:
            aim += 0.5 * (0.1 - dye_in_body / body)
            continue
        quota = np.zeros(scene.height, dtype=np.int64)
        if delta:
            # Largest remainders: proportional to the eligible places, ties by row.
            share = delta * eligible
            quota = share // total_places
            rest = delta - int(quota.sum())
            remainder = share % total_places
            order = np.lexsort((np.arange(scene.height), -remainder))[:rest]
            quota[order] += 1
        scene.body_extra = extra
        scene.dye_quota = quota
        scene.info.update(boundary_body_added=len(extra), boundary_dye_lit=int(delta))
        return
    raise UsageError("could not reach exactly 10% for the boundary kind; try another seed")


def _validate(height, width, seed, kind, fmt, encoding, compression, cancer_rate, speckle):
    from .io.writers import HDF5_COMPRESSIONS, TIFF_COMPRESSIONS

    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value < MIN_SIDE:
            raise UsageError(f"--{name}: must be an integer of at least {MIN_SIDE}, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UsageError(f"--seed: must be a non-negative integer, got {seed!r}")
    if kind not in KINDS:
        raise UsageError(f"--kind: choose one of {', '.join(KINDS)}, got {kind!r}")
    if fmt not in FORMATS:
        raise UsageError(f"--format: choose tiff or hdf5, got {fmt!r}")
    if encoding not in ENCODINGS:
        raise UsageError(f"--encoding: choose packed or u8, got {encoding!r}")
    allowed = TIFF_COMPRESSIONS if fmt == "tiff" else HDF5_COMPRESSIONS
    if compression is not None and compression not in allowed:
        raise UsageError(f"--compression: {compression!r} is not available for {fmt}; choose one "
                         f"of {', '.join(allowed)}")
    if not 0 <= cancer_rate <= 1:
        raise UsageError(f"--cancer-rate: must be between 0 and 1, got {cancer_rate}")
    if not 0 <= speckle <= 0.01:
        raise UsageError(f"--speckle: must be between 0 and 0.01, got {speckle}")


def generate(outdir, *, height: int, width: int, seed: int = 0, kind: str = "typical",
             fmt: str = "tiff", encoding: str = "packed", compression: str | None = None,
             cancer_rate: float = 0.001, speckle: float = DEFAULT_SPECKLE,
             rows_per_strip: int | None = None, workers: int | None = None,
             progress: Callable[[int, int], None] | None = None, force: bool = False) -> dict:
    """Generate a realistic body/dye pair and its exact ground truth in ``outdir``.

    The three files are checked before anything is written (each must be absent, or a regular
    file when ``force``), written to temporaries and renamed together at the end: the pair is
    published whole or not at all, and ``truth.json`` appears last.

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
    encoding : {"packed", "u8"}
        ``packed``: 1 bit a pixel (TIFF: body MINISWHITE, dye MINISBLACK, a set bit is the
        member; HDF5: packed-bit masks, see :class:`~dragon_gpu.io.writers.Hdf5RowWriter`).
        ``u8``: 8-bit images, body 0 on 255 (dark body), dye 255 on 0 (bright dye).
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

    Returns
    -------
    dict
        The content of ``truth.json``: the detect JSON keys (exact counts, verdict, rules)
        plus ``seed``, ``kind``, ``drawn_kind``, ``parameters`` and ``generator_version``.
    """
    from .io import open_mask, resolve_rule
    from .io._output import AtomicOutput, check_target, publish
    from .io.writers import default_workers, ordered_map
    from .verdict import DEFAULT_CUTOFF, decide

    if speckle is None:
        speckle = DEFAULT_SPECKLE
    _validate(height, width, seed, kind, fmt, encoding, compression, cancer_rate, speckle)
    height, width, seed = int(height), int(width), int(seed)
    workers = default_workers() if workers is None else max(1, int(workers))
    start = time.perf_counter()
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder ({exc.strerror})", str(outdir)) from None

    suffix = ".tif" if fmt == "tiff" else ".h5"
    body_path, dye_path = outdir / f"body{suffix}", outdir / f"dye{suffix}"
    truth_path = outdir / "truth.json"
    # Every target is checked before anything is drawn or written: a directory, FIFO or device
    # under one of the names, or an existing pair without force, stops the run with nothing done.
    targets = (body_path, dye_path, truth_path)
    for path in targets:
        check_target(path)
    existing = [p.name for p in targets if os.path.lexists(p)]
    if existing and not force:
        raise OutputError(f"already holds {', '.join(existing)}; add --force to replace the "
                          "pair", str(outdir))

    scene = build_scene(height, width, seed, speckle)
    rng = scene.rng
    drawn = kind
    if kind == "typical":
        drawn = "cancer" if rng.random() < cancer_rate else "healthy"
    sampler = _Sampler(scene)

    with ExitStack() as stack:
        # Published together by publish() below; any exception before removes the temporaries.
        where = str(outdir)
        body_out = stack.enter_context(AtomicOutput(body_path, where=where))
        dye_out = stack.enter_context(AtomicOutput(dye_path, where=where))
        truth_out = stack.enter_context(AtomicOutput(truth_path, where=where))
        body_w = _writer(body_out.tmp, fmt, encoding, (height, width), "body", compression,
                         rows_per_strip)
        stack.callback(body_w.abort)
        dye_w = _writer(dye_out.tmp, fmt, encoding, (height, width), "dye", compression,
                        rows_per_strip)
        stack.callback(dye_w.abort)
        seg = body_w.segment_rows
        passes = 2 if drawn == "boundary" else 1
        total = passes * height
        if drawn == "boundary":
            target = None
            _prepare_boundary(scene, sampler, seg, workers, progress, total)
        else:
            lo_t, hi_t = TARGETS[drawn]
            target = float(rng.uniform(lo_t, hi_t))
            ok = ((lambda s: s > float(CANCER_MIN) + 0.01) if drawn == "cancer"
                  else (lambda s: s < float(HEALTHY_MAX) - 0.01))
            scene.set_gain(_aim(sampler, target, 0.004, ok))

        def task(r0):
            rows = np.arange(r0, min(height, r0 + seg), dtype=np.int64)
            body, dye, _ = scene.render(rows)
            counts = scene.block_counts(body, dye)
            n, nb = rows.size, scene.row_nbytes
            b2, d2 = body[:n * nb].reshape(n, nb), dye[:n * nb].reshape(n, nb)
            if encoding == "u8":
                b2, d2 = _to_u8(b2, width, 0), _to_u8(d2, width, 255)
            return r0, n, counts, body_w.encode(r0, b2), dye_w.encode(r0, d2)

        counts = Counts()
        done = (passes - 1) * height
        for r0, n, c, benc, denc in ordered_map(task, range(0, height, seg), workers):
            body_w.append(r0, n, benc)
            dye_w.append(r0, n, denc)
            counts = counts + c
            done += n
            if progress is not None:
                progress(done, total)
        body_w.close()
        dye_w.close()

        verdict = decide(counts, DEFAULT_CUTOFF)
        if counts.body * 4 < height * width:
            raise RuntimeError(f"generated body covers less than 25% ({counts.body} pixels)")
        if drawn == "boundary" and counts.dye_in_body * 10 != counts.body:
            raise RuntimeError(f"boundary pair is not exactly 10%: {counts}")
        if (drawn == "cancer") != verdict.cancer:
            raise RuntimeError(f"drawn a {drawn} pair but the counts say otherwise: {counts}")
        with open_mask(body_out.tmp) as r:
            body_rule = resolve_rule(r, "body").text
        with open_mask(dye_out.tmp) as r:
            dye_rule = resolve_rule(r, "dye").text
        seconds = time.perf_counter() - start
        pixels = height * width
        truth = {
            "version": __version__,
            "body_path": os.fspath(body_path),
            "dye_path": os.fspath(dye_path),
            "shape": [height, width],
            "body_pixels": counts.body,
            "dye_in_body_pixels": counts.dye_in_body,
            "dye_outside_body_pixels": counts.dye_outside_body,
            "dye_pixels": counts.dye,
            "fraction": verdict.fraction,
            "cutoff": verdict.cutoff_text,
            "cancer": verdict.cancer,
            "backend": "generator",
            "seconds": round(seconds, 6),
            "pixels_per_second": round(pixels / seconds) if seconds > 0 else None,
            "body_rule": body_rule,
            "dye_rule": dye_rule,
            "warnings": [],
            "seed": seed,
            "kind": kind,
            "drawn_kind": drawn,
            "generator_version": GENERATOR_VERSION,
            "parameters": {
                "height": height, "width": width, "format": fmt, "encoding": encoding,
                "compression": body_w.compression, "rows_per_strip": seg,
                "cancer_rate": cancer_rate, "speckle": speckle,
                "dye_target": None if target is None else round(target, 4),
                "vessel_gain": scene.gain, **scene.info,
            },
        }
        with open(truth_out.tmp, "w") as fh:
            json.dump(truth, fh, indent=2)
            fh.write("\n")
        publish([body_out, dye_out, truth_out])
    return truth
