"""``generate``, ``convert`` and ``demo``: writing images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from .common import cli_errors, echo_json, warn_unused
from .options import (AllowExternal, Compression, ConvertEncoding, ConvertPolarity, Dataset,
                      DEFAULT_MEMORY, Force, GenerateEncoding, GenerateKind, Json, Levels, Memory,
                      OutputFormat, Page, Quiet, RowsPerStrip, parse_memory)
from .progress import ProgressBar

OutDir = Annotated[Path, typer.Argument(
    help="Folder for body.tif + dye.tif (or body.h5 + dye.h5) and truth.json; created if "
         "missing.")]
Size = Annotated[Optional[int], typer.Option(
    min=64, help="Side of a square pair in pixels (default 2048 when no --height/--width).")]
Height = Annotated[Optional[int], typer.Option(min=64, help="Rows of the pair (with --width).")]
Width = Annotated[Optional[int], typer.Option(min=64, help="Columns of the pair (with --height).")]
Seed = Annotated[int, typer.Option(min=0, help="Random seed: the same seed and options give the "
                                               "same bytes.")]
Kind = Annotated[GenerateKind, typer.Option(
    case_sensitive=False, help="cancer (dye in body clearly above 10%), healthy (clearly below), "
                               "boundary (exactly 10%, not cancer), typical (cancer with "
                               "probability --cancer-rate).")]
GenerateFormat = Annotated[OutputFormat, typer.Option(
    "--format", case_sensitive=False,
    help="tiff (1-bit TIFF), hdf5 (dataset 'mask'), zarr (body.zarr + dye.zarr, Zarr v3) or "
         "ome-zarr (one two-channel image.ome.zarr, body also as a label image).")]
Encoding = Annotated[GenerateEncoding, typer.Option(
    case_sensitive=False, help="packed: 1 bit a pixel; u8: 8-bit images (body 0 on 255, dye 255 "
                               "on 0; gray with --texture); u16: 16-bit gray images (with "
                               "--texture).")]
Texture = Annotated[bool, typer.Option(
    "--texture", help="Gray images that look like microscopy (textured dark body, noise, uneven "
                      "light, soft edges; bright vessels on autofluorescence), with --encoding u8 "
                      "or u16; truth.json counts at the default threshold, truth_hist.npz at "
                      "any.")]
CancerRate = Annotated[float, typer.Option(min=0.0, max=1.0,
                                           help="Prevalence of cancer for --kind typical.")]
Speckle = Annotated[float, typer.Option(
    min=0.0, max=0.01, help="Share of pixels lit by speckle noise in the dye image.")]
GenerateJson = Annotated[bool, typer.Option("--json", help="Print truth.json's object on stdout.")]
GenerateQuiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar and no summary (--json still prints its object).")]


@cli_errors
def generate(
    outdir: OutDir, size: Size = None, height: Height = None, width: Width = None,
    seed: Seed = 0, kind: Kind = GenerateKind.typical, fmt: GenerateFormat = OutputFormat.tiff,
    encoding: Encoding = GenerateEncoding.packed, texture: Texture = False,
    compression: Compression = None,
    cancer_rate: CancerRate = 0.001, speckle: Speckle = 2e-4,
    rows_per_strip: RowsPerStrip = None, levels: Levels = 1, as_json: GenerateJson = False,
    force: Force = False, quiet: GenerateQuiet = False,
):
    """Generate a realistic body/dye pair with exact ground truth (truth.json), streaming. The
    pair is written to temporaries and published whole or not at all."""
    if size is not None and (height is not None or width is not None):
        raise UsageError("give either --size or --height and --width, not both")
    if (height is None) != (width is None):
        raise UsageError("--height and --width go together")
    if height is None:
        height = width = size or 2048
    if fmt.value in ("zarr", "ome-zarr"):
        from ..simulate.zarr import generate_zarr as run_generate
        extra = {"levels": levels}
    elif levels != 1:
        raise UsageError("--levels: a pyramid needs --format ome-zarr")
    else:
        from ..simulate import generate as run_generate
        extra = {}
    with ProgressBar("generate", enabled=not quiet) as bar:
        truth = run_generate(outdir, height=height, width=width, seed=seed, kind=kind.value,
                             fmt=fmt.value, encoding=encoding.value, compression=compression,
                             cancer_rate=cancer_rate, speckle=speckle,
                             rows_per_strip=rows_per_strip, progress=bar.update,
                             force=force, texture=texture, **extra)
    if as_json:
        echo_json(truth)
    elif not quiet:
        render_truth(truth)


def render_truth(truth: dict) -> None:
    verdict = "CANCER" if truth["cancer"] else "no cancer"
    frac = "n/a" if truth["fraction"] is None else f"{100 * truth['fraction']:.4f}%"
    drawn = f" (drawn: {truth['drawn_kind']})" if truth["kind"] == "typical" else ""
    kind = truth["kind"] + drawn
    typer.echo("\n".join([
        f"wrote {truth['body_path']}, {truth['dye_path']} and truth.json",
        f"kind: {kind}, seed {truth['seed']}, shape {truth['shape'][0]} x {truth['shape'][1]}",
        f"truth: {verdict} (dye in body {frac} of the body)",
        f"body pixels: {truth['body_pixels']}",
        f"dye pixels in body: {truth['dye_in_body_pixels']}",
        f"dye pixels outside body: {truth['dye_outside_body_pixels']}",
        f"generated in {truth['seconds']:.2f} s",
    ]))


@cli_errors
def convert(
    src: Annotated[str, typer.Argument(help="Input image (TIFF, HDF5 or Zarr; IMAGE#c=1 names a "
                                            "channel).")],
    dst: Annotated[Path, typer.Argument(help="Output (.tif/.tiff, .h5/.hdf5, .zarr, .ome.zarr, "
                                             "or --format).")],
    fmt: Annotated[Optional[OutputFormat], typer.Option(
        "--format", case_sensitive=False, help="Output format (default: from the suffix).")] = None,
    encoding: Annotated[Optional[ConvertEncoding], typer.Option(
        case_sensitive=False, help="packed (1 bit a pixel), u8 or u16 (default: packed for 1-bit "
                                   "and mask inputs, else the input's bit depth).")] = None,
    compression: Compression = None, rows_per_strip: RowsPerStrip = None, levels: Levels = 1,
    polarity: ConvertPolarity = None,
    threshold: Annotated[Optional[int], typer.Option(
        help="Gray inputs to 1 bit: brightness from which a pixel is white (default: half the "
             "range, 128 for uint8, as detect).")] = None,
    dataset: Dataset = None,
    out_dataset: Annotated[str, typer.Option(help="HDF5 dataset name of the output.")] = "mask",
    page: Page = 0, allow_external: AllowExternal = False, memory: Memory = DEFAULT_MEMORY,
    as_json: Json = False, quiet: Quiet = False,
):
    """Re-encode one image (format, bit depth, packing, compression, strip rows), streaming."""
    from ..convert import convert as run_convert

    with ProgressBar("convert", enabled=not quiet) as bar:
        result = run_convert(src, dst, fmt=None if fmt is None else fmt.value,
                             encoding=None if encoding is None else encoding.value,
                             compression=compression, segment_rows=rows_per_strip,
                             polarity=polarity, threshold=threshold, page=page, dataset=dataset,
                             out_dataset=out_dataset, allow_external=allow_external,
                             memory=parse_memory(memory), progress=bar.update, levels=levels)
    warn_unused(src, page, dataset)
    if as_json:
        echo_json(result)
        return
    typer.echo(f"wrote {result['output']} ({result['format']}, {result['encoding']}, "
               f"{result['compression']}): {result['output_bytes']} bytes from "
               f"{result['input_bytes']} in {result['seconds']:.2f} s\n"
               f"pixels: {result['mapping']}")


@cli_errors
def demo(
    size: Annotated[int, typer.Option(min=64, help="Side of the generated square pair, in "
                                                   "pixels.")] = 2048,
    seed: Annotated[int, typer.Option(help="Random seed of the generated pair.")] = 7,
    device: Annotated[str, typer.Option(help="Device for detection, as in detect.")] = "auto",
):
    """Generate a small realistic pair in a temporary folder, detect it, and print both."""
    import tempfile

    from ..pipeline import detect as run_detect
    from ..simulate import generate as run_generate
    from .detect import render_detect

    with tempfile.TemporaryDirectory(prefix="dragon-gpu-demo-") as tmp:
        typer.echo(f"generating a {size} x {size} pair (seed {seed}) in {tmp} ...")
        t0 = time.perf_counter()
        truth = run_generate(tmp, height=size, width=size, seed=seed, kind="typical")
        typer.echo(f"generated in {time.perf_counter() - t0:.2f} s: body.tif, dye.tif, truth.json")
        got = run_detect(Path(tmp) / "body.tif", Path(tmp) / "dye.tif", device=device).to_dict()
        render_detect(got, as_json=False)
        keys = ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels",
                "cancer")
        agree = all(got[k] == truth[k] for k in keys)
        typer.echo(f"ground truth: body {truth['body_pixels']}, dye in body "
                   f"{truth['dye_in_body_pixels']}, cancer {truth['cancer']} -> detect "
                   f"{'matches the truth exactly' if agree else 'DIFFERS FROM THE TRUTH'}")
        if not agree:
            raise typer.Exit(1)
