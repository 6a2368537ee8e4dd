"""OME-NGFF (OME-Zarr) metadata, versions 0.4 and 0.5: multiscales, axes, channels, labels.

Only what reading needs: the path of the full-resolution array (the first dataset of the first
``multiscales`` entry), the axis names, the number of levels, the channel names (``omero``), the
label images listed under ``labels/`` and whether the group is itself a label image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CorruptInputError
from ._zarr_store import safe_node_path


@dataclass(frozen=True)
class OmeImage:
    """The facts of one OME-Zarr image group."""

    version: str
    dataset_paths: list[str]
    axes: list[str]
    channels: list[str] = field(default_factory=list)
    is_label: bool = False

    @property
    def levels(self) -> int:
        return len(self.dataset_paths)


def ome_attributes(attrs: dict) -> dict | None:
    """The NGFF attributes of a group: ``attrs["ome"]`` (0.5) or the top level (0.4)."""
    if isinstance(attrs.get("ome"), dict):
        return attrs["ome"]
    if "multiscales" in attrs or "labels" in attrs or "image-label" in attrs:
        return attrs
    return None


def parse_image(attrs: dict, where: str) -> OmeImage | None:
    """The image described by a group's attributes, or None when it is not an image group.

    Raises
    ------
    CorruptInputError
        If ``multiscales`` is malformed.
    UnsafeInputError
        If a dataset path leaves the store.
    """
    ome = ome_attributes(attrs)
    if not ome or "multiscales" not in ome:
        return None
    try:
        ms = ome["multiscales"][0]
        version = str(ome.get("version") or ms.get("version") or "0.4")
        datasets = ms["datasets"]
        paths = [safe_node_path(d["path"], where, "multiscales dataset path") for d in datasets]
        axes = [a["name"] if isinstance(a, dict) else str(a) for a in ms.get("axes", [])]
    except (KeyError, IndexError, TypeError) as exc:
        raise CorruptInputError(f"has malformed OME-Zarr multiscales metadata ({exc!r})",
                                where) from None
    if not paths:
        raise CorruptInputError("has OME-Zarr multiscales metadata without datasets", where)
    channels = []
    omero = ome.get("omero")
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        channels = [str(c.get("label", i)) if isinstance(c, dict) else str(i)
                    for i, c in enumerate(omero["channels"])]
    return OmeImage(version, paths, axes, channels, is_label="image-label" in ome)


def label_names(labels_attrs: dict, where: str) -> list[str]:
    """Names listed by a ``labels`` group (each checked to stay inside the store)."""
    ome = ome_attributes(labels_attrs) or {}
    names = ome.get("labels", [])
    if not isinstance(names, list):
        raise CorruptInputError("has a malformed OME-Zarr 'labels' list", where)
    return [safe_node_path(n, where, "label path") for n in names]
