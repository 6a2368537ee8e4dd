"""The ``dragon-gpu`` command line (typer).

A command parses its options, makes one library call and renders the result. This module is the
only place that knows about exit codes and terminals: library errors (:class:`DragonError`) become
exit 2 with one line on stderr, Ctrl-C becomes exit 130 and SIGTERM exit 143, anything else is a
bug (exit 1).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from . import __version__
from ._signals import EXIT_TERMINATED, Terminated, terminate_as_interrupt
from .errors import DragonError, UsageError
from .io.base import Polarity

app = typer.Typer(
    name="dragon-gpu",
    help="Decide, exactly and at gigapixel scale, whether lit dye covers more than a cutoff of a "
         "parasite's body. Images are streamed in row blocks; a GPU is used when one is usable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def printable(text: str) -> str:
    """``text`` with control characters escaped (a newline in a path reads ``\\n``), so that a
    message stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> "typer.Exit":
    typer.echo(f"dragon-gpu: {printable(message)}", err=True)
    return typer.Exit(code)


#: The flags of library parameters whose flag is not ``--`` and the name with dashes, by command.
_FLAGS = {"dataset": "--body-dataset / --dye-dataset"}
_COMMAND_FLAGS = {"info": {"dataset": "--dataset"}, "convert": {"dataset": "--dataset"}}


def flag_of(param: str, command: str | None = None) -> str:
    """The command-line flag of the library parameter ``param`` in ``command``."""
    named = _COMMAND_FLAGS.get(command, {}).get(param) or _FLAGS.get(param)
    return named or "--" + param.replace("_", "-")


def cli_errors(func):
    """Turn library errors into exit 2, Ctrl-C into exit 130 and SIGTERM into exit 143, each with
    one line on stderr (SIGTERM runs the cleanup Ctrl-C runs: see :mod:`dragon_gpu._signals`).
    The library names parameters; the line names them as this command's flags."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            with terminate_as_interrupt():
                return func(*args, **kwargs)
        except DragonError as exc:
            message = exc.format(functools.partial(flag_of, command=func.__name__))
            raise fail(f"error: {message}") from None
        except Terminated:
            raise fail("terminated", EXIT_TERMINATED) from None
        except KeyboardInterrupt:
            raise fail("interrupted", EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise typer.Exit(0) from None

    return wrapper


def parse_memory(text: str) -> int:
    """Bytes from ``"1GiB"``, ``"512M"``, ``"1.5G"`` or a plain number of bytes (powers of 1024),
    as :func:`dragon_gpu.numbers.parse_size` reads them."""
    from .numbers import parse_size

    return parse_size(text, param="memory")


# Options that detect, batch and preview share: the pixel rules and the HDF5 safety switch. A
# factory per option, so each command gets its own OptionInfo and the help is written once.
def _threshold_option(role: str | None = None):
    if role is None:
        return typer.Option(None, metavar="LEVEL|METHOD",
                            help="Gray level splitting dark from bright in 8/16-bit images "
                                 "(default: half the range, 128 for uint8), or a method computed "
                                 "exactly on each gray image's histogram, as scikit-image's "
                                 "threshold_<method>: otsu, li, triangle, yen, isodata, mean.")
    extra = "; for pairs of different bit depths" if role == "body" else ""
    return typer.Option(None, metavar="LEVEL|METHOD",
                        help=f"Threshold (a gray level or a method) for the {role} image only "
                             f"(overrides --threshold{extra}).")


def _polarity_option(role: str):
    default = "dark" if role == "body" else "bright"
    what = "body pixels are members" if role == "body" else "dye pixels are lit"
    return typer.Option(None, case_sensitive=False,
                        help=f"Override which {what} (default {default}; masks: set).")


def _allow_external_option():
    return typer.Option(False, "--allow-external",
                        help="Let HDF5 follow external links and read external or virtual "
                             "storage (refused by default: inputs are untrusted).")


def _strict_option():
    return typer.Option(False, "--strict",
                        help="Refuse Zarr inputs with absent chunks (by default they read as the "
                             "array's fill value, and the JSON warnings say how many).")


def _version(value: bool):
    if value:
        typer.echo(f"dragon-gpu {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    pass


class _ProgressBar:
    """A rich progress bar on stderr, shown only when stderr is a terminal."""

    def __init__(self, description: str, enabled: bool = True, console=None):
        self._console = console  # a rich Console to draw on instead of stderr (tests)
        self.enabled = enabled and (console is not None or sys.stderr.isatty())
        self._progress = None
        self._task = None
        self.description = description

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)

            # Each time says what it is: "elapsed 0:00:12 remaining 0:01:40".
            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("rows  elapsed"),
                                      TimeElapsedColumn(), TextColumn("remaining"),
                                      TimeRemainingColumn(),
                                      console=self._console or Console(stderr=True),
                                      transient=True)
            self._progress.__enter__()
        return self

    def update(self, done: int, total: int) -> None:
        if self._progress is None:
            return
        if self._task is None:
            self._task = self._progress.add_task(self.description, total=total)
        self._progress.update(self._task, completed=done)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _render_detect(result: dict, as_json: bool) -> None:
    if as_json:  # the warnings are in the object
        typer.echo(json.dumps(result))
        return
    verdict = "CANCER" if result["cancer"] else "no cancer"
    frac = "n/a" if result["fraction"] is None else f"{100 * result['fraction']:.4f}%"
    lines = [
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
    ]
    typer.echo("\n".join(lines))
    for w in result["warnings"]:
        typer.echo(f"dragon-gpu: warning: {printable(w)}", err=True)


def _thresholds_line(result: dict) -> str:
    parts = []
    for role in ("body", "dye"):
        t, method = result.get(f"{role}_threshold"), result.get(f"{role}_threshold_method")
        parts.append(f"{role} none (no gray levels)" if t is None else f"{role} {t} ({method})")
    return "thresholds: " + ", ".join(parts)


@app.command()
@cli_errors
def detect(
    body: str = typer.Argument(..., help="Body image (TIFF, HDF5, Zarr folder/zip/URL; "
                                         "IMAGE#c=0 names a channel): the parasite is dark, or "
                                         "set in a mask."),
    dye: str = typer.Argument(..., help="Dye image of the same shape (IMAGE#c=1 names a "
                                        "channel): lit dye is bright, or set in a mask."),
    cutoff: str = typer.Option("0.10", help="Cancer when dye in body > cutoff x body, strictly. "
                                            "A decimal (0.10) or a percent (10%), read exactly."),
    device: str = typer.Option("auto", help="auto (GPU 0 if usable, else CPU), cpu, N, or N,M "
                                            "to split rows across GPUs."),
    require_gpu: bool = typer.Option(False, "--require-gpu",
                                     help="Exit 2 instead of falling back to the CPU."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    memory: str = typer.Option("1GiB", help="Memory budget for buffers, e.g. 512MiB or 4GiB."),
    threshold: Optional[str] = _threshold_option(),
    body_threshold: Optional[str] = _threshold_option("body"),
    dye_threshold: Optional[str] = _threshold_option("dye"),
    body_polarity: Optional[Polarity] = _polarity_option("body"),
    dye_polarity: Optional[Polarity] = _polarity_option("dye"),
    body_dataset: Optional[str] = typer.Option(
        None, help="HDF5 dataset or Zarr array of the body image."),
    dye_dataset: Optional[str] = typer.Option(
        None, help="HDF5 dataset or Zarr array of the dye image."),
    page: int = typer.Option(0, min=0, help="TIFF page (IFD) to read, in both files."),
    allow_external: bool = _allow_external_option(),
    strict: bool = _strict_option(),
    block_rows: Optional[int] = typer.Option(None, min=1, help="Rows per block (default: planned "
                                                                "from --memory and the files)."),
    decode: str = typer.Option(
        "auto", help="Where compressed strips and chunks are inflated: auto (on the GPU where the "
                     "engine is CUDA and the codec is deflate, zstd or LZ4; else the CPU), cpu, "
                     "or gpu (exit 2 when an input cannot be)."),
    gpu_decoder: str = typer.Option(
        "nvcomp", help="What inflates LZ4 on the GPU: nvcomp or dali (the dali extra). "
                       "Deflate and zstd always use nvCOMP."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    preview: Optional[Path] = typer.Option(
        None, "--preview", metavar="PNG", help="Also draw the overlay picture (as dragon-gpu "
                                               "preview does) from the same pass, into this file "
                                               "(.png, .jpg, .tif, .webp or .bmp)."),
    max_side: int = typer.Option(2048, "--max-side", help="Longest side of the --preview "
                                                          "picture, legend included."),
    scheduler: Optional[str] = typer.Option(
        None, help="Split the pair into row-range tasks on a Dask cluster: 'local' starts one on "
                   "this machine, an address (tcp://host:8786) joins a running one. Needs "
                   "dragon-gpu\\[dask]."),  # \[ : a bracket, not rich markup
    workers: Optional[int] = typer.Option(None, min=1, help="Worker processes of --scheduler "
                                                             "local (default: the usable cores)."),
):
    """Count body and dye-in-body pixels of one pair and decide. Exit 0 with a verdict, 2 on bad
    input."""
    from .pipeline import DetectOptions, detect as run_detect

    options = DetectOptions(
        cutoff=cutoff, device=device, require_gpu=require_gpu, memory=parse_memory(memory),
        threshold=threshold, body_threshold=body_threshold,
        dye_threshold=dye_threshold, body_polarity=body_polarity, dye_polarity=dye_polarity,
        body_dataset=body_dataset, dye_dataset=dye_dataset, page=page,
        allow_external=allow_external, block_rows=block_rows, decode=_choice(
            "--decode", decode, ("auto", "cpu", "gpu")), gpu_decoder=_choice(
            "--gpu-decoder", gpu_decoder, ("nvcomp", "dali")), strict=strict)
    if workers is not None and scheduler is None:
        raise UsageError("--workers needs --scheduler (a local detect runs in one process)")
    if preview is not None and scheduler is not None:
        raise UsageError("--preview draws from the local pass; it cannot be combined with "
                         "--scheduler (run dragon-gpu preview separately)")
    picture = None
    if preview is not None:
        from .preview import DetectPreview

        picture = DetectPreview(preview, max_side=max_side, inputs=(body, dye))
    with _ProgressBar("detect", enabled=not quiet) as bar:
        if scheduler is None:
            result = run_detect(body, dye, options, progress=bar.update,
                                watch=picture.watch if picture else None)
        else:
            from .distributed import detect as run_distributed

            result = run_distributed(body, dye, options, scheduler=scheduler, workers=workers,
                                     progress=bar.update)
    if picture is not None:
        drawn = picture.write(result)
        typer.echo(f"dragon-gpu: wrote {drawn.path} ({drawn.png_shape[1]} x {drawn.png_shape[0]} "
                   "pixels)", err=True)
    _render_detect(result.to_dict(), as_json)


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` lower-cased when it is one of ``allowed``; else a one-line usage error."""
    text = str(value).strip().lower()
    if text not in allowed:
        raise UsageError(f"{option}: expected {', '.join(allowed[:-1])} or {allowed[-1]}, got "
                         f"{value!r}")
    return text


class _BatchProgress:
    """Pairs done, pairs/s, ETA and the ok/error/cancer tally, on stderr (a terminal only)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and sys.stderr.isatty()
        self._progress = None
        self._task = None
        self.tally = {"ok": 0, "error": 0, "cancer": 0}

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            from rich.text import Text

            class RateColumn(ProgressColumn):
                def render(self, task):
                    speed = task.finished_speed or task.speed
                    return Text("-- pairs/s" if speed is None else f"{speed:.2f} pairs/s")

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                      MofNCompleteColumn(), TextColumn("pairs"), RateColumn(),
                                      TextColumn("elapsed"), TimeElapsedColumn(),
                                      TextColumn("remaining"),
                                      TimeRemainingColumn(), console=Console(stderr=True),
                                      transient=True)
            self._progress.__enter__()
        return self

    def update(self, record: dict | None, done: int, total: int) -> None:
        if record is not None:
            self.tally[record["status"]] = self.tally.get(record["status"], 0) + 1
            self.tally["cancer"] += bool(record["status"] == "ok" and record["cancer"])
        if self._progress is None:
            return
        description = (f"batch: {self.tally['ok']} ok ({self.tally['cancer']} cancer), "
                       f"{self.tally['error']} errors")
        if self._task is None:
            self._task = self._progress.add_task(description, total=total)
        self._progress.update(self._task, completed=done, description=description)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)


def _render_batch(report, as_json: bool) -> None:
    summary = report.summary()
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        rate = summary["pairs_per_second"]
        lines = [f"batch: {summary['pairs']} pairs: {summary['ok']} ok ({summary['cancer']} "
                 f"cancer), {summary['errors']} error{'' if summary['errors'] == 1 else 's'}",
                 f"ran {summary['ran']} pairs in {summary['seconds']:.1f} s"
                 + (f" ({rate:.2f} pairs/s)" if rate else "")
                 + (f"; {summary['skipped']} already done were skipped" if summary["skipped"]
                    else "")]
        if summary.get("gpu_workers"):
            lines.append(f"workers: {summary['gpu_workers']}")
        if summary["out"]:
            lines.append(f"results: {summary['out']}")
        typer.echo("\n".join(lines))
    failed = [r for r in report.records if r["status"] == "error"]
    for record in failed[:10]:
        typer.echo(f"dragon-gpu: warning: pair {record['id']}: {record['error']}", err=True)
    if len(failed) > 10:
        typer.echo(f"dragon-gpu: warning: ... and {len(failed) - 10} more error rows", err=True)


@app.command()
@cli_errors
def batch(
    manifest: Path = typer.Argument(..., help="CSV manifest with a header naming body,dye (paths "
                                              "relative to the manifest's folder) and optionally "
                                              "id (default: the body path)."),
    out: Path = typer.Option(..., "--out", "-o", help="RESULTS.csv: one row per pair, appended "
                                                      "and flushed as pairs finish; pairs already "
                                                      "ok in it are skipped, so a rerun resumes."),
    scheduler: Optional[str] = typer.Option(
        None, help="Run pairs on a Dask cluster: 'local' starts one on this machine, an address "
                   "(tcp://host:8786) joins a running one. Default: local worker processes."),
    workers: Optional[int] = typer.Option(None, min=1, help="Worker processes (local pool or "
                                                             "--scheduler local); default: the "
                                                             "usable cores, or 2 per GPU with "
                                                             "the CUDA engine."),
    cutoff: str = typer.Option("0.10", help="Cancer when dye in body > cutoff x body, strictly. "
                                            "A decimal (0.10) or a percent (10%), read exactly."),
    device: str = typer.Option("auto", help="auto (GPU 0 if usable, else CPU), cpu, N, or N,M; "
                                            "with --scheduler local and dask-cuda, the GPUs that "
                                            "get one worker each."),
    require_gpu: bool = typer.Option(False, "--require-gpu",
                                     help="A pair fails instead of falling back to the CPU."),
    memory: str = typer.Option("1GiB", help="Memory budget of each worker, e.g. 512MiB or 4GiB."),
    threshold: Optional[str] = _threshold_option(),
    body_threshold: Optional[str] = _threshold_option("body"),
    dye_threshold: Optional[str] = _threshold_option("dye"),
    body_polarity: Optional[Polarity] = _polarity_option("body"),
    dye_polarity: Optional[Polarity] = _polarity_option("dye"),
    body_dataset: Optional[str] = typer.Option(None, help="HDF5 dataset of every body image."),
    dye_dataset: Optional[str] = typer.Option(None, help="HDF5 dataset of every dye image."),
    page: int = typer.Option(0, min=0, help="TIFF page (IFD) to read, in every file."),
    allow_external: bool = _allow_external_option(),
    strict: bool = _strict_option(),
    retry_errors: bool = typer.Option(True, "--retry-errors/--keep-errors",
                                      help="Run again the pairs that have an error row in --out "
                                           "(default), or keep those rows as they are."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Decide every pair of a manifest, one results row per pair; resumable. Exit 0 when the
    batch ran (even with error rows), 2 for a bad manifest or options."""
    from .batching import run_batch
    from .pipeline import DetectOptions

    options = DetectOptions(
        cutoff=cutoff, device=device, require_gpu=require_gpu, memory=parse_memory(memory),
        threshold=threshold, body_threshold=body_threshold,
        dye_threshold=dye_threshold, body_polarity=body_polarity, dye_polarity=dye_polarity,
        body_dataset=body_dataset, dye_dataset=dye_dataset, page=page,
        allow_external=allow_external, strict=strict)
    with _BatchProgress(enabled=not quiet) as bar:
        report = run_batch(manifest, out, options, scheduler=scheduler, workers=workers,
                           retry_errors=retry_errors, progress=bar.update)
    _render_batch(report, as_json)


@app.command()
@cli_errors
def info(
    file: str = typer.Argument(..., help="A TIFF or HDF5 image or a Zarr store (folder, .zip, "
                                         "URL), optionally with a plane selector (IMAGE#c=1)."),
    dataset: Optional[str] = typer.Option(None, help="HDF5 dataset or Zarr array/group path "
                                                     "(default: the only 2-D one)."),
    page: int = typer.Option(0, min=0, help="TIFF page (IFD)."),
    allow_external: bool = typer.Option(False, "--allow-external",
                                        help="Follow HDF5 external links and storage."),
    sample: bool = typer.Option(True, "--sample/--no-sample",
                                help="Decode a sample of rows to measure the decode cost."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    histogram: bool = typer.Option(False, "--histogram",
                                   help="Also stream the exact histogram of a gray image and "
                                        "print its summary and the threshold each method "
                                        "(otsu, li, ...) would choose (reads the whole file)."),
    memory: str = typer.Option("1GiB", help="Memory budget of --histogram's pass."),
):
    """Describe an input: shape, bit depth, layout, compression, pixel rules, decode cost."""
    from .inspect import describe_file

    facts = describe_file(file, dataset=dataset, page=page, allow_external=allow_external,
                          sample=sample)
    if histogram:
        from .autothreshold import histogram_of
        from .thresholds import describe_histogram

        hist, _ = histogram_of(file, page=page, dataset=dataset, allow_external=allow_external,
                               memory=parse_memory(memory))
        facts["histogram"] = describe_histogram(hist)
    if as_json:
        typer.echo(json.dumps(facts))
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


@app.command()
@cli_errors
def demo(
    size: int = typer.Option(2048, min=64, help="Side of the generated square pair, in pixels."),
    seed: int = typer.Option(7, help="Random seed of the generated pair."),
    device: str = typer.Option("auto", help="Device for detection, as in detect."),
):
    """Generate a small realistic pair in a temporary folder, detect it, and print both."""
    import tempfile

    from .pipeline import detect as run_detect
    from .simulate import generate

    with tempfile.TemporaryDirectory(prefix="dragon-gpu-demo-") as tmp:
        typer.echo(f"generating a {size} x {size} pair (seed {seed}) in {tmp} ...")
        t0 = time.perf_counter()
        truth = generate(tmp, height=size, width=size, seed=seed, kind="typical")
        typer.echo(f"generated in {time.perf_counter() - t0:.2f} s: body.tif, dye.tif, truth.json")
        result = run_detect(Path(tmp) / "body.tif", Path(tmp) / "dye.tif", device=device)
        got = result.to_dict()
        _render_detect(got, as_json=False)
        keys = ("body_pixels", "dye_in_body_pixels", "dye_outside_body_pixels", "dye_pixels",
                "cancer")
        agree = all(got[k] == truth[k] for k in keys)
        typer.echo(f"ground truth: body {truth['body_pixels']}, dye in body "
                   f"{truth['dye_in_body_pixels']}, cancer {truth['cancer']} -> detect "
                   f"{'matches the truth exactly' if agree else 'DIFFERS FROM THE TRUTH'}")
        if not agree:
            raise typer.Exit(1)


# -- generate and convert -------------------------------------------------------------------------
class GenerateKind(str, Enum):
    typical = "typical"
    cancer = "cancer"
    healthy = "healthy"
    boundary = "boundary"


class OutputFormat(str, Enum):
    tiff = "tiff"
    hdf5 = "hdf5"
    zarr = "zarr"
    ome_zarr = "ome-zarr"


class GenerateEncoding(str, Enum):
    packed = "packed"
    u8 = "u8"


def _render_truth(truth: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(truth))
        return
    verdict = "CANCER" if truth["cancer"] else "no cancer"
    frac = "n/a" if truth["fraction"] is None else f"{100 * truth['fraction']:.4f}%"
    kind = truth["kind"] + (f" (drawn: {truth['drawn_kind']})" if truth["kind"] == "typical" else "")
    typer.echo("\n".join([
        f"wrote {truth['body_path']}, {truth['dye_path']} and truth.json",
        f"kind: {kind}, seed {truth['seed']}, shape {truth['shape'][0]} x {truth['shape'][1]}",
        f"truth: {verdict} (dye in body {frac} of the body)",
        f"body pixels: {truth['body_pixels']}",
        f"dye pixels in body: {truth['dye_in_body_pixels']}",
        f"dye pixels outside body: {truth['dye_outside_body_pixels']}",
        f"generated in {truth['seconds']:.2f} s",
    ]))


@app.command()
@cli_errors
def generate(
    outdir: Path = typer.Argument(..., help="Folder for body.tif + dye.tif (or body.h5 + dye.h5) "
                                            "and truth.json; created if missing."),
    size: Optional[int] = typer.Option(None, min=64, help="Side of a square pair in pixels "
                                                          "(default 2048 when no --height/--width)."),
    height: Optional[int] = typer.Option(None, min=64, help="Rows of the pair (with --width)."),
    width: Optional[int] = typer.Option(None, min=64, help="Columns of the pair (with --height)."),
    seed: int = typer.Option(0, min=0, help="Random seed: the same seed and options give the "
                                            "same bytes."),
    kind: GenerateKind = typer.Option(GenerateKind.typical, case_sensitive=False,
                                      help="cancer (dye in body clearly above 10%), healthy "
                                           "(clearly below), boundary (exactly 10%, not cancer), "
                                           "typical (cancer with probability --cancer-rate)."),
    fmt: OutputFormat = typer.Option(OutputFormat.tiff, "--format", case_sensitive=False,
                                     help="tiff (1-bit TIFF), hdf5 (dataset 'mask'), zarr "
                                          "(body.zarr + dye.zarr, Zarr v3) or ome-zarr (one "
                                          "two-channel image.ome.zarr, body also as a label "
                                          "image)."),
    encoding: GenerateEncoding = typer.Option(
        GenerateEncoding.packed, case_sensitive=False,
        help="packed: 1 bit a pixel; u8: 8-bit images (body 0 on 255, dye 255 on 0)."),
    compression: Optional[str] = typer.Option(
        None, help="TIFF: deflate (default), lzw, packbits, zstd, none. HDF5: gzip (default), "
                   "lzf, lz4, zstd, none."),
    cancer_rate: float = typer.Option(0.001, min=0.0, max=1.0,
                                      help="Prevalence of cancer for --kind typical."),
    speckle: float = typer.Option(2e-4, min=0.0, max=0.01,
                                  help="Share of pixels lit by speckle noise in the dye image."),
    rows_per_strip: Optional[int] = typer.Option(
        None, "--rows-per-strip", "--chunk-rows", min=1,
        help="Rows of a TIFF strip / HDF5 chunk (default: about 1 MiB of raw rows); Zarr: the "
             "chunk side (default 1024)."),
    levels: int = typer.Option(1, min=1, max=16, help="OME-Zarr pyramid levels (each half the "
                                                     "size of the one above)."),
    as_json: bool = typer.Option(False, "--json", help="Print truth.json's object on stdout."),
    force: bool = typer.Option(False, "--force", help="Replace a pair already in OUTDIR "
                                                      "(refused without it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar and no summary "
                                                            "(--json still prints its object)."),
):
    """Generate a realistic body/dye pair with exact ground truth (truth.json), streaming. The
    pair is written to temporaries and published whole or not at all."""
    from .simulate import generate as run_generate

    if size is not None and (height is not None or width is not None):
        raise UsageError("give either --size or --height and --width, not both")
    if (height is None) != (width is None):
        raise UsageError("--height and --width go together")
    if height is None:
        height = width = size or 2048
    if fmt in (OutputFormat.zarr, OutputFormat.ome_zarr):
        from .zarr_generate import generate_zarr as run_generate
        extra = {"levels": levels}
    elif levels != 1:
        raise UsageError("--levels: a pyramid needs --format ome-zarr")
    else:
        extra = {}
    with _ProgressBar("generate", enabled=not quiet) as bar:
        truth = run_generate(outdir, height=height, width=width, seed=seed, kind=kind.value,
                             fmt=fmt.value, encoding=encoding.value, compression=compression,
                             cancer_rate=cancer_rate, speckle=speckle,
                             rows_per_strip=rows_per_strip, progress=bar.update,
                             force=force, **extra)
    if as_json or not quiet:
        _render_truth(truth, as_json)


class ConvertEncoding(str, Enum):
    packed = "packed"
    u8 = "u8"
    u16 = "u16"


@app.command()
@cli_errors
def convert(
    src: str = typer.Argument(..., help="Input image (TIFF, HDF5 or Zarr; IMAGE#c=1 names a "
                                        "channel)."),
    dst: Path = typer.Argument(..., help="Output (.tif/.tiff, .h5/.hdf5, .zarr, .ome.zarr, or "
                                         "--format)."),
    fmt: Optional[OutputFormat] = typer.Option(None, "--format", case_sensitive=False,
                                               help="Output format (default: from the suffix)."),
    encoding: Optional[ConvertEncoding] = typer.Option(
        None, case_sensitive=False,
        help="packed (1 bit a pixel), u8 or u16 (default: packed for 1-bit and mask inputs, "
             "else the input's bit depth)."),
    compression: Optional[str] = typer.Option(
        None, help="TIFF: deflate (default), lzw, packbits, zstd, none. HDF5: gzip (default), "
                   "lzf, lz4, zstd, none. Zarr: zstd (default), gzip, blosc, none."),
    rows_per_strip: Optional[int] = typer.Option(
        None, "--rows-per-strip", "--chunk-rows", min=1,
        help="Rows of a TIFF strip / HDF5 chunk (default: about 1 MiB of raw rows); Zarr: the "
             "chunk side (default 1024)."),
    levels: int = typer.Option(1, min=1, max=16, help="OME-Zarr pyramid levels: the full "
                                                     "resolution and levels-1 halvings."),
    polarity: Optional[Polarity] = typer.Option(
        None, case_sensitive=False,
        help="Between a mask and an image: members are dark (a body) or bright (lit dye). "
             "Required for such conversions, except a 1-bit TIFF to a mask (default: its set "
             "bits are the members, as generate writes them)."),
    threshold: Optional[int] = typer.Option(
        None, help="Gray inputs to 1 bit: brightness from which a pixel is white "
                   "(default: half the range, 128 for uint8, as detect)."),
    dataset: Optional[str] = typer.Option(None, help="HDF5 dataset of the input (default: the "
                                                     "only 2-D one)."),
    out_dataset: str = typer.Option("mask", help="HDF5 dataset name of the output."),
    page: int = typer.Option(0, min=0, help="TIFF page (IFD) of the input."),
    allow_external: bool = typer.Option(False, "--allow-external",
                                        help="Let an HDF5 input follow external links/storage."),
    memory: str = typer.Option("1GiB", help="Memory budget for buffers, e.g. 512MiB or 4GiB; a "
                                            "file whose strips cannot be decoded within it is "
                                            "refused."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Re-encode one image (format, bit depth, packing, compression, strip rows), streaming."""
    from .convert import convert as run_convert

    with _ProgressBar("convert", enabled=not quiet) as bar:
        result = run_convert(src, dst, fmt=None if fmt is None else fmt.value,
                             encoding=None if encoding is None else encoding.value,
                             compression=compression, segment_rows=rows_per_strip,
                             polarity=polarity, threshold=threshold, page=page, dataset=dataset,
                             out_dataset=out_dataset, allow_external=allow_external,
                             memory=parse_memory(memory), progress=bar.update, levels=levels)
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"wrote {result['output']} ({result['format']}, {result['encoding']}, "
               f"{result['compression']}): {result['output_bytes']} bytes from "
               f"{result['input_bytes']} in {result['seconds']:.2f} s\n"
               f"pixels: {result['mapping']}")


@app.command()
@cli_errors
def preview(
    body: str = typer.Argument(..., help="Body image (TIFF, HDF5 or Zarr; IMAGE#c=0 names a "
                                         "channel)."),
    dye: str = typer.Argument(..., help="Dye image of the same shape (IMAGE#c=1 names a "
                                        "channel)."),
    output: Path = typer.Option(..., "--output", "-o", metavar="PNG",
                                help="The picture to write; the suffix names the format: .png, "
                                     ".jpg, .tif, .webp or .bmp (written to a temporary name, "
                                     "then renamed)."),
    max_side: int = typer.Option(2048, "--max-side", help="Longest side of the picture in "
                                                          "pixels, legend included (at least "
                                                          "256)."),
    cutoff: str = typer.Option("0.10", help="Cutoff of the verdict shown in the legend."),
    memory: str = typer.Option("1GiB", help="Memory budget for buffers, e.g. 512MiB or 4GiB."),
    threshold: Optional[str] = _threshold_option(),
    body_threshold: Optional[str] = _threshold_option("body"),
    dye_threshold: Optional[str] = _threshold_option("dye"),
    body_polarity: Optional[Polarity] = _polarity_option("body"),
    dye_polarity: Optional[Polarity] = _polarity_option("dye"),
    body_dataset: Optional[str] = typer.Option(
        None, help="HDF5 dataset or Zarr array of the body image."),
    dye_dataset: Optional[str] = typer.Option(
        None, help="HDF5 dataset or Zarr array of the dye image."),
    page: int = typer.Option(0, min=0, help="TIFF page (IFD) to read, in both files."),
    allow_external: bool = _allow_external_option(),
    strict: bool = _strict_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Draw a downsampled overlay of a pair (body, dye inside it, dye outside it) with a legend
    and the exact counts, streaming the images."""
    from .pipeline import DetectOptions
    from .preview import preview as draw_preview

    options = DetectOptions(
        cutoff=cutoff, device="cpu", memory=parse_memory(memory), threshold=threshold,
        body_threshold=body_threshold, dye_threshold=dye_threshold, body_polarity=body_polarity,
        dye_polarity=dye_polarity, body_dataset=body_dataset, dye_dataset=dye_dataset, page=page,
        allow_external=allow_external, strict=strict)
    with _ProgressBar("preview", enabled=not quiet) as bar:
        result = draw_preview(body, dye, output, options, max_side=max_side, progress=bar.update)
    typer.echo(f"wrote {result.path}: {result.png_shape[1]} x {result.png_shape[0]} pixels, one "
               f"pixel = {result.scale} x {result.scale} image pixels")
    for line in result.legend:
        typer.echo(line)


def main() -> None:
    """Console-script entry point.

    Runs the app outside click's standalone mode so that a usage error (a bad option value, a
    missing argument) is one line on stderr and exit 2, like every other bad input, instead of a
    framed panel.
    """
    try:
        code = app(prog_name="dragon-gpu", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (typer vendors click)
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare `dragon-gpu`: the help is the answer
            typer.echo(exc.format_message(), err=True)
        else:
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            message = " ".join(exc.format_message().split())
            typer.echo(f"dragon-gpu: error: {message}{hint}", err=True)
        sys.exit(exc.exit_code)
    except Terminated:
        typer.echo("dragon-gpu: terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("dragon-gpu: interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
