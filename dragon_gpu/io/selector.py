"""The plane selector: ``IMAGE#c=1,z=0`` names one 2-D plane of a multi-dimensional image.

Body and dye are often two channels of one image. Everywhere a body or dye path is accepted
(``detect``, ``preview``, ``info``, batch manifests), a suffix after the last ``#`` picks the plane:

* ``c=N`` (or ``c=NAME``, an OME channel label), ``z=N``, ``t=N``: an index along that axis;
  any axis name of the image works the same way (``dim0=N`` for an unnamed axis);
* ``series=N``: the series of a multi-series (OME-)TIFF file;
* ``label=V``: for a label image, only label value ``V`` is a member (default: every label > 0).

Indices start at 0. An existing file whose name contains ``#`` is read as named, without a
selector. Every axis other than the rows and columns that has more than one element must be
selected; the readers refuse the rest with a message listing the image's axes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ..errors import UsageError

_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+?)\s*$")
#: keys that are not axis names.
SPECIAL = ("series", "label")


@dataclass(frozen=True)
class Selection:
    """What the selector asked for: axis name -> index (int) or channel label (str)."""

    axes: dict = field(default_factory=dict)
    series: int | None = None
    label: int | None = None
    text: str = ""

    def __bool__(self) -> bool:
        return bool(self.axes) or self.series is not None or self.label is not None


def is_url(path: str) -> bool:
    """True for ``http://`` and ``https://`` locations."""
    return path.lower().startswith(("http://", "https://"))


def split_selector(path) -> tuple[str, Selection]:
    """``(location, selection)`` of ``IMAGE#SELECTOR``; a plain path has an empty selection.

    Raises
    ------
    UsageError
        If the selector is not a comma-separated list of ``key=value`` items.
    """
    path = os.fspath(path)
    if "#" not in path or (not is_url(path) and os.path.exists(path)):
        return path, Selection()
    location, text = path.rsplit("#", 1)
    if not text.strip():
        return location, Selection()
    axes: dict = {}
    series = label = None
    for item in text.split(","):
        m = _ITEM.match(item)
        if not m:
            raise UsageError(f"selector {text!r}: expected key=value items such as 'c=1' or "
                             "'c=0,z=3', separated by commas", location)
        key, value = m.group(1).lower(), m.group(2)
        if key in axes or (key == "series" and series is not None) or (
                key == "label" and label is not None):
            raise UsageError(f"selector {text!r} names {key!r} twice", location)
        if key in SPECIAL:
            if not re.fullmatch(r"\d+", value):
                raise UsageError(f"selector {text!r}: {key} must be a non-negative integer, "
                                 f"got {value!r}", location)
            if key == "series":
                series = int(value)
            else:
                label = int(value)
        else:
            axes[key] = int(value) if re.fullmatch(r"\d+", value) else value
    return location, Selection(axes, series, label, text)


def describe_axes(names, shape) -> str:
    """``t=1, c=2, z=1, y=512, x=512``: the axes of an image with their sizes."""
    return ", ".join(f"{n}={s}" for n, s in zip(names, shape))


def plane_index(names: list[str], shape: tuple[int, ...], selection: Selection,
                where: str, channel_labels: list[str] | None = None) -> tuple[int, ...]:
    """Indices of the selected plane along every axis but the last two (rows, columns).

    Axes of size 1 need no selection. ``c=NAME`` matches ``channel_labels`` (OME channel names).

    Raises
    ------
    UnsupportedInputError
        If the selector names an axis the image lacks, an index out of range, or leaves an axis
        of size > 1 unselected; the message lists the image's axes.
    """
    from ..errors import UnsupportedInputError

    lower = [n.lower() for n in names]
    listing = describe_axes(names, shape)
    for key in selection.axes:
        if key not in lower[:-2]:
            raise UnsupportedInputError(
                f"selector {selection.text!r}: the image has no axis {key!r} to select (axes: "
                f"{listing}; rows and columns are the last two)", where)
    index = []
    for name, size in zip(lower[:-2], shape[:-2]):
        value = selection.axes.get(name)
        if value is None:
            if size > 1:
                raise UnsupportedInputError(
                    f"has axes {listing}; select one plane with a suffix such as "
                    f"'#{name}=0' (every axis but the last two with more than one element must be "
                    "selected)", where)
            index.append(0)
            continue
        if isinstance(value, str):
            labels = [str(c) for c in (channel_labels or [])]
            if name != "c" or value not in labels:
                known = f" (channel names: {', '.join(labels)})" if labels else ""
                raise UnsupportedInputError(
                    f"selector {selection.text!r}: no channel named {value!r}{known}", where)
            value = labels.index(value)
        if not 0 <= value < size:
            raise UnsupportedInputError(
                f"selector {selection.text!r}: {name}={value} is outside the axis {name} of "
                f"{size} (axes: {listing})", where)
        index.append(value)
    return tuple(index)
