"""``batch``: every pair of a manifest, one results row each, resumable.

The command is a thin call into :func:`dragon_gpu.batching.run_batch`: options in, a report out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import cli_errors, echo_json, warn
from .options import (DEFAULT_CUTOFF, DEFAULT_MEMORY, MEMORY_GRAMMAR, AllowExternal, BodyDataset,
                      BodyPolarity, BodyThreshold, Cutoff, DyeDataset, DyePolarity, DyeThreshold,
                      Page, Quiet, Strict, Threshold, detect_options)
from .progress import ProgressBar

Manifest = Annotated[Path, typer.Argument(
    help="CSV manifest with a header naming body,dye (paths relative to the manifest's folder) "
         "and optionally id (default: the body path).")]
Out = Annotated[Path, typer.Option(
    "--out", "-o", help="RESULTS.csv: one row per pair, appended and flushed as pairs finish; "
                        "pairs already ok in it are skipped, so a rerun resumes.")]
Scheduler = Annotated[Optional[str], typer.Option(
    help="Run pairs on a Dask cluster: 'local' starts one on this machine, an address "
         "(tcp://host:8786) joins a running one. Default: local worker processes.")]
Workers = Annotated[Optional[int], typer.Option(
    min=1, help="Worker processes (local pool or --scheduler local); default: the usable cores, "
                "or 2 per GPU with the CUDA engine.")]
Device = Annotated[str, typer.Option(
    help="auto (GPU 0 if usable, else CPU), cpu, N, or N,M; with --scheduler local and "
         "dask-cuda, the GPUs that get one worker each.")]
RequireGpu = Annotated[bool, typer.Option(
    "--require-gpu", help="A pair fails instead of falling back to the CPU.")]
Memory = Annotated[str, typer.Option(help=f"Memory budget of each worker, {MEMORY_GRAMMAR}.")]
Json = Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")]
RetryErrors = Annotated[bool, typer.Option(
    "--retry-errors/--keep-errors", help="Run again the pairs that have an error row in --out "
                                         "(default), or keep those rows as they are.")]

#: Error rows repeated on stderr after the summary.
SHOWN_ERRORS = 10


@cli_errors
def batch(
    manifest: Manifest, out: Out, scheduler: Scheduler = None, workers: Workers = None,
    cutoff: Cutoff = DEFAULT_CUTOFF, device: Device = "auto", require_gpu: RequireGpu = False,
    memory: Memory = DEFAULT_MEMORY, threshold: Threshold = None,
    body_threshold: BodyThreshold = None, dye_threshold: DyeThreshold = None,
    body_polarity: BodyPolarity = None, dye_polarity: DyePolarity = None,
    body_dataset: BodyDataset = None, dye_dataset: DyeDataset = None, page: Page = 0,
    allow_external: AllowExternal = False, strict: Strict = False,
    retry_errors: RetryErrors = True, as_json: Json = False, quiet: Quiet = False,
):
    """Decide every pair of a manifest, one results row per pair; resumable. Exit 0 when the
    batch ran (even with error rows), 2 for a bad manifest or options."""
    from ..batching import run_batch

    options = detect_options(locals())
    with ProgressBar("batch", unit="pairs", rate=True, enabled=not quiet) as bar:
        report = run_batch(manifest, out, options, scheduler=scheduler, workers=workers,
                           retry_errors=retry_errors, progress=tally(bar))
    render_batch(report, as_json)


def tally(bar: ProgressBar):
    """The batch progress callback ``(record, done, total)``: the bar, described by the tally of
    ok, cancer and error rows so far."""
    counts = {"ok": 0, "error": 0, "cancer": 0}

    def update(record: dict | None, done: int, total: int) -> None:
        if record is not None:
            counts[record["status"]] = counts.get(record["status"], 0) + 1
            counts["cancer"] += bool(record["status"] == "ok" and record["cancer"])
        bar.update(done, total, f"batch: {counts['ok']} ok ({counts['cancer']} cancer), "
                                f"{counts['error']} errors")

    return update


def render_batch(report, as_json: bool) -> None:
    """The summary (text or JSON), then the first error rows on stderr."""
    summary = report.summary()
    if as_json:
        echo_json(summary)
    else:
        rate = summary["pairs_per_second"]
        lines = [f"batch: {summary['pairs']} pairs: {summary['ok']} ok ({summary['cancer']} "
                 f"cancer), {summary['errors']} error{'' if summary['errors'] == 1 else 's'}",
                 f"ran {summary['ran']} pairs in {summary['seconds']:.1f} s"
                 + (f" ({rate:.2f} pairs/s)" if rate else "")
                 + (f"; {summary['skipped']} already done were skipped" if summary["skipped"]
                    else "")
                 + (f"; {summary['recomputed']} recomputed (options or input files changed)"
                    if summary.get("recomputed") else "")]
        if summary.get("gpu_workers"):
            lines.append(f"workers: {summary['gpu_workers']}")
        if summary["out"]:
            lines.append(f"results: {summary['out']}")
        typer.echo("\n".join(lines))
    failed = [r for r in report.records if r["status"] == "error"]
    for record in failed[:SHOWN_ERRORS]:
        warn(f"pair {record['id']}: {record['error']}")
    if len(failed) > SHOWN_ERRORS:
        warn(f"... and {len(failed) - SHOWN_ERRORS} more error rows")
