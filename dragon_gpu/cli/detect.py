"""``detect`` and ``preview``: one pair, a verdict or a picture."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError
from .common import cli_errors, echo_json, warn
from .options import (DEFAULT_CUTOFF, DEFAULT_MEMORY, AllowExternal, BlockRows, Body,
                      BodyDataset, BodyPolarity, BodyThreshold, Cutoff, Decode, Device, Dye,
                      DyeDataset, DyePolarity, DyeThreshold, GpuDecoder, Json, MaxSide, Memory,
                      Output, Page, Quiet, RequireGpu, Strict, Threshold, detect_options)
from .progress import ProgressBar

Preview = Annotated[Optional[Path], typer.Option(
    "--preview", metavar="PNG", help="Also draw the overlay picture (as dragon-gpu preview does) "
                                     "from the same pass, into this file (.png, .jpg, .tif, "
                                     ".webp or .bmp).")]
Scheduler = Annotated[Optional[str], typer.Option(
    help="Split the pair into row-range tasks on a Dask cluster: 'local' starts one on this "
         "machine, an address (tcp://host:8786) joins a running one. Needs "
         "dragon-gpu\\[dask]."  # \[ : a bracket, not rich markup
)]
Workers = Annotated[Optional[int], typer.Option(
    min=1, help="Worker processes of --scheduler local (default: the usable cores).")]


@cli_errors
def detect(
    body: Body, dye: Dye, cutoff: Cutoff = DEFAULT_CUTOFF, device: Device = "auto",
    require_gpu: RequireGpu = False, as_json: Json = False, memory: Memory = DEFAULT_MEMORY,
    threshold: Threshold = None, body_threshold: BodyThreshold = None,
    dye_threshold: DyeThreshold = None, body_polarity: BodyPolarity = None,
    dye_polarity: DyePolarity = None, body_dataset: BodyDataset = None,
    dye_dataset: DyeDataset = None, page: Page = 0, allow_external: AllowExternal = False,
    strict: Strict = False, block_rows: BlockRows = None, decode: Decode = "auto",
    gpu_decoder: GpuDecoder = "nvcomp", quiet: Quiet = False, preview: Preview = None,
    max_side: MaxSide = 2048, scheduler: Scheduler = None, workers: Workers = None,
):
    """Count body and dye-in-body pixels of one pair and decide. Exit 0 with a verdict, 2 on bad
    input."""
    options = detect_options(locals())
    if workers is not None and scheduler is None:
        raise UsageError("--workers needs --scheduler (a local detect runs in one process)")
    if preview is not None and scheduler is not None:
        raise UsageError("--preview draws from the local pass; it cannot be combined with "
                         "--scheduler (run dragon-gpu preview separately)")
    picture = None
    if preview is not None:
        from ..preview import DetectPreview

        picture = DetectPreview(preview, max_side=max_side, inputs=(body, dye))
    with ProgressBar("detect", enabled=not quiet) as bar:
        if scheduler is None:
            from ..pipeline import detect as run_detect

            result = run_detect(body, dye, options, progress=bar.update,
                                watch=picture.watch if picture else None)
        else:
            from ..batching.dask_detect import detect as run_distributed

            result = run_distributed(body, dye, options, scheduler=scheduler, workers=workers,
                                     progress=bar.update)
    if picture is not None:
        drawn = picture.write(result)
        typer.echo(f"dragon-gpu: wrote {drawn.path} ({drawn.png_shape[1]} x {drawn.png_shape[0]} "
                   "pixels)", err=True)
    render_detect(result.to_dict(), as_json)


def render_detect(result: dict, as_json: bool) -> None:
    """The detect JSON, or the verdict and counts as text (warnings on stderr)."""
    if as_json:  # the warnings are in the object
        echo_json(result)
        return
    verdict = "CANCER" if result["cancer"] else "no cancer"
    frac = "n/a" if result["fraction"] is None else f"{100 * result['fraction']:.4f}%"
    typer.echo("\n".join([
        f"verdict: {verdict} (dye in body {frac} of the body; cutoff {result['cutoff']}, strictly "
        "greater is cancer)",
        f"shape: {result['shape'][0]} x {result['shape'][1]}",
        f"body pixels: {result['body_pixels']}",
        f"dye pixels in body: {result['dye_in_body_pixels']}",
        f"dye pixels outside body: {result['dye_outside_body_pixels']}",
        f"body rule: {result['body_rule']}",
        f"dye rule: {result['dye_rule']}",
        _thresholds_line(result),
        f"backend: {result['backend']}, {result['seconds']:.3f} s, "
        f"{(result['pixels_per_second'] or 0) / 1e9:.3f} Gpixel/s",
    ]))
    for w in result["warnings"]:
        warn(w)


def _thresholds_line(result: dict) -> str:
    parts = []
    for role in ("body", "dye"):
        t, method = result.get(f"{role}_threshold"), result.get(f"{role}_threshold_method")
        parts.append(f"{role} none (no gray levels)" if t is None else f"{role} {t} ({method})")
    return "thresholds: " + ", ".join(parts)


@cli_errors
def preview(
    body: Body, dye: Dye,
    output: Output, max_side: MaxSide = 2048, cutoff: Cutoff = DEFAULT_CUTOFF,
    memory: Memory = DEFAULT_MEMORY, threshold: Threshold = None,
    body_threshold: BodyThreshold = None, dye_threshold: DyeThreshold = None,
    body_polarity: BodyPolarity = None, dye_polarity: DyePolarity = None,
    body_dataset: BodyDataset = None, dye_dataset: DyeDataset = None, page: Page = 0,
    allow_external: AllowExternal = False, strict: Strict = False, quiet: Quiet = False,
):
    """Draw a downsampled overlay of a pair (body, dye inside it, dye outside it) with a legend
    and the exact counts, streaming the images."""
    from ..preview import preview as draw_preview

    options = detect_options(locals(), device="cpu")
    with ProgressBar("preview", enabled=not quiet) as bar:
        result = draw_preview(body, dye, output, options, max_side=max_side, progress=bar.update)
    typer.echo(f"wrote {result.path}: {result.png_shape[1]} x {result.png_shape[0]} pixels, one "
               f"pixel = {result.scale} x {result.scale} image pixels")
    for line in result.legend:
        typer.echo(line)
