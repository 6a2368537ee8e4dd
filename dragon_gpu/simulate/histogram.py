"""The exact histogram truth of a gray pair (``truth_hist.npz``), and counts at any thresholds.

A gray pair's truth depends on the thresholds: the body is ``body value < tb``, the dye
``dye value >= td`` (detect's default rules, with ``tb`` / ``td`` the integer thresholds). The
generator counts, in the same pass that writes the pixels:

* **uint8**: the 256 x 256 joint histogram ``joint[b, d]`` of (body value, dye value), from which
  the counts at *every* pair of thresholds follow exactly;
* **uint16**: the two exact 65536-bin marginal histograms (``body``, ``dye``) and the joint
  histogram of the values' high bytes (``joint[b >> 8, d >> 8]``, 256 x 256). The body and dye
  counts follow exactly at every threshold; the dye-in-body count exactly when both thresholds are
  multiples of 256 (the default, 32768, is one), and not otherwise.

``truth_hist.npz`` holds ``bits`` (8 or 16), ``joint_shift`` (0 or 8: the joint's bins are
``value >> joint_shift``), ``joint`` (int64, body along the first axis) and, for uint16, ``body``
and ``dye`` (int64). :func:`counts_at` derives :class:`~dragon_gpu.model.Counts` from it.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..model import Counts

__all__ = ["HISTOGRAM_NAME", "TruthHistogram", "block_histogram", "counts_at"]

HISTOGRAM_NAME = "truth_hist.npz"


def block_histogram(body: np.ndarray, dye: np.ndarray, bits: int) -> "TruthHistogram":
    """The histogram truth of one row block of gray values."""
    b, d = body.reshape(-1), dye.reshape(-1)
    if bits == 8:
        key = (b.astype(np.uint16) << np.uint16(8)) | d
        joint = np.bincount(key, minlength=1 << 16).reshape(256, 256)
        return TruthHistogram(8, joint)
    key = ((b >> np.uint16(8)) << np.uint16(8)) | (d >> np.uint16(8))
    joint = np.bincount(key, minlength=1 << 16).reshape(256, 256)
    return TruthHistogram(16, joint, np.bincount(b, minlength=1 << 16),
                          np.bincount(d, minlength=1 << 16))


@dataclass(frozen=True, eq=False)
class TruthHistogram:
    """Exact histograms of a gray pair (see the module docstring); additive over row blocks."""

    bits: int
    joint: np.ndarray
    body: np.ndarray | None = None      # uint16 only; for uint8 the joint's marginals
    dye: np.ndarray | None = None

    @property
    def joint_shift(self) -> int:
        return 0 if self.bits == 8 else 8

    def __add__(self, other: "TruthHistogram") -> "TruthHistogram":
        if self.bits == 8:
            return TruthHistogram(8, self.joint + other.joint)
        return TruthHistogram(16, self.joint + other.joint, self.body + other.body,
                              self.dye + other.dye)

    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact histograms of the body and of the dye values (``1 << bits`` bins each)."""
        if self.bits == 8:
            return self.joint.sum(axis=1), self.joint.sum(axis=0)
        return self.body, self.dye

    def body_count(self, threshold: int) -> int:
        """Body pixels (``value < threshold``) at any threshold, exactly."""
        return int(self.marginals()[0][:self._check(threshold)].sum())

    def dye_count(self, threshold: int) -> int:
        """Dye pixels (``value >= threshold``) at any threshold, exactly."""
        return int(self.marginals()[1][self._check(threshold):].sum())

    def _check(self, threshold: int) -> int:
        top = 1 << self.bits
        t = int(threshold)
        if not 0 <= t <= top:
            raise ValueError(f"a threshold must lie in 0..{top}, got {t}")
        return t

    def counts_at(self, body_threshold: int, dye_threshold: int) -> Counts:
        """Exact counts under ``body < body_threshold`` and ``dye >= dye_threshold``.

        Thresholds run from 0 to ``2**bits`` (0: no body / every pixel is dye; ``2**bits``:
        every pixel is body / no dye).

        Raises
        ------
        ValueError
            For a threshold out of range, or (uint16) a pair of thresholds that are not both
            multiples of 256, where the dye-in-body count is not determined by the histograms.
        """
        tb, td = self._check(body_threshold), self._check(dye_threshold)
        step = 1 << self.joint_shift
        if tb % step or td % step:
            raise ValueError(f"a uint16 histogram truth gives the dye-in-body count only at "
                             f"thresholds that are multiples of {step}, got {tb} and {td} "
                             "(body_count() and dye_count() take any threshold)")
        both = int(self.joint[:tb // step, td // step:].sum())
        return Counts(body=self.body_count(tb), dye_in_body=both, dye=self.dye_count(td))

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"bits": np.array(self.bits), "joint_shift": np.array(self.joint_shift),
               "joint": self.joint.astype(np.int64)}
        if self.bits == 16:
            out["body"], out["dye"] = self.body.astype(np.int64), self.dye.astype(np.int64)
        return out

    def save(self, path) -> None:
        """Write ``truth_hist.npz`` (byte-identical for the same histograms: fixed zip times)."""
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, arr in self.arrays().items():
                info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                zf.writestr(info, buf.getvalue())

    @classmethod
    def load(cls, path) -> "TruthHistogram":
        """Read a ``truth_hist.npz`` (a file, or the folder of a generated pair)."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, HISTOGRAM_NAME)
        with np.load(path, allow_pickle=False) as z:
            bits = int(z["bits"])
            if bits == 8:
                return cls(8, z["joint"])
            return cls(16, z["joint"], z["body"], z["dye"])


def counts_at(hist, body_threshold: int, dye_threshold: int) -> Counts:
    """Exact counts of a gray pair at thresholds ``(body_threshold, dye_threshold)``.

    ``hist`` is a :class:`TruthHistogram`, a ``truth_hist.npz`` file or the pair's folder. The
    body is ``body value < body_threshold``, the dye ``dye value >= dye_threshold``; see
    :meth:`TruthHistogram.counts_at` for what a uint16 histogram truth can give.
    """
    if not isinstance(hist, TruthHistogram):
        hist = TruthHistogram.load(hist)
    return hist.counts_at(body_threshold, dye_threshold)
