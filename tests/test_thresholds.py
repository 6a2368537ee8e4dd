"""Threshold methods against scikit-image, and exact recomputations of its definitions.

On every image here scikit-image's float32 counts are exact (fewer than 2**24 pixels), so its
threshold is the reference; :func:`test_float32_counts_are_why_skimage_differs` builds a
histogram of a 100k x 100k image, where they are not, and checks the exact answer against a
Fraction-by-Fraction recomputation of scikit-image's formula instead.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

skimage_filters = pytest.importorskip("skimage.filters")
skimage_data = pytest.importorskip("skimage.data")

from dragon_gpu import thresholds as th  # noqa: E402
from dragon_gpu.errors import UsageError  # noqa: E402

METHODS = ("otsu", "li", "triangle", "yen", "isodata", "mean")
#: images that ship inside scikit-image (no download)
REAL = ("camera", "coins", "moon", "page", "text")


def hist_of(image: np.ndarray) -> np.ndarray:
    return np.bincount(image.ravel(), minlength=np.iinfo(image.dtype).max + 1)


def skimage_t(method: str, image: np.ndarray) -> int:
    return math.floor(getattr(skimage_filters, f"threshold_{method}")(image)) + 1


def generated():
    rng = np.random.default_rng(15)
    two_class = np.where(rng.random((120, 90)) < 0.35, rng.normal(40, 9, (120, 90)),
                         rng.normal(170, 25, (120, 90)))
    yield "u8-two-class", two_class.clip(0, 255).astype(np.uint8)
    yield "u8-skewed", rng.gamma(2.0, 18.0, (80, 70)).clip(0, 255).astype(np.uint8)
    yield "u16-normal", rng.normal(20000, 3000, (150, 110)).clip(0, 65535).astype(np.uint16)
    bimodal = np.where(rng.random((100, 100)) < 0.4, rng.normal(1000, 50, (100, 100)),
                       rng.normal(30000, 5000, (100, 100)))
    yield "u16-bimodal", bimodal.clip(0, 65535).astype(np.uint16)
    yield "u16-sparse", (rng.integers(0, 40, (60, 60)) * 1500 + 7).astype(np.uint16)
    yield "u16-from-camera", skimage_data.camera().astype(np.uint16) * 257 + 3
    yield "u8-two-values", np.array([[3, 3, 9, 9, 9]], np.uint8)
    yield "u8-two-values-ends", np.array([[0, 255, 255]], np.uint8)
    yield "u16-two-values", np.array([[100, 60000]] * 3, np.uint16)


CASES = [(name, getattr(skimage_data, name)()) for name in REAL] + list(generated())


def _prefix(counts, centers):
    w, sv, tw, ts = [], [], 0, 0
    for c, v in zip(counts, centers):
        tw, ts = tw + c, ts + c * v
        w.append(tw)
        sv.append(ts)
    return w, sv


def otsu_by_definition(counts, centers):
    """skimage's threshold_otsu formula evaluated with Fractions: argmax (first) of
    w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2."""
    w, sv = _prefix(counts, centers)
    best, best_v = None, None
    for i in range(len(counts) - 1):
        w1, w2 = w[i], w[-1] - w[i]
        v = w1 * w2 * (Fraction(sv[i], w1) - Fraction(sv[-1] - sv[i], w2)) ** 2
        if best_v is None or v > best_v:
            best, best_v = i, v
    return centers[best]


def yen_by_definition(counts, centers):
    """argmax (first) of (P1 (1 - P1)) ** 2 / (P1sq P2sq) with Fractions (log is monotone)."""
    n = sum(counts)
    sq = [Fraction(c, n) ** 2 for c in counts]
    p2 = [Fraction(0)] * (len(counts) + 1)
    for i in range(len(counts) - 1, -1, -1):
        p2[i] = p2[i + 1] + sq[i]
    best, best_v, p1, p1sq = None, None, Fraction(0), Fraction(0)
    for i in range(len(counts) - 1):
        p1 += Fraction(counts[i], n)
        p1sq += sq[i]
        v = (p1 * (1 - p1)) ** 2 / (p1sq * p2[i + 1])
        if best_v is None or v > best_v:
            best, best_v = i, v
    return centers[best]


def isodata_by_definition(counts, centers):
    """The first centre b with 0 <= (mean below-or-at + mean above) / 2 - b < 1, Fractions."""
    w, sv = _prefix(counts, centers)
    for i in range(len(counts) - 1):
        mid = (Fraction(sv[i], w[i]) + Fraction(sv[-1] - sv[i], w[-1] - w[i])) / 2
        if 0 <= mid - centers[i] < 1:
            return centers[i]
    raise AssertionError("no isodata threshold")


BY_DEFINITION = {"otsu": otsu_by_definition, "yen": yen_by_definition,
                 "isodata": isodata_by_definition}
#: (image, method) where scikit-image's answer is not its own definition's exact optimum, each
#: checked against the exact recomputation instead. otsu: its weight products
#: ``weight1[:-1] * weight2[1:]`` are float32 (exact only below 2**24), so two criteria 4e-8
#: apart swap; yen: its probabilities ``pmf`` and their running sums are float32.
FLOAT32_DIFFERENCES = {("u16-normal", "otsu"), ("u16-normal", "yen")}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name,image", CASES, ids=[c[0] for c in CASES])
def test_threshold_and_counts_equal_skimage(name, image, method):
    hist = hist_of(image)
    got = th.compute(method, hist)
    want = skimage_t(method, image)
    if method in BY_DEFINITION and image.min() != image.max():
        nz = np.flatnonzero(hist)
        centers = list(range(int(nz[0]), int(nz[-1]) + 1))
        counts = [int(v) for v in hist[nz[0]:nz[-1] + 1]]
        exact = BY_DEFINITION[method](counts, centers) + 1
        assert got.threshold == exact
        assert (exact != want) == ((name, method) in FLOAT32_DIFFERENCES), (exact, want)
        if exact != want:
            assert abs(exact - want) <= 3
            return
    assert got.threshold == want
    ref = getattr(skimage_filters, f"threshold_{method}")(image)
    assert float(got.T) == pytest.approx(float(ref), rel=1e-12, abs=1e-9)
    # The counts of the rule follow: bright is value >= t, exactly skimage's image > T.
    assert int((image >= got.threshold).sum()) == int((image > ref).sum())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("value,dtype", [(0, np.uint8), (77, np.uint8), (255, np.uint8),
                                         (0, np.uint16), (4095, np.uint16), (65535, np.uint16)])
def test_single_value_image(method, value, dtype):
    """skimage returns the value itself: nothing is brighter, so t is one past it (even one
    past the dtype's top, which the rule accepts for a method)."""
    image = np.full((7, 5), value, dtype)
    assert skimage_t(method, image) == value + 1
    assert th.compute(method, hist_of(image)).threshold == value + 1


def test_empty_histogram_is_refused():
    with pytest.raises(ValueError, match="empty"):
        th.compute("otsu", np.zeros(256, np.int64))
    with pytest.raises(ValueError, match="unknown"):
        th.compute("minimum", np.ones(256, np.int64))


# -- exact recomputations, where float32 counts make skimage differ --------------------------------
def big_histogram():
    """A 100k x 100k-sized histogram (10**10 pixels) of 40 values with two near-equal modes:
    float32 cannot hold its counts (spacing 1024 at 1e10), so the float criterion ties or flips
    where the exact one does not."""
    rng = np.random.default_rng(3)
    counts = [int(v) for v in rng.integers(1, 1000, 40)]
    counts[8] = 2_500_000_001
    counts[30] = 2_500_000_003
    counts[19] = 4_999_999_000 - sum(counts) + counts[19] + 5_000_000_000 - 4_999_999_000
    return counts


def test_float32_counts_are_why_skimage_differs():
    counts = big_histogram()
    assert sum(counts) > 2 ** 24 and any(c > 2 ** 24 for c in counts)
    hist = np.zeros(256, np.int64)
    hist[100:140] = counts
    centers = list(range(100, 140))
    exact_otsu = otsu_by_definition(counts, centers)
    assert th.compute("otsu", hist).T == exact_otsu
    assert th.compute("yen", hist).T == yen_by_definition(counts, centers)
    # scikit-image on the same histogram keeps the counts in float32, which cannot hold them:
    assert [int(v) for v in np.array(counts, np.float32).astype(np.int64)] != counts
    sk = int(skimage_filters.threshold_otsu(hist=(np.array(counts, np.int64),
                                                  np.array(centers))))
    # Whatever it answers (0.26: 126, the exact optimum is 118), no bin beats the exact one
    # under its own formula evaluated exactly.
    def criterion(b):
        i = centers.index(b)
        w1, w2 = sum(counts[:i + 1]), sum(counts[i + 1:])
        s1 = sum(c * v for c, v in zip(counts[:i + 1], centers[:i + 1]))
        s2 = sum(c * v for c, v in zip(counts[i + 1:], centers[i + 1:]))
        return w1 * w2 * (Fraction(s1, w1) - Fraction(s2, w2)) ** 2
    assert criterion(exact_otsu) >= criterion(sk)
    assert sk == exact_otsu or criterion(exact_otsu) > criterion(sk)


@pytest.mark.parametrize("seed", range(6))
def test_methods_by_definition_on_random_histograms(seed):
    """Small random histograms (with empty inner bins and equal counts, so ties happen):
    otsu, yen and isodata against a literal Fraction recomputation of skimage's formulas."""
    rng = np.random.default_rng(seed)
    counts = [int(v) for v in rng.integers(0, 4, 12)]
    counts[0] = counts[-1] = 2
    hist = np.zeros(256, np.int64)
    hist[50:62] = counts
    centers = list(range(50, 62))
    assert th.compute("otsu", hist).T == otsu_by_definition(counts, centers)
    assert th.compute("yen", hist).T == yen_by_definition(counts, centers)
    assert th.compute("isodata", hist).T == isodata_by_definition(counts, centers)


def test_parse_threshold():
    assert th.parse_threshold("97") == 97 and th.parse_threshold(" Otsu ") == "otsu"
    assert th.parse_threshold(None) is None and th.parse_threshold(12) == 12
    with pytest.raises(UsageError, match="^dye_threshold: expected a gray level"):
        th.parse_threshold("otsuu", "dye_threshold")


def test_describe_histogram():
    image = skimage_data.coins()
    d = th.describe_histogram(hist_of(image))
    assert (d["pixels"], d["min"], d["max"]) == (image.size, int(image.min()), int(image.max()))
    assert d["levels"] == len(np.unique(image))
    assert d["methods"] == {m: skimage_t(m, image) for m in METHODS}
