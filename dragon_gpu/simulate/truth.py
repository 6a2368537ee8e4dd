"""``truth.json``: the exact counts of a generated pair in the detect JSON's keys, plus how it was
drawn."""

from __future__ import annotations

import json
import os

from .. import __version__
from ..model import Counts
from .scene import Scene

__all__ = ["GENERATOR_VERSION", "check_drawn", "truth_record", "write_truth"]

#: Bumped whenever the same seed and parameters would produce different pixels.
GENERATOR_VERSION = "1"


def check_drawn(counts: Counts, drawn: str, pixels: int):
    """The verdict of the pair; refuses a pair that breaks what its kind promises (a bug if it
    ever happens)."""
    from ..verdict import DEFAULT_CUTOFF, decide

    verdict = decide(counts, DEFAULT_CUTOFF)
    if counts.body * 4 < pixels:
        raise RuntimeError(f"generated body covers less than 25% ({counts.body} pixels)")
    if drawn == "boundary" and counts.dye_in_body * 10 != counts.body:
        raise RuntimeError(f"boundary pair is not exactly 10%: {counts}")
    if (drawn == "cancer") != verdict.cancer:
        raise RuntimeError(f"drawn a {drawn} pair but the counts say otherwise: {counts}")
    return verdict


def truth_record(*, counts: Counts, verdict, scene: Scene, paths, rules, seconds: float,
                 kind: str, drawn: str, target: float | None, parameters: dict,
                 extra: dict | None = None) -> dict:
    """The content of ``truth.json`` (see :func:`~dragon_gpu.simulate.generate`); ``extra``
    keys go after the others."""
    pixels = scene.height * scene.width
    return {
        "version": __version__,
        "body_path": os.fspath(paths[0]),
        "dye_path": os.fspath(paths[1]),
        "shape": [scene.height, scene.width],
        "body_pixels": counts.body,
        "dye_in_body_pixels": counts.dye_in_body,
        "dye_outside_body_pixels": counts.dye_outside_body,
        "dye_pixels": counts.dye,
        "fraction": verdict.fraction,
        "cutoff": verdict.cutoff_text,
        "cancer": verdict.cancer,
        "backend": "generator",
        "seconds": round(seconds, 6),
        "pixels_per_second": round(pixels / seconds) if seconds > 0 else None,
        "body_rule": rules[0],
        "dye_rule": rules[1],
        "warnings": [],
        "seed": scene.seed,
        "kind": kind,
        "drawn_kind": drawn,
        "generator_version": GENERATOR_VERSION,
        "parameters": {
            "height": scene.height, "width": scene.width, **parameters,
            "dye_target": None if target is None else round(target, 4),
            "vessel_gain": scene.gain, **scene.info, **scene.patch.info,
        },
        **(extra or {}),
    }


def write_truth(path, truth: dict) -> None:
    with open(path, "w") as fh:
        json.dump(truth, fh, indent=2)
        fh.write("\n")
