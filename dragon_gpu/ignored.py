"""Options that a pair's inputs do not use, as the warnings the detect JSON reports.

An option given for a format that has no use for it (``--page`` with an HDF5 file,
``--body-dataset`` with a TIFF, ``--threshold 100`` with a 1-bit image) would otherwise be
ignored in silence, and the user would believe it applied.
"""

from __future__ import annotations

from .io.base import Kind, MaskReader


def _what(reader: MaskReader) -> str:
    return "a 1-bit image" if reader.kind is Kind.bilevel else "a mask"


def ignored_options(opts, body: MaskReader, dye: MaskReader) -> list[str]:
    """One warning for each option ``opts`` sets that ``body`` or ``dye`` does not use.

    A threshold method named for an input without gray levels is handled by
    :func:`dragon_gpu.autothreshold.methods_for` (an error, or its own warning).
    """
    from .io.tiff import TiffReader

    out: list[str] = []
    pages = [r for r in (body, dye) if not isinstance(r, TiffReader)]
    if opts.page and pages:
        names = " and ".join(f"{r.path}" for r in pages)
        out.append(f"--page {opts.page} applies to TIFF files only: {names} "
                   f"{'is' if len(pages) == 1 else 'are'} read without it")
    for role, reader in (("body", body), ("dye", dye)):
        dataset = getattr(opts, f"{role}_dataset")
        if dataset is not None and isinstance(reader, TiffReader):
            out.append(f"--{role}-dataset {dataset} applies to HDF5 and Zarr inputs only: the "
                       f"{role} image {reader.path} is a TIFF file and is read without it")
    for role, reader in (("body", body), ("dye", dye)):
        own = getattr(opts, f"{role}_threshold")
        spec, option = (own, f"--{role}-threshold") if own is not None else (opts.threshold,
                                                                             "--threshold")
        if spec is None or isinstance(spec, str) or reader.kind is Kind.gray:
            continue
        out.append(f"{option} {spec} applies to gray images only: the {role} image is "
                   f"{_what(reader)} and keeps its rule")
    return out
