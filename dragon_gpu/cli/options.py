"""Every option of the command line, declared once as a typer ``Annotated`` alias, and the one
function that turns parsed options into :class:`~dragon_gpu.pipeline.DetectOptions`.

A command names an option by its parameter (``cutoff: Cutoff = DEFAULT_CUTOFF``); the flag is the
parameter's name with dashes unless the alias says otherwise. Choices come from
:mod:`dragon_gpu.choices`, the library's own names. Nothing heavy is imported here: ``--help``
must stay fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import choices
from ..choices import Polarity
from .common import choice

#: dragon_gpu.verdict.DEFAULT_CUTOFF and pipeline.DEFAULT_MEMORY as a user writes them (the
#: modules are not imported for --help; tests/test_cli_package.py checks they agree).
DEFAULT_CUTOFF = "0.10"
DEFAULT_MEMORY = "1GiB"


def _enum(name: str, values: tuple[str, ...]) -> type[Enum]:
    """A str Enum of ``values`` (typer's choice type), named after the library's constant."""
    return Enum(name, {v: v for v in values}, type=str)


GenerateKind = _enum("GenerateKind", choices.GENERATE_KINDS)
GenerateEncoding = _enum("GenerateEncoding", choices.GENERATE_ENCODINGS)
OutputFormat = _enum("OutputFormat", choices.OUTPUT_FORMATS)
ConvertEncoding = _enum("ConvertEncoding", choices.CONVERT_ENCODINGS)

_METHODS = ", ".join(choices.THRESHOLD_METHODS)


def parse_memory(text: str) -> int:
    """Bytes from ``"1GiB"``, ``"512M"``, ``"1.5G"`` or a plain number of bytes (powers of 1024),
    as :func:`dragon_gpu.numbers.parse_size` reads them."""
    from ..numbers import parse_size

    return parse_size(text, param="memory")


# -- the pair and how its pixels are read ---------------------------------------------------------
Body = Annotated[str, typer.Argument(help="Body image (TIFF, HDF5, Zarr folder/zip/URL; IMAGE#c=0 "
                                          "names a channel): the parasite is dark, or set in a "
                                          "mask.")]
Dye = Annotated[str, typer.Argument(help="Dye image of the same shape (IMAGE#c=1 names a channel): "
                                         "lit dye is bright, or set in a mask.")]
Cutoff = Annotated[str, typer.Option(
    help="Cancer when dye in body > cutoff x body, strictly. A decimal (0.10) or a percent "
         "(10%), read exactly: ASCII digits, at most one '.', up to 60 decimal places.")]
#: How the memory budget is written (the help of every --memory).
MEMORY_GRAMMAR = ("e.g. 512MiB or 4GiB: digits, at most one '.', then K, M, G, T or P (powers of "
                  "1024); 16 MiB to 1 PiB")
Memory = Annotated[str, typer.Option(
    help=f"Memory budget for buffers, {MEMORY_GRAMMAR}. A file whose strips cannot be decoded "
         "within it is refused.")]
Threshold = Annotated[Optional[str], typer.Option(
    metavar="LEVEL|METHOD",
    help="Gray level splitting dark from bright in 8/16-bit images (default: half the range, "
         "128 for uint8), or a method computed exactly on each gray image's histogram, as "
         f"scikit-image's threshold_<method>: {_METHODS}.")]
BodyThreshold = Annotated[Optional[str], typer.Option(
    metavar="LEVEL|METHOD", help="Threshold (a gray level or a method) for the body image only "
                                 "(overrides --threshold; for pairs of different bit depths).")]
DyeThreshold = Annotated[Optional[str], typer.Option(
    metavar="LEVEL|METHOD", help="Threshold (a gray level or a method) for the dye image only "
                                 "(overrides --threshold).")]
BodyPolarity = Annotated[Optional[Polarity], typer.Option(
    case_sensitive=False, help="Override which body pixels are members (default dark; masks: "
                               "set).")]
DyePolarity = Annotated[Optional[Polarity], typer.Option(
    case_sensitive=False, help="Override which dye pixels are lit (default bright; masks: set).")]
BodyDataset = Annotated[Optional[str], typer.Option(
    help="HDF5 dataset or Zarr array of the body image (of every one in a batch).")]
DyeDataset = Annotated[Optional[str], typer.Option(
    help="HDF5 dataset or Zarr array of the dye image (of every one in a batch).")]
Dataset = Annotated[Optional[str], typer.Option(
    help="HDF5 dataset or Zarr array/group path (default: the only 2-D one).")]
Page = Annotated[int, typer.Option(min=0, help="TIFF page (IFD) to read, in every input.")]
AllowExternal = Annotated[bool, typer.Option(
    "--allow-external", help="Let HDF5 follow external links and read external or virtual "
                             "storage (refused by default: inputs are untrusted).")]
Strict = Annotated[bool, typer.Option(
    "--strict", help="Refuse Zarr inputs with absent chunks (by default they read as the array's "
                     "fill value, and the JSON warnings say how many).")]

# -- where and how the counting runs ------------------------------------------------------------
Device = Annotated[str, typer.Option(
    help="auto (GPU 0 if usable, else CPU), cpu, N, or N,M to split rows across GPUs.")]
RequireGpu = Annotated[bool, typer.Option(
    "--require-gpu", help="Exit 2 instead of falling back to the CPU.")]
BlockRows = Annotated[Optional[int], typer.Option(
    min=1, help="Rows per block (default: planned from --memory and the files).")]
Decode = Annotated[str, typer.Option(
    help="Where compressed strips and chunks are inflated: auto (on the GPU where the engine is "
         "CUDA and the codec is deflate, zstd or LZ4; else the CPU), cpu, or gpu (exit 2 when an "
         "input cannot be).")]
GpuDecoder = Annotated[str, typer.Option(
    help="What inflates LZ4 on the GPU: nvcomp or dali (the dali extra). Deflate and zstd always "
         "use nvCOMP.")]

# -- output ---------------------------------------------------------------------------------------
Json = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
MaxSide = Annotated[int, typer.Option(
    "--max-side", help="Longest side of the picture in pixels, legend included (at least 256).")]
Compression = Annotated[Optional[str], typer.Option(
    help="TIFF: deflate (default), lzw, packbits, zstd, none. HDF5: gzip (default), lzf, lz4, "
         "zstd, none. Zarr: zstd (default), gzip, blosc, none.")]
RowsPerStrip = Annotated[Optional[int], typer.Option(
    "--rows-per-strip", "--chunk-rows", min=1,
    help="Rows of a TIFF strip / HDF5 chunk (default: about 1 MiB of raw rows); Zarr: the chunk "
         "side (default 1024).")]
Levels = Annotated[int, typer.Option(
    min=1, max=16, help="OME-Zarr pyramid levels: the full resolution and levels-1 halvings "
                        "(each half the size of the one above).")]
ConvertPolarity = Annotated[Optional[Polarity], typer.Option(
    "--polarity", case_sensitive=False,
    help="Between a mask and an image: members are dark (a body) or bright (lit dye). Required "
         "for such conversions, except a 1-bit TIFF to a mask (default: its set bits are the "
         "members, as generate writes them).")]
Force = Annotated[bool, typer.Option("--force", help="Replace a pair already in OUTDIR (refused "
                                                     "without it).")]
Output = Annotated[Path, typer.Option(
    "--output", "-o", metavar="PNG",
    help="The picture to write; the suffix names the format: .png, .jpg, .tif, .webp or .bmp "
         "(written to a temporary name, then renamed).")]


def detect_options(values: dict, **fixed):
    """The :class:`~dragon_gpu.pipeline.DetectOptions` of a command's parsed options.

    ``values`` holds the command's parameters (its ``locals()``); those that are fields of
    DetectOptions are taken, the memory budget read, the choices checked, and ``fixed``
    (e.g. ``device="cpu"`` for preview) applied last.
    """
    from dataclasses import fields

    from ..pipeline import DetectOptions

    names = {f.name for f in fields(DetectOptions)}
    given = {k: v for k, v in values.items() if k in names}
    given["memory"] = parse_memory(given.get("memory", DEFAULT_MEMORY))
    if "decode" in given:
        given["decode"] = choice("--decode", given["decode"], choices.DECODE_MODES)
    if "gpu_decoder" in given:
        given["gpu_decoder"] = choice("--gpu-decoder", given["gpu_decoder"],
                                      choices.GPU_DECODERS)
    return DetectOptions(**{**given, **fixed})
