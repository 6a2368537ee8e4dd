"""``info``: what an input holds and what reading it costs."""

from __future__ import annotations

from typing import Annotated

import typer

from .common import cli_errors, echo_json, warn_unused
from .options import (DEFAULT_MEMORY, MEMORY_GRAMMAR, AllowExternal, Dataset, Json, Page,
                      parse_memory)

Memory = Annotated[str, typer.Option(
    help=f"Memory budget of --histogram's pass, {MEMORY_GRAMMAR}.")]


@cli_errors
def info(
    file: Annotated[str, typer.Argument(help="A TIFF or HDF5 image or a Zarr store (folder, .zip, "
                                             "URL), optionally with a plane selector "
                                             "(IMAGE#c=1).")],
    dataset: Dataset = None, page: Page = 0, allow_external: AllowExternal = False,
    sample: Annotated[bool, typer.Option(
        "--sample/--no-sample", help="Decode a sample of rows to measure the decode cost.")] = True,
    as_json: Json = False,
    histogram: Annotated[bool, typer.Option(
        "--histogram", help="Also stream the exact histogram of a gray image and print its "
                            "summary and the threshold each method (otsu, li, ...) would choose "
                            "(reads the whole file).")] = False,
    memory: Memory = DEFAULT_MEMORY,
):
    """Describe an input: shape, bit depth, layout, compression, pixel rules, decode cost."""
    from ..info import describe_file

    facts = describe_file(file, dataset=dataset, page=page, allow_external=allow_external,
                          sample=sample)
    warn_unused(file, page, dataset)
    if histogram:
        from ..autothreshold import histogram_of
        from ..thresholds import describe_histogram

        hist, _ = histogram_of(file, page=page, dataset=dataset, allow_external=allow_external,
                               memory=parse_memory(memory))
        facts["histogram"] = describe_histogram(hist)
    if as_json:
        echo_json(facts)
        return
    summary = facts.pop("histogram", None)
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        typer.echo(f"{key.replace('_', ' '):<{width}}  {value}")
    if summary is not None:
        typer.echo(f"histogram: {summary['pixels']} pixels, values {summary['min']} to "
                   f"{summary['max']} ({summary['levels']} distinct), mean {summary['mean']:.4f}"
                   " (of displayed brightness)")
        typer.echo("thresholds (bright is value >= t; the body is value < t):")
        for name, t in summary["methods"].items():
            typer.echo(f"  {name:<9} t = {t}")
