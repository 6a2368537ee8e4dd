"""A downsampled picture of a pair: body, dye inside it and dye leaking outside, with the counts.

The image is streamed in row blocks like a detection and never held whole: each block is binned
into squares of ``scale x scale`` image pixels (one output pixel each), an output row is coloured
as soon as all its image rows have arrived, and only those few open rows are kept as integers.
Each output pixel mixes four colours by area::

    colour = bg * (1 - body - dye_out) + BODY * (body - dye_in)
             + DYE_IN * dye_in + DYE_OUT * dye_out

where ``body``, ``dye_in`` and ``dye_out`` are the shares of the square's pixels that are body,
dye inside the body and dye outside it. The same pass also counts every pixel exactly, so the
legend's numbers are the detection's numbers.

Pillow draws the legend and writes the PNG; it is optional (``pip install 'dragon-gpu[preview]'``)
and imported only here, when a preview is asked for.
"""

from .overlay import (BACKGROUND_RGB, BODY_RGB, DEFAULT_MAX_SIDE, DYE_IN_RGB, DYE_OUT_RGB,
                      LEGEND_LINES, MIN_MAX_SIDE, PANEL_RGB, SLICE_PIXELS, TEXT_RGB, Layout,
                      Overlay, members, plan_layout)
from .picture import (PICTURE_FORMATS, PreviewResult, check_output, legend_lines,
                      picture_format, render, require_pillow, write_overlay, write_picture)
from .watch import DetectPreview, preview

__all__ = ["BACKGROUND_RGB", "BODY_RGB", "DEFAULT_MAX_SIDE", "DYE_IN_RGB", "DYE_OUT_RGB",
           "DetectPreview", "LEGEND_LINES", "Layout", "MIN_MAX_SIDE", "Overlay",
           "PICTURE_FORMATS", "PANEL_RGB", "PreviewResult", "SLICE_PIXELS", "TEXT_RGB",
           "check_output", "legend_lines", "members", "picture_format", "plan_layout", "preview",
           "render", "require_pillow", "write_overlay", "write_picture"]
