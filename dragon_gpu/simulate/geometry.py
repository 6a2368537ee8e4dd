"""Capsules (segments with a radius) and their exact intersection with pixel rows.

A capsule's intersection with a row is computed in closed form with ``+ - * / sqrt`` only
(correctly rounded), so a row renders identically whatever block it falls in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Capsules", "capsule_spans", "row_pairs"]


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


def row_pairs(first: np.ndarray, last: np.ndarray, rows: np.ndarray):
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
