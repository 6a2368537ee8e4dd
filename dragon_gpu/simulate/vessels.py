"""The dye: a branching vessel-like tree of capsules that mostly stays in the body.

Each branch is a random walk of capsules with a slowly turning direction and a slowly shrinking
radius; it spawns thinner branches at random. Walks start at the body edge (most from outside,
like vessels entering) and a branch that leaves the body turns back, most of the time, towards
its own random *home* point inside the body (one per branch, so the trees spread over the body
instead of converging on its centre).
"""

from __future__ import annotations

import math

import numpy as np

from .geometry import Capsules

__all__ = ["grow_vessels"]

MAX_SEGMENTS = 9000


class _Tree:
    """The body seen by the walks, the growth constants, and the segments grown so far."""

    def __init__(self, rng, lo, hi, height: int, width: int):
        self.rng, self.lo, self.hi = rng, lo, hi
        self.height, self.width = height, width
        self.size = size = math.sqrt(height * width)
        self.r0 = 0.006 * size
        self.step = 0.012 * size
        self.r_min = 0.0005 * size
        rows_body = np.flatnonzero((hi > lo).any(axis=0))
        self.span_lo = np.where(hi > lo, lo, width).min(axis=0)
        self.span_hi = np.where(hi > lo, hi, 0).max(axis=0)
        self.top, self.bottom = int(rows_body[0]), int(rows_body[-1])
        self.segments: list = []

    def inside(self, y, x) -> bool:
        i = int(y)
        if not 0 <= i < self.height:
            return False
        return bool(((self.lo[:, i] <= x) & (x < self.hi[:, i])).any())

    def home(self):
        rng = self.rng
        for _ in range(20):
            row = int(rng.uniform(self.top, self.bottom + 1))
            x = rng.uniform(self.span_lo[row], self.span_hi[row])
            if self.inside(row + 0.5, x):
                return row + 0.5, x
        return row + 0.5, x

    def roots(self) -> list:
        """Start points, directions and radii of the first branches."""
        rng, top, bottom = self.rng, self.top, self.bottom
        queue = []
        for _ in range(int(rng.integers(4, 8))):
            row = int(rng.uniform(top + 0.1 * (bottom - top), top + 0.9 * (bottom - top)))
            if rng.random() < 0.65:  # enters from outside the body
                left = rng.random() < 0.5
                edge = self.span_lo[row] if left else self.span_hi[row]
                x = edge + (-1 if left else 1) * rng.uniform(0.0, 0.04) * self.size
            else:
                x = rng.uniform(self.span_lo[row], self.span_hi[row])
            y = row + 0.5
            hy, hx = self.home()
            theta = math.atan2(hy - y, hx - x) + rng.normal(0, 0.3)
            queue.append((y, float(x), theta, self.r0 * rng.uniform(0.7, 1.3)))
        return queue

    def branch(self, y, x, theta, r, queue: list) -> None:
        """Walk one branch, appending its segments and queueing its children."""
        rng = self.rng
        hy, hx = self.home()
        margin = 0.02 * self.size
        for _ in range(int(rng.integers(20, 60))):
            theta += rng.normal(0, 0.18)
            length = self.step * rng.uniform(0.6, 1.2) * (0.35 + 0.65 * min(1.0, r / self.r0))
            y1, x1 = y + length * math.sin(theta), x + length * math.cos(theta)
            if not self.inside(y1, x1) and rng.random() < 0.85:
                # Turn back towards home: vessels mostly stay inside the body.
                toward = math.atan2(hy - y, hx - x)
                theta += 0.7 * math.remainder(toward - theta, 2 * math.pi)
                y1, x1 = y + length * math.sin(theta), x + length * math.cos(theta)
            if not (-margin < y1 < self.height + margin and -margin < x1 < self.width + margin):
                break
            self.segments.append((y, x, y1, x1, r))
            y, x = y1, x1
            r *= 0.99
            if rng.random() < 0.09:
                child = r * rng.uniform(0.55, 0.85)
                if child >= self.r_min:
                    side = 1 if rng.random() < 0.5 else -1
                    queue.append((y, x, theta + side * rng.uniform(0.4, 1.0), child))
            if len(self.segments) >= MAX_SEGMENTS:
                break


def grow_vessels(rng, lo, hi, height: int, width: int) -> Capsules:
    """A branching tree of capsules over the body of row tables ``lo``, ``hi`` (see above)."""
    tree = _Tree(rng, lo, hi, height, width)
    queue = tree.roots()
    head = 0
    while head < len(queue) and len(tree.segments) < MAX_SEGMENTS:
        tree.branch(*queue[head], queue)
        head += 1
    return Capsules.from_rows(tree.segments)
