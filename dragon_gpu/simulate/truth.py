"""``truth.json``: the exact counts of a generated pair in the detect JSON's keys, plus how it was
drawn."""

from __future__ import annotations

import json
import os

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
    from ..pipeline import SPEC_JSON_KEYS, DetectResult

    # The detect JSON's own keys, from the one place that writes them.
    detect = DetectResult(body_path=os.fspath(paths[0]), dye_path=os.fspath(paths[1]),
                          shape=(scene.height, scene.width), verdict=verdict,
                          backend="generator", seconds=seconds, body_rule=rules[0],
                          dye_rule=rules[1]).to_dict()
    return {
        **{key: detect[key] for key in SPEC_JSON_KEYS},
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
