"""The names the library accepts for its enumerated options.

A light module (the standard library only): the command line declares its choices from it
without importing NumPy or a reader, so ``dragon-gpu --help`` stays fast. Each library module
that accepts one of these takes its names from here.
"""

from __future__ import annotations

from enum import Enum


class Polarity(str, Enum):
    """Which pixels of an image are members: the dark ones or the bright ones."""

    dark = "dark"
    bright = "bright"


#: Threshold methods computed exactly on a histogram (:data:`dragon_gpu.thresholds.METHODS`).
THRESHOLD_METHODS = ("otsu", "li", "triangle", "yen", "isodata", "mean")
#: Where compressed strips and chunks are inflated (``decode``).
DECODE_MODES = ("auto", "cpu", "gpu")
#: What inflates LZ4 on the GPU (``gpu_decoder``).
GPU_DECODERS = ("nvcomp", "dali")
#: Kinds of generated pair (:func:`dragon_gpu.simulate.generate`).
GENERATE_KINDS = ("typical", "cancer", "healthy", "boundary")
#: Pixel encodings of a generated pair.
GENERATE_ENCODINGS = ("packed", "u8", "u16")
#: Output formats of generate and convert.
OUTPUT_FORMATS = ("tiff", "hdf5", "zarr", "ome-zarr")
#: Pixel encodings convert writes.
CONVERT_ENCODINGS = ("packed", "u8", "u16")
