"""The manifest of a batch: a CSV file naming pairs, or pairs given from Python."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from typing import Mapping

from ..errors import DragonError

__all__ = ["ManifestError", "Pair", "as_pairs", "read_manifest"]


class ManifestError(DragonError, ValueError):
    """The manifest cannot be used: unreadable, no header, no body/dye column, duplicate ids..."""


@dataclass(frozen=True)
class Pair:
    """One row of a manifest, a job of the batch: an id and the two paths of its pair, resolved
    against the manifest's folder (the runners call a value of it ``job``)."""

    id: str
    body: str
    dye: str


def read_manifest(path) -> list[Pair]:
    """The pairs of a manifest CSV file.

    Parameters
    ----------
    path : str or PathLike
        A CSV file (UTF-8, optional BOM) whose header names at least ``body`` and ``dye``, and
        optionally ``id``; other columns are ignored. Column names are matched case-insensitively.

    Returns
    -------
    list of Pair
        Paths joined to the manifest's folder (absolute paths stay as they are) and made
        absolute. An empty ``id`` cell (or no ``id`` column) becomes the body path as written in
        the manifest, which stays stable when the manifest's folder moves.

    Raises
    ------
    ManifestError
        If the file cannot be read, has no header with ``body`` and ``dye``, has a row without a
        body or dye path, or names an id twice.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ManifestError("no such manifest file" if not os.path.exists(path)
                            else "is not a regular file", path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ManifestError("is not a UTF-8 text file (expected a CSV manifest)", path) from None
    except OSError as exc:
        raise ManifestError(f"cannot be read ({exc.strerror or exc})", path) from None
    try:
        reader = iter(_csv_rows(text, path))
        header = next(reader, (0, None))[1]
        if header is None:
            raise ManifestError("is empty; expected a header with at least body,dye", path)
        names = [h.strip().lower() for h in header]
        missing = [c for c in ("body", "dye") if c not in names]
        if missing:
            raise ManifestError(f"the header has no {' or '.join(missing)} column (found "
                                f"{','.join(header) or 'nothing'}); expected at least body,dye",
                                path)
        for name in ("id", "body", "dye"):
            if names.count(name) > 1:
                raise ManifestError(f"the header names the column {name!r} twice", path)
        col = {name: names.index(name) for name in ("id", "body", "dye") if name in names}
        base = os.path.dirname(os.path.abspath(path))
        rows = []
        for line, cells in reader:
            if not any(c.strip() for c in cells):
                continue  # a blank line
            get = (lambda name: cells[col[name]].strip()
                   if name in col and col[name] < len(cells) else "")
            rows.append((line, get("id"), get("body"), get("dye")))
    except csv.Error as exc:
        raise ManifestError(f"is not valid CSV ({exc})", path) from None
    return _make_pairs(rows, base, path)


def _csv_rows(text: str, path: str) -> list[tuple[int, list[str]]]:
    """(line, cells) of each CSV record of ``text``, ``line`` being where the record ends.

    A quote that is never closed swallows the rest of the file into one cell: it is refused,
    naming the line where it opens. Other irregular quoting is read as the csv module reads it.
    """
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        for cells in reader:
            rows.append((reader.line_num, cells))
        return rows
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            start = rows[-1][0] + 1 if rows else 1
            raise ManifestError(f"line {start}: a quote opened on this line is never closed",
                                path) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    return [(reader.line_num, cells) for cells in reader]


def as_pairs(manifest_or_pairs) -> list[Pair]:
    """Pairs from a manifest path, or from an iterable of :class:`Pair`, mappings with ``body``,
    ``dye`` (and optionally ``id``) keys, or ``(body, dye)`` tuples.

    Relative paths of an iterable are relative to the current folder; ids default to the body
    path as given.
    """
    if isinstance(manifest_or_pairs, (str, os.PathLike)):
        return read_manifest(manifest_or_pairs)
    rows = []
    for i, item in enumerate(manifest_or_pairs):
        if isinstance(item, Pair):
            rows.append((i + 1, item.id, item.body, item.dye))
        elif isinstance(item, Mapping):
            if "body" not in item or "dye" not in item:
                raise ManifestError(f"pair {i + 1}: a mapping needs 'body' and 'dye' keys, got "
                                    f"{sorted(map(str, item))}")
            rows.append((i + 1, str(item.get("id") or ""), os.fspath(item["body"]),
                         os.fspath(item["dye"])))
        elif isinstance(item, (tuple, list)) and len(item) == 2:
            rows.append((i + 1, "", os.fspath(item[0]), os.fspath(item[1])))
        else:
            raise ManifestError(f"pair {i + 1}: expected a (body, dye) tuple, a mapping with "
                                f"body and dye keys, or a Pair; got {type(item).__name__}")
    return _make_pairs(rows, os.getcwd(), None, what="pair")


def _make_pairs(rows, base: str, path: str | None, what: str = "line") -> list[Pair]:
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for line, id_, body, dye in rows:
        for name, value in (("body", body), ("dye", dye)):
            if not value:
                raise ManifestError(f"{what} {line}: the {name} path is empty", path)
        id_ = id_ or body
        for name, value in (("id", id_), ("body", body), ("dye", dye)):
            if "\n" in value or "\r" in value:
                raise ManifestError(f"{what} {line}: the {name} contains a line break", path)
            if "\0" in value:
                raise ManifestError(f"{what} {line}: the {name} contains a NUL byte", path)
        if id_ in seen:
            hint = "" if id_ != body else " (the id defaults to the body path; add an id column)"
            raise ManifestError(f"{what} {line}: the id {id_!r} is already used on {what} "
                                f"{seen[id_]}{hint}", path)
        seen[id_] = line
        pairs.append(Pair(id_, _locate(base, body), _locate(base, dye)))
    return pairs


def _locate(base: str, name: str) -> str:
    """A manifest entry as a path relative to the manifest's folder; URLs stay as they are."""
    from ..io import is_url

    return name if is_url(name) else os.path.abspath(os.path.join(base, name))
