"""Which restorations an image needs, in which order (M3UNET-style routing from the classifier).

Degradations are undone in :data:`irestore.labels.UNDO_ORDER`, the reverse of a camera pipeline:
compression, noise, blur, rain, low light, haze, then resolution. The planner (``irestore.plan``)
uses the same order when it does not evaluate (``--plan fixed``) and searches for a better one otherwise.
"""

from __future__ import annotations

from irestore.conditioning.classifier import Classification
from irestore.labels import UNDO_ORDER

RESTORATIONS: dict[str, str] = {
    "jpeg": "jpeg-artifact-removal",
    "noise": "denoise",
    "lowlight": "low-light-enhancement",
    "lowres": "super-resolution",
    "motion_blur": "motion-deblur",
    "defocus_blur": "defocus-deblur",
    "rain": "derain",
    "haze": "dehaze",
}


def route(classification: Classification) -> list[str]:
    """Restorations for the detected degradations, in the order to apply them; [] for clean."""
    found = set(classification.labels) - {"clean"}
    return [RESTORATIONS[label] for label in UNDO_ORDER if label in found]
