"""The scene of a pair: body row tables, holes and vessels, everything needed to render any row
block (``O(rows)`` numbers, no pixels).

A :class:`Scene` is immutable: drawing the vessels at another gain (:meth:`Scene.with_gain`) or
applying the boundary patch (:meth:`Scene.with_patch`) gives a new scene.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Mapping

import numpy as np

from .._bits import packed_row_nbytes, popcount
from ..model import Counts
from ._hash import STREAM_CANDIDATE, STREAM_SPECKLE, hash64, unit_float
from .body import build_body
from .geometry import Capsules, capsule_spans, row_pairs
from .raster import merge_intervals, render_xor
from .vessels import grow_vessels

__all__ = ["DEFAULT_SPECKLE", "BoundaryPatch", "Scene", "build_scene", "scene_rng"]

#: Capsules thinner than this (pixels) are not drawn; drawn ones are at least R_FLOOR wide.
R_CUT = 0.5
R_FLOOR = 0.75
DEFAULT_SPECKLE = 2e-4


@dataclass(frozen=True, eq=False)
class BoundaryPatch:
    """Pixels changed to make a boundary pair exactly 10% (none by default).

    ``body_extra`` maps a row to the column of one body pixel added there; ``dye_quota`` (one
    integer a row) says how many dye pixels to light in each row among ``candidates`` hashed
    candidate columns (see :meth:`Scene.render`); ``info`` goes to ``truth.json``'s parameters.
    """

    body_extra: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    dye_quota: np.ndarray | None = None
    candidates: int = 0
    info: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything needed to render any row block of a pair (``O(rows)`` numbers, no pixels)."""

    height: int
    width: int
    seed: int
    shape_lo: np.ndarray      # (blobs, rows) first column of each blob's row (main blob first)
    shape_hi: np.ndarray      # (blobs, rows) end column (== lo for an empty row)
    holes: Capsules
    vessels: Capsules         # base radii; drawn at gain * r
    speckle: float
    info: Mapping[str, int]   # drawn numbers reported in truth.json
    gain: float = 1.0
    patch: BoundaryPatch = field(default_factory=BoundaryPatch)
    # Derived in __post_init__ from the fields above.
    span_lo: np.ndarray = field(init=False, repr=False, compare=False)
    span_hi: np.ndarray = field(init=False, repr=False, compare=False)
    _hole_range: tuple = field(init=False, repr=False, compare=False)
    _drawn: Capsules = field(init=False, repr=False, compare=False)
    _drawn_range: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        derived = {"gain": float(self.gain), "_hole_range": self.holes.row_range()}
        # The vessels drawn at ``gain`` times their base radius (thin ones vanish).
        r = self.vessels.r * derived["gain"]
        keep = r >= R_CUT
        drawn = self.vessels.take(keep)
        derived["_drawn"] = Capsules(drawn.y0, drawn.x0, drawn.y1, drawn.x1,
                                     np.maximum(r[keep], R_FLOOR))
        derived["_drawn_range"] = derived["_drawn"].row_range()
        valid = self.shape_hi > self.shape_lo
        big = np.iinfo(np.int64).max
        derived["span_lo"] = np.where(valid, self.shape_lo, big).min(axis=0)
        derived["span_hi"] = np.where(valid, self.shape_hi, -1).max(axis=0)
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    def with_gain(self, gain: float) -> "Scene":
        """The same scene with the vessels drawn at ``gain`` times their base radius."""
        return replace(self, gain=float(gain))

    def with_patch(self, patch: BoundaryPatch) -> "Scene":
        """The same scene with ``patch`` applied when rendering."""
        return replace(self, patch=patch)

    @property
    def row_nbytes(self) -> int:
        return packed_row_nbytes(self.width)

    # -- intervals of a set of rows (sorted, unique) --------------------------------------------
    def body_intervals(self, rows: np.ndarray):
        n = rows.size
        k = self.shape_lo.shape[0]
        pos = np.tile(np.arange(n, dtype=np.int64), k)
        a = self.shape_lo[:, rows].ravel()
        b = self.shape_hi[:, rows].ravel()
        pos, a, b = merge_intervals(pos, a, b, self.width)
        which, hp = row_pairs(*self._hole_range, rows)
        ha, hb = capsule_spans(self.holes, which, rows[hp], self.width)
        # Holes lie strictly inside the main blob and apart from each other and from the lobes,
        # so XOR with the union cuts them out.
        return (np.concatenate([pos, hp]), np.concatenate([a, ha]), np.concatenate([b, hb]))

    def dye_intervals(self, rows: np.ndarray):
        which, vp = row_pairs(*self._drawn_range, rows)
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
        u = unit_float(hash64(self.seed, STREAM_SPECKLE, rows, 0))
        count = np.floor(lam + u).astype(np.int64)
        index = np.arange(1, nmax + 1, dtype=np.uint64)
        h = hash64(self.seed, STREAM_SPECKLE, rows[:, None], index[None, :])
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
        if self.patch.body_extra:
            for i, row in enumerate(rows.tolist()):
                col = self.patch.body_extra.get(row)
                if col is not None:
                    body[i * self.row_nbytes + (col >> 3)] |= np.uint8(0x80 >> (col & 7))
        eligible = None
        quota = self.patch.dye_quota
        if want_candidates or (quota is not None and quota[rows].any()):
            eligible = self._light_candidates(rows, body, dye, apply=not want_candidates)
        return body, dye, eligible

    def _light_candidates(self, rows, body, dye, apply: bool):
        """Count (or light, per ``dye_quota``) dye pixels at candidate places inside the body.

        Candidates of row ``r`` are ``candidates`` hashed columns within the row's body span;
        the unique ones that are body and not yet dye are *eligible*. Lighting ``q`` of ``e``
        eligible columns takes those of rank ``(2j + 1) * e // (2 q)``, spread along the row.
        """
        nb = self.row_nbytes
        m = self.patch.candidates
        n = rows.size
        span = np.maximum(self.span_hi[rows] - self.span_lo[rows], 0)
        h = hash64(self.seed, STREAM_CANDIDATE, rows[:, None], np.arange(m, dtype=np.uint64)[None])
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
            quota = self.patch.dye_quota[rows]
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


def scene_rng(height: int, width: int, seed: int) -> np.random.Generator:
    """The generator every drawn number of a pair comes from, in a fixed order."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), height, width]))


def build_scene(height: int, width: int, seed: int, speckle: float = DEFAULT_SPECKLE,
                rng: np.random.Generator | None = None) -> Scene:
    """The body, holes and vessel tree of a pair (vessel gain 1, no boundary patch).

    ``rng`` (default: :func:`scene_rng`) is advanced by the drawing, so the caller can go on
    drawing the pair's other numbers from it.
    """
    rng = scene_rng(height, width, seed) if rng is None else rng
    lo, hi, holes, info = build_body(rng, height, width)
    vessels = grow_vessels(rng, lo, hi, height, width)
    info["vessel_segments"] = len(vessels)
    return Scene(height=height, width=width, seed=int(seed), shape_lo=lo, shape_hi=hi,
                 holes=holes, vessels=vessels, speckle=float(speckle),
                 info=MappingProxyType(info))
