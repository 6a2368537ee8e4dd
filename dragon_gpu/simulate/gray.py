"""Gray images that look like microscopy, rendered from a scene's masks row block by row block.

The masks of :class:`~.scene.Scene` are turned into gray values (``--texture``):

* **body image**: a bright, slightly uneven background and a darker body with internal texture
  (two octaves of value noise); the body's edge is soft (the mask blurred by a 5 x 5 binomial
  kernel blends the two levels);
* **dye image**: a dim autofluorescent background (brighter inside the body, textured) and bright
  vessels whose intensity falls off from their centre line to their edge, with a faint glow just
  outside them;
* both: a smooth illumination gradient (a tilt and a vignette), then noise: shot noise whose
  variance grows with the signal (Poisson-like: variance proportional to the mean, drawn through
  its normal approximation) plus Gaussian read noise, sampled together as one normal deviate of
  the summed variance; then rounding and clipping to the dtype's range.

Every random number is a counter-based hash of ``(seed, stream, row, column)`` (the texture's of
its grid node), and every per-pixel operation is ``+ - * /``, ``sqrt``, rounding or a table
lookup, all correctly rounded in float32: a row gets the same values whatever block, thread or
block size renders it. Row and column terms (illumination) are computed once for the whole image.
The normal deviates come from a table of the standard normal's quantiles at 65536 evenly spaced
probabilities, indexed by 16 bits of the hash (one 32-bit hash serves two pixels): exact
quantiles, with tails cut at +-4.3 sigma. The gray values are computed a few rows at a time
(:data:`CHUNK_PIXELS`) so that their float32 scratch stays in cache.
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass

import numpy as np

from .._bits import BYTE_BITS
from ._hash import hash64, unit_float
from .scene import Scene

__all__ = ["HALO", "GrayLook", "draw_look"]

STREAM_TEXTURE = 16
STREAM_NOISE = (17, 18)          # body, dye
#: Rows above and below a block that its blur needs.
HALO = 2
#: Value-noise cells of the texture (pixels) and their amplitudes.
OCTAVES = ((48, 0.65), (12, 0.35))
#: Pixels of gray values computed at a time (float32 scratch of about 512 KiB each).
CHUNK_PIXELS = 1 << 17
_U32 = np.uint32


def _lowbias32(x: np.ndarray) -> np.ndarray:
    """Wellons' lowbias32 hash finaliser, in place (wrapping uint32 arithmetic)."""
    x ^= x >> _U32(16)
    x *= _U32(0x7FEB352D)
    x ^= x >> _U32(15)
    x *= _U32(0x846CA68B)
    x ^= x >> _U32(16)
    return x


@dataclass(frozen=True, eq=False)
class GrayLook:
    """The drawn look of a gray pair: levels (in the dtype's units), illumination, noise keys."""

    dtype: np.dtype
    maxval: int
    seed: int
    levels: dict                 # background, body, autofluorescence, vessel levels, texture
    row_light: np.ndarray        # (height,) float32: illumination term of each row
    col_light: np.ndarray        # (width,) float32: illumination term of each column
    col_keys: tuple              # (ceil(width / 2),) uint32 per image: keys of column pairs
    read_var: float              # read-noise variance (levels squared)
    shot_gain: float             # shot-noise variance per level of signal
    info: dict                   # the drawn numbers, rounded, for truth.json

    # -- helpers ---------------------------------------------------------------------------------
    def _texture(self, r0: int, r1: int, width: int) -> np.ndarray:
        """Smooth value noise in [-1, 1] of rows ``[r0, r1)`` (float32, shape (rows, width)).

        Per octave, the hashed grid rows are interpolated along the columns once, then each
        cell's rows are a blend of two such lines (smoothstep weights in both directions).
        """
        out = np.zeros((r1 - r0, width), dtype=np.float32)
        cols = np.arange(width, dtype=np.int64)
        for octave, (cell, amp) in enumerate(OCTAVES):
            k0, k1 = r0 // cell, (r1 - 1) // cell + 1
            node = hash64(self.seed, STREAM_TEXTURE + 8 * octave,
                          np.arange(k0, k1 + 1, dtype=np.int64)[:, None],
                          np.arange(width // cell + 2, dtype=np.uint64)[None, :])
            grid = (unit_float(node) * 2.0 - 1.0).astype(np.float32) * np.float32(amp)
            j = cols // cell
            sx = _smoothstep((cols % cell).astype(np.float32), cell)
            g0 = grid[:, j]
            line = g0 + (grid[:, j + 1] - g0) * sx[None, :]
            step = line[1:] - line[:-1]
            for k in range(k0, k1):
                a, b = max(r0, k * cell), min(r1, (k + 1) * cell)
                sy = _smoothstep(np.arange(a - k * cell, b - k * cell, dtype=np.float32), cell)
                seg = step[k - k0][None, :] * sy[:, None]
                seg += line[k - k0][None, :]
                out[a - r0:b - r0] += seg
        return out

    def _normal(self, image: int, rows: np.ndarray, width: int) -> np.ndarray:
        """Standard normal deviates of ``rows`` (float32), from a hash of (seed, image, row,
        column pair): each 32-bit hash gives two 16-bit indices into :func:`_normal_table`."""
        row_keys = (hash64(self.seed, STREAM_NOISE[image], rows, 0) & np.uint64(0xFFFFFFFF)
                    ).astype(_U32)
        h = _lowbias32(self.col_keys[image][None, :] ^ row_keys[:, None])
        return np.take(_normal_table(), h.view("<u2"))[:, :width]

    def _finish(self, image: int, rows: np.ndarray, value: np.ndarray, light: np.ndarray,
                out: np.ndarray) -> None:
        """Illumination, noise, rounding and clipping of ``value`` (levels, float32; used as
        scratch) into ``out``."""
        value *= light
        np.maximum(value, np.float32(0), out=value)
        sigma = np.float32(self.shot_gain) * value
        sigma += np.float32(self.read_var)
        np.sqrt(sigma, out=sigma)
        sigma *= self._normal(image, rows, value.shape[1])
        value += sigma
        np.clip(value, np.float32(0), np.float32(self.maxval), out=value)
        value += np.float32(0.5)
        out[...] = value                  # truncating x + 0.5 >= 0: rounding half up

    # -- a row block -----------------------------------------------------------------------------
    def render(self, scene: Scene, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Gray body and dye values of rows ``[r0, r1)`` (arrays of shape (r1 - r0, width)).

        The masks are rendered for the whole block (plus :data:`HALO` rows each side); the
        gray values are computed a few rows at a time, so the float32 scratch stays in cache.
        """
        height, width = scene.height, scene.width
        lo, hi = max(0, r0 - HALO), min(height, r1 + HALO)
        packed_body, packed_dye, _ = scene.render(np.arange(lo, hi, dtype=np.int64))
        n, nb = hi - lo, scene.row_nbytes
        masks = []
        for packed in (packed_body, packed_dye):
            m = np.zeros((r1 - r0 + 2 * HALO, nb * 8), dtype=np.uint8)
            top = lo - (r0 - HALO)
            m[top:top + n] = np.take(BYTE_BITS, packed[:n * nb].reshape(n, nb),
                                     axis=0).reshape(n, nb * 8)
            masks.append(m[:, :width])
        body = np.empty((r1 - r0, width), dtype=self.dtype)
        dye = np.empty_like(body)
        tex = self._texture(r0, r1, width)
        step = max(1, CHUNK_PIXELS // width)
        for c0 in range(0, r1 - r0, step):
            c1 = min(r1 - r0, c0 + step)
            self._rows(np.arange(r0 + c0, r0 + c1, dtype=np.int64),
                       [m[c0:c1 + 2 * HALO] for m in masks], tex[c0:c1], body[c0:c1],
                       dye[c0:c1])
        return body, dye

    def _rows(self, rows: np.ndarray, masks, tex: np.ndarray, body_out: np.ndarray,
              dye_out: np.ndarray) -> None:
        """Gray values of ``rows`` from their masks (with HALO rows each side)."""
        width = body_out.shape[1]
        body_alpha = _soft(masks[0])
        dye_soft = _soft(masks[1])
        dye_mask = masks[1][HALO:-HALO].view(np.bool_)
        light = self.row_light[rows][:, None] + self.col_light[None, :]
        lv = {k: np.float32(v) for k, v in self.levels.items()}
        one = np.float32(1)
        # Body image: background blended into the textured body by the soft mask.
        value = lv["body"] * (one + lv["body_texture"] * tex)
        value -= lv["background"]
        value *= body_alpha
        value += lv["background"]
        self._finish(0, rows, value, light, body_out)
        # Dye image: autofluorescence (brighter in tissue), vessels with falloff, a glow beside.
        value = lv["af_out"] + (lv["af_in"] - lv["af_out"]) * body_alpha
        value *= one + lv["af_texture"] * tex
        core = lv["vessel"] * (lv["vessel_edge"] + (one - lv["vessel_edge"]) * dye_soft)
        glow = lv["glow"] * dye_soft
        value += np.where(dye_mask, core, glow)
        self._finish(1, rows, value, light, dye_out)


def _smoothstep(offset: np.ndarray, cell: int) -> np.ndarray:
    """Smoothstep weights of the pixel centres ``offset + 0.5`` in a cell (float32)."""
    f = (offset + np.float32(0.5)) / np.float32(cell)
    return f * f * (np.float32(3) - np.float32(2) * f)


@functools.cache
def _normal_table() -> np.ndarray:
    """The standard normal's quantiles at ``(i + 0.5) / 65536`` (float32, 65536 entries)."""
    dist = statistics.NormalDist()
    return np.array([dist.inv_cdf((i + 0.5) / 65536) for i in range(65536)], dtype=np.float32)


def _soft(mask: np.ndarray) -> np.ndarray:
    """The 0/1 ``mask`` (with HALO extra rows above and below) blurred by the 5 x 5 binomial
    kernel, as float32 in [0, 1]; columns outside the image count as 0."""
    m = mask.astype(np.uint16)
    v = m[:-4] + m[4:] + np.uint16(4) * (m[1:-3] + m[3:-1]) + np.uint16(6) * m[2:-2]
    p = np.zeros((v.shape[0], v.shape[1] + 4), dtype=np.uint16)
    p[:, 2:-2] = v
    h = p[:, :-4] + p[:, 4:] + np.uint16(4) * (p[:, 1:-3] + p[:, 3:-1]) + np.uint16(6) * p[:, 2:-2]
    return h.astype(np.float32) * np.float32(1 / 256)


def draw_look(height: int, width: int, seed: int, bits: int) -> GrayLook:
    """The levels, illumination and noise of a gray pair, drawn from its own stream of the seed
    (the masks' numbers are untouched, so a pair's masks do not depend on ``--texture``)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % (1 << 64), height, width,
                                                        0x67726179]))
    maxval = (1 << bits) - 1
    unit = maxval / 255.0                      # levels below are given on the 8-bit scale
    levels = {
        "background": rng.uniform(200, 225) * unit, "body": rng.uniform(55, 80) * unit,
        "body_texture": rng.uniform(0.25, 0.4),
        "af_out": rng.uniform(10, 18) * unit, "af_in": rng.uniform(26, 40) * unit,
        "af_texture": rng.uniform(0.3, 0.5),
        "vessel": rng.uniform(170, 200) * unit, "vessel_edge": rng.uniform(0.72, 0.8),
        "glow": rng.uniform(35, 50) * unit,
    }
    # Gentle enough that the background stays brighter than the default threshold in the
    # corners (by about three noise sigmas), as on a well set-up microscope.
    tilt_x, tilt_y = rng.uniform(-0.08, 0.08, 2)
    vignette = rng.uniform(0.06, 0.14)
    v = (np.arange(height) + 0.5) / height - 0.5
    u = (np.arange(width) + 0.5) / width - 0.5
    row_light = (1.0 + tilt_y * v - vignette * v * v).astype(np.float32)
    col_light = (tilt_x * u - vignette * u * u).astype(np.float32)
    keys = []
    for image in range(2):
        k = hash64(seed, STREAM_NOISE[image] + 32, np.zeros(1, dtype=np.int64),
                   np.arange((width + 1) // 2, dtype=np.uint64))
        keys.append((k & np.uint64(0xFFFFFFFF)).astype(_U32))
    read = rng.uniform(4.0, 6.0) * unit
    shot = rng.uniform(12.0, 16.0) * unit       # shot-noise sigma at 180 (8-bit scale)
    info = {**{k: round(float(v), 3) for k, v in levels.items()},
            "tilt_x": round(float(tilt_x), 4), "tilt_y": round(float(tilt_y), 4),
            "vignette": round(float(vignette), 4), "read_noise": round(float(read), 3),
            "shot_noise_at_180": round(float(shot), 3)}
    return GrayLook(dtype=np.dtype(np.uint8 if bits == 8 else np.uint16), maxval=maxval,
                    seed=int(seed), levels=levels, row_light=row_light, col_light=col_light,
                    col_keys=tuple(keys), read_var=read * read,
                    shot_gain=shot * shot / (180.0 * unit), info=info)
