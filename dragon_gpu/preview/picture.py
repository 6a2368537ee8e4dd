"""Drawing the preview: the legend under the overlay, and the picture file written whole."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from ..io._output import AtomicOutput, check_target
from ..model import Counts
from ..verdict import decide
from .overlay import (BACKGROUND_RGB, BODY_RGB, DYE_IN_RGB, DYE_OUT_RGB, PANEL_RGB, TEXT_RGB,
                      Layout, Overlay)


def require_pillow():
    """The PIL package, or a clear :class:`UsageError` that says how to install it."""
    try:
        import PIL.Image  # noqa: F401
        import PIL.ImageDraw  # noqa: F401
        import PIL.ImageFont  # noqa: F401
    except ImportError:
        raise UsageError("the preview needs Pillow, which is not installed; install it with "
                         "pip install 'dragon-gpu[preview]' (or pip install pillow)") from None
    import PIL

    return PIL


@dataclass(frozen=True)
class PreviewResult:
    """What was drawn, and the exact counts of the pair."""

    path: str
    shape: tuple[int, int]
    scale: int
    overlay_shape: tuple[int, int]
    png_shape: tuple[int, int]
    legend_height: int
    counts: Counts
    legend: list[str]
    #: the thresholds used (:class:`dragon_gpu.autothreshold.Chosen`)
    thresholds: object = None



def legend_lines(counts: Counts, shape, scale: int, body_path: str, dye_path: str,
                 cutoff: str, backend: str | None) -> list[str]:
    """The text under the picture: the verdict, the exact counts, the files and the scale."""
    if counts.body:
        verdict = decide(counts, cutoff)
        decision = (f"{'CANCER' if verdict.cancer else 'no cancer'}: dye in body "
                    f"{100 * counts.dye_in_body / counts.body:.4f}% of the body (cutoff {cutoff})")
    else:
        decision = "no verdict: the body is empty under its pixel rule"
    where = f", counted on {backend}" if backend else ""
    return [
        decision,
        f"body {counts.body:,} px   dye in body {counts.dye_in_body:,} px   "
        f"dye outside body {counts.dye_outside_body:,} px",
        f"{Path(body_path).name} + {Path(dye_path).name}: {shape[0]} x {shape[1]} px, "
        f"1 picture px = {scale} x {scale}{where}",
    ]


def render(overlay: Overlay, layout: Layout, lines: list[str]):
    """The picture as a PIL image: the overlay, then a band with the legend and the text."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = layout.png_shape
    canvas = Image.new("RGB", (width, height), PANEL_RGB)
    canvas.paste(Image.fromarray(overlay.rgb, "RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    try:
        font = ImageFont.load_default(size=layout.font_px)
    except TypeError:  # Pillow without FreeType: a fixed bitmap font
        font = ImageFont.load_default()
    step = layout.font_px + 8
    x0, y = 8, overlay.out_shape[0] + 8
    for text in lines:
        draw.text((x0, y), _fit(draw, text, font, width - 2 * x0), fill=TEXT_RGB, font=font)
        y += step
    x = x0
    box = layout.font_px
    for colour, label in ((BODY_RGB, "body"), (DYE_IN_RGB, "dye in body"),
                          (DYE_OUT_RGB, "dye outside body"), (BACKGROUND_RGB, "background")):
        draw.rectangle([x, y + 1, x + box, y + 1 + box], fill=colour, outline=TEXT_RGB)
        draw.text((x + box + 5, y), label, fill=TEXT_RGB, font=font)
        x += box + 5 + int(draw.textlength(label, font=font)) + 3 * layout.font_px // 2
    return canvas


def _fit(draw, text: str, font, room: int) -> str:
    if draw.textlength(text, font=font) <= room:
        return text
    while text and draw.textlength(text + "...", font=font) > room:
        text = text[:-1]
    return text + "..."


def write_overlay(path: Path, overlay: Overlay, layout: Layout, body_path: str, dye_path: str,
                  cutoff: str, backend: str | None, thresholds: str | None = None) -> PreviewResult:
    """Draw the legend under a complete overlay and write the picture file."""
    inputs = (body_path, dye_path)
    if not overlay.complete:
        raise RuntimeError("the overlay is missing rows")
    lines = legend_lines(overlay.counts, overlay.shape, overlay.scale, body_path, dye_path, cutoff,
                         backend)
    if thresholds:  # the legend has room for a fourth line (LEGEND_LINES)
        lines.append(thresholds)
    image = render(overlay, layout, lines)
    write_picture(image, path, inputs)
    return PreviewResult(str(path), overlay.shape, overlay.scale, overlay.out_shape,
                         layout.png_shape, layout.legend_height, overlay.counts, lines)


#: Picture formats by suffix, with Pillow's save options: lossless where the format allows it.
PICTURE_FORMATS = {".png": ("PNG", {"optimize": False}), ".jpg": ("JPEG", {"quality": 92}),
                   ".jpeg": ("JPEG", {"quality": 92}), ".tif": ("TIFF", {}),
                   ".tiff": ("TIFF", {}), ".webp": ("WEBP", {"lossless": True}),
                   ".bmp": ("BMP", {})}


def picture_format(path) -> tuple[str, dict]:
    """Pillow's format name and save options for the picture ``path``, from its suffix.

    Raises
    ------
    UsageError
        For a suffix that names no format written here (or one this Pillow cannot write).
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in PICTURE_FORMATS:
        shown = f"the suffix {suffix!r}" if suffix else "a name without a suffix"
        raise UsageError(f"cannot tell the picture format from {shown}; end the name with "
                         f"{', '.join(PICTURE_FORMATS)}", os.fspath(path))
    name, options = PICTURE_FORMATS[suffix]
    PIL = require_pillow()
    if name not in PIL.Image.SAVE:
        PIL.Image.init()
    if name not in PIL.Image.SAVE:
        raise UsageError(f"this Pillow cannot write {name} pictures; use .png", os.fspath(path))
    return name, dict(options)


def check_output(path: Path, inputs=()) -> None:
    """Refuse, before any work is done, a picture that cannot be written: an unknown suffix, a
    folder that does not exist, an existing directory, FIFO or device, or one of the inputs."""
    picture_format(path)
    check_target(path, inputs, hint="give a picture file name such as overlay.png")


def write_picture(image, path: Path, inputs=()) -> None:
    """Save in the format of the suffix, to a temporary name then renamed (never half a file)."""
    name, options = picture_format(path)
    hint = "give a picture file name such as overlay.png"
    with AtomicOutput(path, inputs, hint=hint) as out:
        image.save(out.tmp, format=name, **options)
