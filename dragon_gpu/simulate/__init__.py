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

Where things are
----------------
``_hash`` counter-based hashing; ``raster`` intervals to packed bits; ``geometry`` capsules and
their row spans; ``body`` blobs and holes; ``vessels`` the vessel tree; ``scene`` the immutable
:class:`Scene` that renders any row block; ``aim`` the vessel-gain search; ``boundary`` the
exact-10% patch; ``write`` the row writers and the rendering pass; ``truth`` ``truth.json``;
``generator`` :func:`generate` itself; ``gray`` the gray look of ``--texture`` pairs and
``histogram`` their exact histogram truth; ``zarr`` the Zarr / OME-Zarr output.
"""

from __future__ import annotations

from .._bits import popcount
from .generator import ENCODINGS, FORMATS, KINDS, MIN_SIDE, generate
from .geometry import Capsules, capsule_spans
from .histogram import HISTOGRAM_NAME, TruthHistogram, counts_at
from .raster import merge_intervals, prefix_xor, render_xor
from .scene import DEFAULT_SPECKLE, BoundaryPatch, Scene, build_scene
from .truth import GENERATOR_VERSION

__all__ = ["DEFAULT_SPECKLE", "ENCODINGS", "FORMATS", "GENERATOR_VERSION", "HISTOGRAM_NAME",
           "KINDS", "MIN_SIDE", "BoundaryPatch", "Capsules", "Scene", "TruthHistogram",
           "build_scene", "capsule_spans", "counts_at", "generate", "merge_intervals", "popcount",
           "prefix_xor", "render_xor"]
